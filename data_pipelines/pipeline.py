"""Per-stage Molmo2 Grain pipeline: mixture -> media + encode -> first-fit packing -> batches.

    sources {name: random-access Examples or serialized records}   (synthetic, ArrayRecord)
      -> mix by weights (seeded per-dataset shuffles, repeated)      MapDataset of (index, record, epoch)
      -> this process's slice [process_index::process_count]
      -> decode + validate + load images + encode_fn (bad samples -> Skipped markers)
      -> PackIterDataset (first-fit decreasing, crops budgeted)      IterDataset of packs
      -> batch(batch_size) [-> mp_prefetch(num_workers)]
      -> counters: per-dataset examples and skips, packing efficiency (read by the trainer)

The returned dataset's iterator is a Grain `DatasetIterator`: `get_state()`/`set_state()`
resume at exactly the next batch (checkpoint it with Orbax's Grain handler), and
`iterator.counters` holds `DataCounters`. Same seed -> same batches; batches depend on
`num_workers` (Grain slices the data per worker) but are deterministic for a fixed count.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain
from absl import flags
import numpy as np

from data_pipelines import media
from data_pipelines.mixture import mix
from data_pipelines.packing import PackIterDataset, PackSpec, Skipped
from data_pipelines.schema import SKIP_REASONS, BadSample, DataError, Example, deserialize, validate  # noqa: F401

log = logging.getLogger(__name__)


EncodeFn = Callable[[Example], Mapping[str, np.ndarray]]
LOG_FIRST_SKIPS = 5  # per (dataset, reason) and process; the rest are only counted


class Prepare:
    """(dataset index, record, epoch) -> encoded example dict, or Skipped(dataset, reason).

    Deserializes, loads images (paths resolved under the dataset's media root), validates
    annotations and runs `encode_fn` on the Example with its `epoch` set (the encoder's per-epoch
    randomness); every failure is a counted skip, logged the first times.
    Picklable when `encode_fn` is (module-level function or dataclass instance).
    """

    def __init__(self, encode_fn: EncodeFn, spec: PackSpec, names: Sequence[str],
                 media_roots: Sequence[str | None]):
        self.encode_fn, self.spec, self.names, self.media_roots = (encode_fn, spec, list(names),
                                                                   list(media_roots))
        self._logged: dict[tuple[int, str], int] = {}

    def __call__(self, item: tuple[int, Any]) -> dict[str, np.ndarray] | Skipped:
        index, record, *rest = item  # (index, record) from callers that do not track epochs: epoch 0
        epoch = rest[0] if rest else 0
        stage, rid = "malformed_record", None  # the reason an unexpected exception is counted under
        try:
            ex = record if isinstance(record, Example) else deserialize(record)
            rid = ex.id
            stage = "undecodable_media"
            root = self.media_roots[index]
            ex = dataclasses.replace(ex, epoch=epoch, images=[
                dataclasses.replace(r, array=media.load_image(r, root)) for r in ex.images])
            if ex.video is not None and ex.video.path is not None:
                path = media.resolve(ex.video.path, root)
                if not os.path.exists(path):
                    raise BadSample("missing_media", f"video file {path} not found")
                ex.video = dataclasses.replace(ex.video, path=path)
            stage = "bad_annotation"
            validate(ex)
            stage = "encode_error"
            out = dict(self.encode_fn(ex))
            self.spec.check(out)
        except BadSample as e:
            return self._skip(index, e.reason, rid, str(e))
        except Exception as e:  # no exception type escapes: anything else is this sample's, counted by stage
            return self._skip(index, stage, rid, f"{type(e).__name__}: {e}")
        out["source_index"] = index
        return out

    def _skip(self, index: int, reason: str, rid: str | None, message: str) -> Skipped:
        key = (index, reason)
        self._logged[key] = self._logged.get(key, 0) + 1
        detail = f"record {rid!r}: {message}" if rid is not None and repr(rid) not in message else message
        if self._logged[key] <= LOG_FIRST_SKIPS:
            log.warning("skipping a sample of %s (%d so far for %s): %s", self.names[index], self._logged[key],
                        reason, detail)
        return Skipped(index, reason, detail[:500])


@dataclasses.dataclass
class DataCounters:
    """Running totals the trainer logs: examples and skips per dataset, packing efficiency."""

    names: list[str]
    examples: np.ndarray | None = None   # [datasets] int64
    skipped: np.ndarray | None = None    # [datasets, len(SKIP_REASONS)] int64
    tokens: int = 0
    real_tokens: int = 0
    batches: int = 0
    missing: tuple[str, ...] = ()  # mixture datasets dropped with data.allow_missing (reported in metrics)

    def __post_init__(self):
        n = len(self.names)
        self.examples = np.zeros((n,), np.int64) if self.examples is None else self.examples
        self.skipped = (np.zeros((n, len(SKIP_REASONS)), np.int64) if self.skipped is None
                        else self.skipped)

    def update(self, batch: Mapping[str, np.ndarray]) -> None:
        self.examples += batch["source_counts"].sum(0)
        self.skipped += batch["skip_counts"].sum(0)
        self.tokens += batch["segment_ids"].size
        self.real_tokens += int((batch["segment_ids"] > 0).sum())
        self.batches += 1

    @property
    def packing_efficiency(self) -> float:
        """Non-pad tokens / all tokens over every batch so far."""
        return self.real_tokens / max(self.tokens, 1)

    def skipped_by_dataset(self) -> dict[str, dict[str, int]]:
        return {n: {r: int(c) for r, c in zip(SKIP_REASONS, row) if c}
                for n, row in zip(self.names, self.skipped) if row.any()}

    def metrics(self) -> dict[str, float]:
        """Flat metrics: data/examples/<ds>, data/skipped/<ds>/<reason>, data/packing_efficiency."""
        out = {"data/packing_efficiency": self.packing_efficiency,
               "data/skipped_total": float(self.skipped.sum())}
        out.update({f"data/examples/{n}": float(c) for n, c in zip(self.names, self.examples)})
        out.update({f"data/missing/{n}": 1.0 for n in self.missing})
        for n, reasons in self.skipped_by_dataset().items():
            out.update({f"data/skipped/{n}/{r}": float(c) for r, c in reasons.items()})
        return out

    def state(self) -> dict[str, Any]:
        return {"examples": self.examples.tolist(), "skipped": self.skipped.tolist(),
                "tokens": self.tokens, "real_tokens": self.real_tokens, "batches": self.batches}

    def load(self, state: Mapping[str, Any]) -> None:
        self.examples = np.asarray(state["examples"], np.int64)
        self.skipped = np.asarray(state["skipped"], np.int64)
        self.tokens, self.real_tokens = state["tokens"], state["real_tokens"]
        self.batches = state["batches"]


class _CountingIterDataset(grain.IterDataset):
    """Last stage: strips the per-pack counts from batches into `iterator.counters`."""

    def __init__(self, parent: grain.IterDataset, names: Sequence[str], missing: Sequence[str] = ()):
        super().__init__(parent)
        self._names, self._missing = list(names), tuple(missing)

    def __iter__(self) -> DataIterator:
        return DataIterator(self._parent.__iter__(), self._names, self._missing)


class DataIterator(grain.DatasetIterator):
    """Batches of packed sequences; `counters` accumulates; state = parent state + counters."""

    def __init__(self, parent: grain.DatasetIterator, names: Sequence[str], missing: Sequence[str] = ()):
        super().__init__(parent)
        self.counters = DataCounters(list(names), missing=tuple(missing))

    def __next__(self) -> dict[str, np.ndarray]:
        batch = dict(next(self._parent))
        self.counters.update(batch)
        del batch["source_counts"], batch["skip_counts"]
        return batch

    def get_state(self) -> dict[str, Any]:
        return {"parent": self._parent.get_state(), "counters": self.counters.state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self.counters.load(state["counters"])


def build_pipeline(sources: Mapping[str, Sequence], weights: Mapping[str, float],
                   encode_fn: EncodeFn, spec: PackSpec, batch_size: int, *, seed: int = 0,
                   process_index: int = 0, process_count: int = 1,
                   media_roots: Mapping[str, str | None] | None = None, pack_window: int = 256,
                   num_workers: int = 0, worker_buffer_size: int = 2, read_threads: int = 2,
                   shuffle: bool = True, missing: Sequence[str] = (),
                   max_consecutive_skips: int = 256) -> grain.IterDataset:
    """Molmo2 training data for one process: an infinite IterDataset of packed batches.

    sources: dataset name -> random-access source of `Example`s or serialized records
      (`writer.open_source`, `synthetic.SyntheticSource`); weights: name -> mixture weight
      (`mixture.stage_weights` or a config dict); encode_fn: Example -> dict of numpy arrays
      (processing's encoder; see `packing.PackSpec.check` for the contract); spec: packed shape;
      batch_size: packed sequences per batch on this process.

    Each batch: token fields [B, S], segment_ids [B, S], positions [B, S] and per MediaField
    pixels [B, C, patches, dim], <pixels>_segment_ids [B, C], pooling [B, N, window] (indices
    into each row's own [C * patches] crops), grids [B, G, grid_dim].

    A dataset whose last `max_consecutive_skips` records were all skipped stops the iterator with
    `DataError` naming it, the reasons and an example (an all-bad dataset would otherwise spin forever).
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    ds, names = mix(sources, weights, seed=seed, shuffle=shuffle)
    roots = [(media_roots or {}).get(n) for n in names]
    ds = ds[process_index::process_count]
    ds = ds.map(Prepare(encode_fn, spec, names, roots))
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                              prefetch_buffer_size=max(2 * read_threads, 4)))
    it = PackIterDataset(it, spec, window=pack_window, seed=seed, num_sources=len(names), names=names,
                         max_consecutive_skips=max_consecutive_skips)
    it = it.batch(batch_size, drop_remainder=True)
    if num_workers > 0:
        if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags; defaults suffice
            flags.FLAGS.mark_as_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=num_workers, per_worker_buffer_size=worker_buffer_size))
    return _CountingIterDataset(it, names, missing)


def prepared_pipeline(data_path: str, weights: Mapping[str, float], encode_fn: EncodeFn,
                      spec: PackSpec, batch_size: int, **kwargs: Any) -> grain.IterDataset:
    """`build_pipeline` over ArrayRecord datasets prepared under `data_path` (writer.py)."""
    from data_pipelines import writer
    names = [n for n, w in weights.items() if w > 0]
    sources = {n: writer.open_source(data_path, n) for n in names}
    roots = {n: writer.load_index(data_path, n)["media_root"] for n in names}
    return build_pipeline(sources, weights, encode_fn, spec, batch_size, media_roots=roots,
                          **kwargs)


def decode_batch(batch: Mapping[str, np.ndarray], detokenize: Callable[[list[int]], str],
                 row: int = 0) -> list[str]:
    """Text of each example packed in one row of a batch (for inspection), in pack order."""
    seg, ids = batch["segment_ids"][row], batch["input_ids"][row]
    return [detokenize(ids[seg == s].tolist()) for s in np.unique(seg[seg > 0])]
