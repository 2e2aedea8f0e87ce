"""First-fit packing of Molmo2 examples (tokens + image/video crops) into fixed-size sequences.

Each packed sequence holds several examples: token fields concatenated with `segment_ids`
(1-based, 0 = pad) and `positions` restarting at 0 per example (the example's own
`position_ids` when encode_fn gives them, e.g. message-tree branches), so attention never
crosses examples. The packer owns the crop layout the model reads: ONE crop stack per pack
(`crops` [C, patches, patch_dim], images and video frames together: they share the crop shape
and the ViT) and ONE pooling table (`crop_pooling` [N, W], windows -1-padded to the widest)
whose rows are in the order of the pack's `<im_patch>` tokens: examples in pack order, and
within an example its images, then its videos (the chat template's media prefix, which the
processor follows). Indices are local to the pack's flattened [C * patches] crops (-1 = pad);
`crop_segment_ids` [C] names each crop's example (0 = empty slot). Grids stay per media
kind. A pack is full when tokens, crops, pooled rows or grids run out.

Token fields default to `Molmo2Processor.training_example`'s: input_ids, target_ids (already
shifted: predict target_ids[t] after input_ids[:t + 1]; -1 = none), loss_weights (0 = no loss),
branch_ids (-1 = shared prefix), mm_token_type_ids. Targets are per example, so no loss ever
crosses an example boundary; any other token-aligned field (e.g. a `loss_mask`) is carried
when listed in `PackSpec.token_fields`.

Packing is first-fit decreasing over a window of `window` examples read from the parent:
examples sorted by token count, each put in the first pack with room, packs emitted in a seeded
shuffled order. The iterator state is (parent state at the window start, window index, packs
already emitted), so `set_state` re-reads the window and resumes at exactly the next pack.
Examples that fit no empty pack are dropped and counted as `too_long`; never truncated.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import numpy as np

from data_pipelines.schema import SKIP_REASONS, DataError
from molmo2_jax.processing.images import stack_pooling

log = logging.getLogger(__name__)
TOO_LONG = SKIP_REASONS.index("too_long")
PAD_ID = 151643  # Qwen3 <|endoftext|>


@dataclasses.dataclass(frozen=True)
class Skipped:
    """Marker flowing through the pipeline in place of a skipped sample (counted by the packer)."""

    source_index: int
    reason: str
    detail: str = ""  # what was wrong, naming the record (for the all-bad-dataset error)


@dataclasses.dataclass(frozen=True)
class MediaField:
    """One kind of visual input packed per sequence, with its per-pack budget.

    pixels [crops, *crop_shape], pooling [tokens, window] (indices into the example's flattened
    [crops * patches], -1 = pad), grids [n, grid_dim] (one row per image / video), and
    `per_grid` arrays with one entry per grid row (e.g. image_num_crops).
    """

    pixels: str
    pooling: str
    grids: str
    crop_shape: tuple[int, int]
    window: int
    grid_dim: int
    max_crops: int
    max_tokens: int | None = None   # pooled rows per pack; None = seq_len (one per token at most)
    max_grids: int | None = None    # images/videos per pack; None = max_crops
    pixel_dtype: str = "float32"
    per_grid: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.pixels, self.pooling, self.grids, *self.per_grid)

    @classmethod
    def image(cls, max_crops: int, crop_shape: tuple[int, int] = (729, 588), **kw) -> MediaField:
        """Molmo2 images: 27x27 patches of 14x14x3 per crop, 2x2 pooling, grids
        [lo_h, lo_w, hi_h, hi_w], crops per image in image_num_crops."""
        kw.setdefault("per_grid", ("image_num_crops",))
        return cls("pixel_values", "image_token_pooling", "image_grids", tuple(crop_shape), 4, 4,
                   max_crops, **kw)

    @classmethod
    def video(cls, max_frames: int, crop_shape: tuple[int, int] = (729, 588), **kw) -> MediaField:
        """Molmo2 video: one crop per frame, 3x3 pooling, grids [frames, 9, 9]."""
        return cls("pixel_values_videos", "video_token_pooling", "video_grids", tuple(crop_shape),
                   9, 3, max_frames, **kw)


def default_token_fields(pad_id: int = PAD_ID) -> dict[str, tuple[str, int | float]]:
    """Token-aligned fields of `Molmo2Processor.training_example`: name -> (dtype, pad value)."""
    return {"input_ids": ("int32", pad_id), "target_ids": ("int32", -1),
            "loss_weights": ("float32", 0.0), "branch_ids": ("int32", -1),
            "mm_token_type_ids": ("int32", 0)}


@dataclasses.dataclass(frozen=True)
class PackSpec:
    """Shape of one packed sequence: token budget, token fields, and media budgets."""

    seq_len: int
    media: tuple[MediaField, ...] = ()
    token_fields: Mapping[str, tuple[str, int | float]] = dataclasses.field(
        default_factory=default_token_fields)
    rows: int = 1  # rows per crop group: that many packed rows share one crop stack and its budgets

    def __post_init__(self):
        if len({(m.crop_shape, m.pixel_dtype) for m in self.media}) > 1:
            raise ValueError("all MediaFields of a PackSpec share one crop stack: give them the same "
                             f"crop_shape and pixel_dtype, got {[(m.crop_shape, m.pixel_dtype) for m in self.media]}")

    @property
    def crop_slots(self) -> int:
        """C: crop slots of the pack's one crop stack (the media kinds' budgets together)."""
        return sum(m.max_crops for m in self.media)

    @property
    def pool_rows(self) -> int:
        """N: rows of the pack's one pooling table (at most one per token of its rows)."""
        tokens = self.rows * self.seq_len
        return min(tokens, sum(m.max_tokens or tokens for m in self.media))

    @property
    def pool_window(self) -> int:
        """W: the widest pooling window (image 2x2 = 4, video 3x3 = 9); narrower rows are -1-padded."""
        return max(m.window for m in self.media)

    def capacity(self) -> tuple[int, ...]:
        """Budget vector: (tokens, then per media field: crops, pooled rows, grids; then all pooled rows)."""
        cap = [self.seq_len]  # per row; the media budgets are per crop group (all `rows` rows together)
        for m in self.media:
            cap += [m.max_crops, m.max_tokens or self.rows * self.seq_len, m.max_grids or m.max_crops]
        return tuple(cap + ([self.pool_rows] if self.media else []))

    def size(self, ex: Mapping[str, np.ndarray]) -> tuple[int, ...]:
        """What one encoded example uses of each budget in `capacity()`."""
        size = [len(ex["input_ids"])]
        for m in self.media:
            if m.pixels in ex:
                size += [len(ex[m.pixels]), len(ex[m.pooling]), len(ex[m.grids])]
            else:
                size += [0, 0, 0]
        pooled = sum(len(ex[m.pooling]) for m in self.media if m.pixels in ex)
        return tuple(size + ([pooled] if self.media else []))

    def check(self, ex: Mapping[str, Any]) -> None:
        """Raises ValueError when encode_fn's output does not match this spec (a code bug)."""
        media_keys = {k for m in self.media for k in m.keys}
        extra = set(ex) - set(self.token_fields) - media_keys - {"position_ids", "source_index"}
        if extra:
            raise ValueError(f"encode_fn returned keys {sorted(extra)} that PackSpec does not "
                             "know: add them to PackSpec.token_fields (token-aligned) or to a "
                             "MediaField, or drop them in encode_fn")
        missing = set(self.token_fields) - set(ex)
        if missing:
            raise ValueError(f"encode_fn output lacks token fields {sorted(missing)}; every "
                             "example must carry all of PackSpec.token_fields")
        n = len(ex["input_ids"])
        for k in list(self.token_fields) + (["position_ids"] if "position_ids" in ex else []):
            if len(ex[k]) != n:
                raise ValueError(f"encode_fn field {k!r} has length {len(ex[k])}, "
                                 f"input_ids has {n}")
        for m in self.media:
            present = [k in ex for k in m.keys]
            if any(present) and not all(present):
                raise ValueError(f"encode_fn must return {', '.join(m.keys)} together")
            if all(present):
                if tuple(ex[m.pixels].shape[1:]) != m.crop_shape:
                    raise ValueError(f"{m.pixels} has crops of shape {ex[m.pixels].shape[1:]}, "
                                     f"MediaField.crop_shape is {m.crop_shape}")
                if ex[m.pooling].ndim != 2 or ex[m.pooling].shape[1] != m.window:
                    raise ValueError(f"{m.pooling} has shape {ex[m.pooling].shape}, expected "
                                     f"[tokens, {m.window}]")
                for k in m.per_grid:
                    if len(ex[k]) != len(ex[m.grids]):
                        raise ValueError(f"{k} has {len(ex[k])} entries, {m.grids} has "
                                         f"{len(ex[m.grids])} rows")


def first_fit_decreasing(sizes: Sequence[tuple[int, ...]], capacity: tuple[int, ...], rows: int = 1
                         ) -> list[list[list[int]]]:
    """Groups of `rows` bins of item indices (each bin in input order); items sorted by their first size,
    descending. The first size (tokens) is budgeted per bin, the others per group (shared by its bins)."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i][0])
    groups: list[list[list[int]]] = []
    tokens: list[list[int]] = []  # per group, per bin
    shared: list[list[int]] = []  # per group
    for i in order:
        s = sizes[i]
        for g, used in enumerate(shared):
            if not all(a + x <= c for a, x, c in zip(used, s[1:], capacity[1:])):
                continue
            row = next((r for r, t in enumerate(tokens[g]) if t + s[0] <= capacity[0]), None)
            if row is None and len(tokens[g]) < rows:
                row = len(tokens[g])
                groups[g].append([])
                tokens[g].append(0)
            if row is not None:
                groups[g][row].append(i)
                tokens[g][row] += s[0]
                shared[g] = [a + x for a, x in zip(used, s[1:])]
                break
        else:
            groups.append([[i]])
            tokens.append([s[0]])
            shared.append(list(s[1:]))
    return [[sorted(b) for b in g] for g in groups]


def assemble(examples: Sequence[Mapping[str, np.ndarray]], spec: PackSpec, num_sources: int = 1,
             rows: Sequence[Sequence[Mapping[str, np.ndarray]]] | None = None) -> dict[str, np.ndarray]:
    """Concatenates examples that fit one pack into fixed-shape arrays (see module docstring).

    Output (S = seq_len, C = spec.crop_slots, N = spec.pool_rows, W = spec.pool_window; per
    MediaField G = max_grids):
      token fields [S] (their dtype, padded), segment_ids [S] int32, positions [S] int32,
      source_ids [S] int32 (the dataset index of each token's example, -1 = pad),
      crops [C, patches, patch_dim], crop_segment_ids [C] int32, crop_pooling [N, W] int32,
      <grids> [G, grid_dim] int32, <per_grid> [G] int32 (0 pad), source_counts
      [num_sources] int32 (examples per dataset), skip_counts [num_sources, len(SKIP_REASONS)]
      int32 (zeros; the packer fills it).
    With `spec.rows` > 1, `rows` gives the group's rows (lists of examples; `examples` is ignored): token
    fields are [rows, S], and the one crop stack and table serve the rows in order (crop_segment_ids count
    the group's examples row-major from 1).
    """
    if spec.rows > 1:
        rows = list(rows or [examples])
        if len(rows) > spec.rows:
            raise ValueError(f"{len(rows)} rows do not fit a crop group of {spec.rows}")
        row_spec = dataclasses.replace(spec, media=(), rows=1)
        packed = [assemble(r, row_spec, num_sources) for r in rows]
        packed += [assemble([], row_spec, num_sources)] * (spec.rows - len(rows))
        out = {k: np.stack([p[k] for p in packed]) for k in packed[0]}
        out["source_counts"], out["skip_counts"] = out["source_counts"].sum(0), out["skip_counts"].sum(0)
        out.update(_assemble_media([ex for r in rows for ex in r], spec))
        return out
    s = spec.seq_len
    out = {k: np.full((s,), pad, dtype) for k, (dtype, pad) in spec.token_fields.items()}
    out["segment_ids"] = np.zeros((s,), np.int32)
    out["positions"] = np.zeros((s,), np.int32)
    out["source_ids"] = np.full((s,), -1, np.int32)
    out["source_counts"] = np.zeros((num_sources,), np.int32)
    out["skip_counts"] = np.zeros((num_sources, len(SKIP_REASONS)), np.int32)
    t = 0
    for seg, ex in enumerate(examples, start=1):
        n = len(ex["input_ids"])
        for k in spec.token_fields:
            out[k][t:t + n] = ex[k]
        out["segment_ids"][t:t + n] = seg
        out["positions"][t:t + n] = ex["position_ids"] if "position_ids" in ex else np.arange(n)
        out["source_counts"][ex.get("source_index", 0)] += 1
        out["source_ids"][t:t + n] = ex.get("source_index", 0)
        t += n
    out.update(_assemble_media(examples, spec))
    return out


def _assemble_media(examples: Sequence[Mapping[str, np.ndarray]], spec: PackSpec) -> dict[str, np.ndarray]:
    """The one crop stack, crop_segment_ids and pooling table of a pack (or crop group), plus per-kind grids."""
    out: dict[str, np.ndarray] = {}
    if not spec.media:
        return out
    for m in spec.media:
        g = m.max_grids or m.max_crops
        grids = [ex[m.grids] for ex in examples if m.pixels in ex]
        out[m.grids] = np.zeros((g, m.grid_dim), np.int32)
        if grids:
            out[m.grids][:sum(map(len, grids))] = np.concatenate(grids)
        for k in m.per_grid:
            out[k] = np.zeros((g,), np.int32)
            if grids:
                out[k][:sum(map(len, grids))] = np.concatenate([ex[k] for ex in examples if m.pixels in ex])
    # the one crop stack and pooling table: examples in pack order, each example's media kinds in spec order
    parts = [(seg, ex[m.pixels], ex[m.pooling]) for seg, ex in enumerate(examples, start=1)
             for m in spec.media if m.pixels in ex]
    crop_shape, patches = spec.media[0].crop_shape, spec.media[0].crop_shape[0]
    out["crops"] = np.zeros((spec.crop_slots, *crop_shape), spec.media[0].pixel_dtype)
    out["crop_segment_ids"] = np.zeros((spec.crop_slots,), np.int32)
    out["crop_pooling"] = np.full((spec.pool_rows, spec.pool_window), -1, np.int32)
    if parts:
        n_crops = sum(len(px) for _, px, _ in parts)
        out["crops"][:n_crops] = np.concatenate([px for _, px, _ in parts])
        out["crop_segment_ids"][:n_crops] = np.concatenate([np.full(len(px), seg) for seg, px, _ in parts])
        table = stack_pooling([pool for _, _, pool in parts], [len(px) * patches for _, px, _ in parts],
                              spec.pool_window)
        out["crop_pooling"][:len(table)] = table
    return out


def packing_efficiency(segment_ids: np.ndarray) -> float:
    """Non-pad tokens / all tokens of packed sequences."""
    return float(np.mean(np.asarray(segment_ids) > 0))


def crop_counts(batch: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """(real crops, crop slots) of packed sequences: the ViT runs on every slot, so real / slots is its
    utilisation (the `crop_utilisation` training metric)."""
    if "crop_segment_ids" not in batch:
        return 0, 0
    seg = np.asarray(batch["crop_segment_ids"])
    return int(np.sum(seg > 0)), int(seg.size)


class PackIterDataset(grain.IterDataset):
    """Grain transformation: encoded examples (and Skipped markers) -> packed sequences."""

    def __init__(self, parent: grain.IterDataset, spec: PackSpec, *, window: int = 256,
                 seed: int = 0, num_sources: int = 1, names: Sequence[str] | None = None,
                 max_consecutive_skips: int = 256):
        super().__init__(parent)
        if window < 1:
            raise ValueError(f"packing window must be >= 1, got {window}")
        self._spec, self._window, self._seed, self._num_sources = spec, window, seed, num_sources
        self._names = list(names) if names else [f"#{i}" for i in range(num_sources)]
        self._max_skips = max_consecutive_skips

    def __iter__(self) -> grain.DatasetIterator:
        return _PackIterator(self._parent.__iter__(), self._spec, self._window, self._seed,
                             self._num_sources, self._names, self._max_skips)

    def __str__(self) -> str:
        return f"PackIterDataset(seq_len={self._spec.seq_len}, window={self._window})"


class _PackIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, spec: PackSpec, window: int, seed: int,
                 num_sources: int, names: Sequence[str] = (), max_consecutive_skips: int = 256):
        super().__init__(parent)
        self._names = list(names) or [f"#{i}" for i in range(num_sources)]
        self._max_skips = max_consecutive_skips
        self._in_a_row = np.zeros((num_sources,), np.int64)  # skips since the dataset's last good record
        self._last_skip: dict[int, Skipped] = {}
        self._spec, self._window, self._seed, self._num_sources = spec, window, seed, num_sources
        self._capacity = spec.capacity()
        self._window_state = parent.get_state()  # parent state at the start of the window
        self._window_index = 0
        self._emitted = 0          # packs of the current window already returned
        zeros = np.zeros((num_sources, len(SKIP_REASONS)), np.int32)
        self._carry_in = zeros     # skips of earlier windows that produced no pack
        self._carry_out = zeros
        self._packs: list[dict[str, np.ndarray]] | None = None  # None: window not read yet
        self._logged_too_long: dict[int, bool] = {}

    def _read_window(self) -> int:
        """Reads and packs the current window; returns how many items were read."""
        examples, sizes, n_read = [], [], 0
        skips = self._carry_in.copy()
        for n_read in range(1, self._window + 1):
            try:
                item = next(self._parent)
            except StopIteration:
                n_read -= 1
                break
            if isinstance(item, Skipped):
                skips[item.source_index, SKIP_REASONS.index(item.reason)] += 1
                self._count_bad(item, skips)
                continue
            size = self._spec.size(item)
            source = item.get("source_index", 0)
            if any(x > c for x, c in zip(size, self._capacity)):
                self._count_bad(Skipped(source, "too_long", f"needs {size} of the budget {self._capacity}"),
                                skips)
                if not self._logged_too_long.get(source):
                    self._logged_too_long[source] = True
                    log.warning("dropping an example of dataset #%d that needs %s of the per-pack "
                                "budget %s (tokens, then crops/pooled/grids per media); counted "
                                "as too_long; raise seq_len or max_crops to keep such examples",
                                source, size, self._capacity)
                skips[source, TOO_LONG] += 1
                continue
            self._in_a_row[source] = 0
            examples.append(item)
            sizes.append(size)
        groups = first_fit_decreasing(sizes, self._capacity, self._spec.rows)
        rng = np.random.default_rng([self._seed, self._window_index])
        if self._spec.rows == 1:
            self._packs = [assemble([examples[i] for i in groups[b][0]], self._spec, self._num_sources)
                           for b in rng.permutation(len(groups))]
        else:
            self._packs = [assemble([], self._spec, self._num_sources,
                                    rows=[[examples[i] for i in row] for row in groups[b]])
                           for b in rng.permutation(len(groups))]
        if self._packs:
            self._packs[0]["skip_counts"] += skips
            skips[:] = 0
        self._carry_out = skips
        return n_read

    def _count_bad(self, item: Skipped, skips: np.ndarray) -> None:
        """One more skip of this dataset in a row; past the bound the run stops, naming it."""
        i = item.source_index
        self._in_a_row[i] += 1
        self._last_skip[i] = item
        if self._max_skips and self._in_a_row[i] >= self._max_skips:
            reasons = {r: int(c) for r, c in zip(SKIP_REASONS, skips[i]) if c}
            raise DataError(f"dataset {self._names[i]!r} yielded no usable record in its last "
                            f"{self._in_a_row[i]} tries (skips in this window: {reasons}); last: "
                            f"{item.reason}: {item.detail or 'no detail'}. Fix or re-prepare it, or "
                            "set its mixture weight to 0")

    def _advance(self) -> None:
        self._window_state = self._parent.get_state()
        self._window_index += 1
        self._emitted = 0
        self._carry_in = self._carry_out
        self._packs = None

    def __next__(self) -> dict[str, np.ndarray]:
        while self._packs is None:
            if self._read_window() == 0:
                raise StopIteration
            if not self._packs:  # every item of the window was skipped
                self._advance()
        pack = self._packs[self._emitted]
        self._emitted += 1
        if self._emitted == len(self._packs):
            self._advance()
        return pack

    def get_state(self) -> dict[str, Any]:
        return {"parent": self._window_state, "window_index": self._window_index,
                "emitted": self._emitted, "carry": self._carry_in.tolist()}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self._window_state = state["parent"]
        self._window_index = state["window_index"]
        self._emitted = state["emitted"]
        self._carry_in = np.asarray(state["carry"], np.int32).reshape(self._carry_in.shape)
        self._packs = None
