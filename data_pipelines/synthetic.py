"""Deterministic synthetic Molmo2 data: coloured shapes for every task of the recipe, offline.

`SyntheticSource(task, n, seed, config)` is a random-access source of canonical `Example`s (usable
directly as a Grain source). Example `i` depends only on (task, seed, i). Images are small RGB
scenes of non-overlapping circles, squares and triangles; videos are a few frames of shapes
moving in separate horizontal lanes (no occlusion), embedded as MP4 bytes. Targets use the Molmo2
output formats and every example carries ground truth (`boxes`, `points`, `count`, `tracks`) for
pointing F1, counting accuracy and tracking metrics.

Chance levels: counting targets are uniform in 0..max_count, so guessing any fixed count (or
uniformly) scores `SyntheticConfig.counting_chance` = 1 / (max_count + 1) (0.2 by default); the
VQA colour question has 1/4 chance, the shape question 1/3, yes/no 1/2.

`ByteLevelEncoder` is a stand-in `encode_fn` (UTF-8 bytes as tokens, tiny real crops) with the
same output contract as `molmo2_jax/processing`, for tests and benchmarks of the pipeline.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
from PIL import Image

from data_pipelines import media
from data_pipelines.packing import MediaField
from data_pipelines.schema import (Box, Conversation, Example, ImageRef, Message, Points, Task,
                                   Track, VideoRef)
from molmo2_jax.processing import formats
from molmo2_jax.processing.chat import branch_positions, branch_weights, loss_weighting

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (30, 160, 60), "blue": (40, 80, 220), "yellow": (235, 195, 20)}
SHAPES = ("circle", "square", "triangle")
BACKGROUND = (255, 255, 255)
SIDES = {"circle": 0, "square": 4, "triangle": 3}

TASKS = {  # synthetic task -> canonical task kind
    "caption": Task.CAPTION, "pointing": Task.POINTING, "counting": Task.COUNTING,
    "vqa": Task.VQA, "multi_image": Task.MULTI_IMAGE, "tracking": Task.TRACKING,
    "text": Task.TEXT,
}

# Stage-1-like demo mixture (captions 60 / pointing 30 / text 10), the rest spread over SFT tasks.
DEMO_WEIGHTS = {"synthetic_caption": 0.4, "synthetic_pointing": 0.15, "synthetic_counting": 0.15,
                "synthetic_vqa": 0.1, "synthetic_multi_image": 0.05, "synthetic_tracking": 0.05,
                "synthetic_text": 0.1}


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Scene sizes and counts; sizes in pixels, radii as fractions of min(width, height)."""

    width: int = 64
    height: int = 64
    max_objects: int = 5      # objects per image
    max_count: int = 4        # counting targets are uniform in 0..max_count
    min_radius: float = 0.06
    max_radius: float = 0.11
    max_images: int = 3       # multi-image examples have 2..max_images images
    num_frames: int = 6       # tracking videos
    fps: float = 2.0
    # pointing / counting: questions per scene, as a message tree (Molmo2 packs several annotations of one
    # image as branches): the first asks about the sampled target, the others about the scene's other kinds
    # (counting also about absent ones). Training signal per encoded image; 1 = the plain task (held-out eval).
    questions_per_image: int = 1

    @property
    def counting_chance(self) -> float:
        """Accuracy of guessing a count: targets are uniform over max_count + 1 values."""
        return 1.0 / (self.max_count + 1)


@dataclasses.dataclass(frozen=True)
class Shape:
    """One drawn object; centre and half-size `r` in pixels."""

    shape: str
    colour: str
    cx: float
    cy: float
    r: float

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"

    def box(self, cfg: SyntheticConfig, image: int = 0, time: float | None = None) -> Box:
        w, h = cfg.width, cfg.height
        return Box(self.label, (self.cx - self.r) / w, (self.cy - self.r) / h,
                   (self.cx + self.r) / w, (self.cy + self.r) / h, image, time)

    def centre(self, cfg: SyntheticConfig) -> tuple[float, float]:
        return self.cx / cfg.width, self.cy / cfg.height


def plural(label: str) -> str:
    return label + "s"


def render(shapes: list[Shape], cfg: SyntheticConfig) -> np.ndarray:
    """Draws shapes on a white canvas -> [H, W, 3] uint8 (triangles point up, apex at top)."""
    img = np.empty((cfg.height, cfg.width, 3), np.uint8)
    img[:] = BACKGROUND
    yy, xx = np.mgrid[0:cfg.height, 0:cfg.width] + 0.5  # pixel centres
    for s in shapes:
        dx, dy = np.abs(xx - s.cx), yy - s.cy
        if s.shape == "circle":
            mask = dx ** 2 + dy ** 2 <= s.r ** 2
        elif s.shape == "square":
            mask = (dx <= s.r) & (np.abs(dy) <= s.r)
        else:  # half-width grows from 0 at the apex (cy - r) to r at the base (cy + r)
            mask = (np.abs(dy) <= s.r) & (dx <= (dy + s.r) / 2)
        img[mask] = COLOURS[s.colour]
    return img


def place(rng: np.random.Generator, kinds: list[tuple[str, str]], cfg: SyntheticConfig
          ) -> list[Shape]:
    """Non-overlapping random placement (rejection sampling; shrinks sizes if a scene is full)."""
    side = min(cfg.width, cfg.height)
    scale = 1.0
    while True:
        shapes: list[Shape] = []
        for shape, colour in kinds:
            for _ in range(100):
                r = rng.uniform(cfg.min_radius, cfg.max_radius) * side * scale
                cx = rng.uniform(r, cfg.width - r)
                cy = rng.uniform(r, cfg.height - r)
                if all(abs(cx - o.cx) > r + o.r + 1 or abs(cy - o.cy) > r + o.r + 1
                       for o in shapes):
                    shapes.append(Shape(shape, colour, cx, cy, r))
                    break
            else:
                break
        if len(shapes) == len(kinds):
            return shapes
        scale *= 0.8


def _kinds() -> list[tuple[str, str]]:
    return [(s, c) for s in SHAPES for c in COLOURS]


def _other_kinds(target: tuple[str, str], rng: np.random.Generator, n: int
                 ) -> list[tuple[str, str]]:
    pool = [k for k in _kinds() if k != target]
    return [pool[i] for i in rng.integers(0, len(pool), n)]


def _image_ref(shapes: list[Shape], cfg: SyntheticConfig) -> ImageRef:
    return ImageRef(data=media.encode_png(render(shapes, cfg)))


def caption_text(shapes: list[Shape]) -> str:
    """Dense caption: counts per kind in (shape, colour) order ('There are 2 red circles...')."""
    if not shapes:
        return "There are no shapes."
    order = {k: i for i, k in enumerate(_kinds())}
    counts: dict[tuple[str, str], int] = {}
    for s in shapes:
        counts[(s.shape, s.colour)] = counts.get((s.shape, s.colour), 0) + 1
    items = sorted(counts.items(), key=lambda kv: order[kv[0]])
    phrases = [f"{n} {c} {s}" + ("s" if n > 1 else "") for (s, c), n in items]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"There {'is' if items[0][1] == 1 else 'are'} {listed}."


class SyntheticSource:
    """Random-access source of `num_examples` synthetic Examples of one task (Grain-compatible)."""

    def __init__(self, task: str, num_examples: int, seed: int = 0,
                 config: SyntheticConfig = SyntheticConfig()):
        if task not in TASKS:
            raise ValueError(f"unknown synthetic task {task!r}; choose from {sorted(TASKS)}")
        self.task, self.num_examples, self.seed, self.config = task, num_examples, seed, config
        self._task_key = zlib.crc32(task.encode())

    def __len__(self) -> int:
        return self.num_examples

    def __getitem__(self, index: int) -> Example:
        if not 0 <= index < self.num_examples:
            raise IndexError(f"index {index} out of range for {self.num_examples} examples")
        rng = np.random.default_rng([self.seed, self._task_key, index])
        ex = getattr(self, "_" + self.task)(rng, self.config)
        ex.id, ex.source, ex.task = f"{self.task}-{self.seed}-{index}", f"synthetic_{self.task}", \
            TASKS[self.task]
        return ex

    @staticmethod
    def _caption(rng: np.random.Generator, cfg: SyntheticConfig) -> Example:
        kinds = _kinds()
        n = int(rng.integers(1, cfg.max_objects + 1))
        shapes = place(rng, [kinds[i] for i in rng.integers(0, len(kinds), n)], cfg)
        conv = Conversation([Message("user", "Describe this image in detail."),
                             Message("assistant", caption_text(shapes))], style="long_caption")
        return Example("", "", "", [conv], images=[_image_ref(shapes, cfg)],
                       boxes=[s.box(cfg) for s in shapes], count=n)

    @staticmethod
    def _targets_scene(rng: np.random.Generator, cfg: SyntheticConfig, k: int):
        kinds = _kinds()
        target = kinds[int(rng.integers(0, len(kinds)))]
        n_other = int(rng.integers(0, max(cfg.max_objects - k, 0) + 1))
        shapes = place(rng, [target] * k + _other_kinds(target, rng, n_other), cfg)
        label = plural(f"{target[1]} {target[0]}")
        centres = [s.centre(cfg) for s in shapes[:k]]
        return shapes, label, centres, target

    def _points_example(self, rng: np.random.Generator, cfg: SyntheticConfig, k: int, style: str) -> Example:
        """A scene with k target shapes, asked as pointing ("Point to ...") or counting ("How many ...")."""
        shapes, label, centres, target = self._targets_scene(rng, cfg, k)
        if style == "pointing":
            question, answer = f"Point to the {label}.", formats.format_points([(1, centres)], label)
        else:
            question, answer = f"How many {label} are there?", formats.format_count([(1, centres)], label)
        conv = Conversation([Message("user", question), Message("assistant", answer)], style=style)
        convs = [conv] + self._more_questions(rng, cfg, shapes, target, style)
        return Example("", "", "", convs, images=[_image_ref(shapes, cfg)],
                       points=[Points(label, centres)], boxes=[s.box(cfg) for s in shapes],
                       count=k)

    @staticmethod
    def _more_questions(rng: np.random.Generator, cfg: SyntheticConfig, shapes: list[Shape],
                        target: tuple[str, str], style: str) -> list[Conversation]:
        """`questions_per_image - 1` more branches about the scene's other kinds (drawn after the scene, so
        the first conversation is the same as with one question): the present kinds, and for counting at most
        one absent kind ("There are none.")."""
        if cfg.questions_per_image <= 1:
            return []
        present = [kd for kd in dict.fromkeys((s.shape, s.colour) for s in shapes) if kd != target]
        picks = [present[i] for i in rng.permutation(len(present))[:cfg.questions_per_image - 1]]
        absent = [kd for kd in _kinds() if kd != target and kd not in present]
        if style != "pointing" and len(picks) < cfg.questions_per_image - 1:  # one count of zero at most
            picks.append(absent[int(rng.integers(0, len(absent)))])
        out = []
        for shape, colour in picks:
            label = plural(f"{colour} {shape}")
            centres = [s.centre(cfg) for s in shapes if (s.shape, s.colour) == (shape, colour)]
            if style == "pointing":
                q, a = f"Point to the {label}.", formats.format_points([(1, centres)], label)
            else:
                q, a = f"How many {label} are there?", formats.format_count([(1, centres)], label)
            out.append(Conversation([Message("user", q), Message("assistant", a)], style=style))
        return out

    def _pointing(self, rng: np.random.Generator, cfg: SyntheticConfig) -> Example:
        return self._points_example(rng, cfg, int(rng.integers(1, cfg.max_count + 1)), "pointing")

    def _counting(self, rng: np.random.Generator, cfg: SyntheticConfig) -> Example:
        return self._points_example(rng, cfg, int(rng.integers(0, cfg.max_count + 1)), "point_count")

    @staticmethod
    def _vqa(rng: np.random.Generator, cfg: SyntheticConfig) -> Example:
        kinds = _kinds()
        shape, colour = target = kinds[int(rng.integers(0, len(kinds)))]
        others = [k for k in kinds if k[0] != shape and k[1] != colour]  # target stays unique
        n_other = int(rng.integers(0, cfg.max_objects))
        shapes = place(rng, [target] + [others[i] for i in rng.integers(0, len(others), n_other)],
                       cfg)
        kind = int(rng.integers(0, 3))
        if kind == 0:
            q, a = f"What colour is the {shape}?", colour
        elif kind == 1:
            q, a = f"What shape is the {colour} object?", shape
        else:
            present = {(s.shape, s.colour) for s in shapes}
            absent = [k for k in kinds if k not in present]
            asked = target if rng.random() < 0.5 else absent[int(rng.integers(0, len(absent)))]
            q = f"Is there a {asked[1]} {asked[0]} in the image?"
            a = "yes" if asked in present else "no"
        conv = Conversation([Message("user", q), Message("assistant", a)], style="vqa")
        return Example("", "", "", [conv], images=[_image_ref(shapes, cfg)],
                       boxes=[s.box(cfg) for s in shapes])

    @staticmethod
    def _multi_image(rng: np.random.Generator, cfg: SyntheticConfig) -> Example:
        kinds = _kinds()
        target = kinds[int(rng.integers(0, len(kinds)))]
        label = plural(f"{target[1]} {target[0]}")
        images, boxes, points, groups = [], [], [], []
        for i in range(int(rng.integers(2, cfg.max_images + 1))):
            k = int(rng.integers(0, 3))
            shapes = place(rng, [target] * k + _other_kinds(target, rng, int(rng.integers(0, 3))),
                           cfg)
            centres = [s.centre(cfg) for s in shapes[:k]]
            images.append(_image_ref(shapes, cfg))
            boxes += [s.box(cfg, image=i) for s in shapes]
            points.append(Points(label, centres, image=i))
            groups.append((i + 1, centres))
        total = sum(len(p.xy) for p in points)
        answer = formats.format_count(groups, label)
        conv = Conversation([Message("user", f"Point to and count the {label} in these images."),
                             Message("assistant", answer)], style="multi_image_point_then_count")
        return Example("", "", "", [conv], images=images, points=points, boxes=boxes,
                       count=total)

    @staticmethod
    def _tracking(rng: np.random.Generator, cfg: SyntheticConfig) -> Example:
        kinds = _kinds()
        target = kinds[int(rng.integers(0, len(kinds)))]
        n_target = int(rng.integers(1, 3))
        objs = [target] * n_target + _other_kinds(target, rng, int(rng.integers(1, 3)))
        lane_h = cfg.height / len(objs)  # one horizontal lane per object: never overlap
        side = min(cfg.width, cfg.height)
        r = [min(rng.uniform(cfg.min_radius, cfg.max_radius) * side, lane_h / 2 - 1) for _ in objs]
        x = [rng.uniform(ri, cfg.width - ri) for ri in r]
        v = [rng.choice([-1, 1]) * rng.uniform(0.04, 0.1) * cfg.width for _ in objs]  # px/frame
        times = [i / cfg.fps for i in range(cfg.num_frames)]
        frames, paths, boxes = [], [[] for _ in objs], []
        for t in times:
            shapes = [Shape(s, c, x[j], (j + 0.5) * lane_h, r[j]) for j, (s, c) in enumerate(objs)]
            frames.append(render(shapes, cfg))
            for j, s in enumerate(shapes):
                paths[j].append((t, *s.centre(cfg)))
                boxes.append(s.box(cfg, time=t))
                x[j] += v[j]
                if not r[j] <= x[j] <= cfg.width - r[j]:  # bounce off the walls
                    v[j] = -v[j]
                    x[j] = min(max(x[j], r[j]), cfg.width - r[j])
        label = f"{target[1]} {target[0]}" + ("s" if n_target > 1 else "")
        conv = Conversation([Message("user", f"Track the {label}."),
                             Message("assistant", formats.format_tracks(paths[:n_target], label))],
                            style="track")
        video = VideoRef(data=media.encode_video(np.stack(frames), cfg.fps))
        return Example("", "", "", [conv], video=video, boxes=boxes, count=n_target,
                       tracks=[Track(label, j + 1, paths[j]) for j in range(n_target)])

    @staticmethod
    def _text(rng: np.random.Generator, cfg: SyntheticConfig) -> Example:
        a, b = (int(v) for v in rng.integers(0, 20, 2))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            q, ans = f"What is {a} plus {b}?", str(a + b)
        elif kind == 1:
            q, ans = f"What is {a} times {b}?", str(a * b)
        else:
            shape = SHAPES[a % len(SHAPES)]
            q, ans = f"How many sides does a {shape} have?", str(SIDES[shape])
        conv = Conversation([Message("user", q), Message("assistant", ans)], style="text_sft")
        return Example("", "", "", [conv])


def synthetic_sources(num_examples: int, seed: int = 0, config: SyntheticConfig = SyntheticConfig(),
                      tasks: tuple[str, ...] = tuple(TASKS)) -> dict[str, SyntheticSource]:
    """{'synthetic_<task>': source} for the offline demo mixture (see DEMO_WEIGHTS)."""
    return {f"synthetic_{t}": SyntheticSource(t, num_examples, seed, config) for t in tasks}


# --- stand-in encode_fn ----------------------------------------------------------------------

PAD, EOS, IM_START, IM_END, IM_PATCH, FRAME_START, FRAME_END, USER, ASSISTANT = range(9)
BYTE_OFFSET = 16
MM_TOKENS = (IM_START, IM_END, IM_PATCH, FRAME_START, FRAME_END)
_SPECIAL = {PAD: "<pad>", EOS: "<eos>", IM_START: "<im_start>", IM_END: "<im_end>",
            IM_PATCH: "<im_patch>", FRAME_START: "<frame_start>", FRAME_END: "<frame_end>",
            USER: "<user>", ASSISTANT: "<assistant>"}


@dataclasses.dataclass(frozen=True)
class ByteLevelEncoder:
    """Stand-in encode_fn with `Molmo2Processor.training_example`'s output contract.

    Tokens: UTF-8 bytes (+16) and a few specials; BOS, then the media tokens (shared prefix,
    branch -1), then one branch per conversation (message tree) with position_ids continuing
    after the prefix. target_ids[t] is the next token of the same branch (-1 at a span's end);
    loss_weights follow `chat.loss_weighting` (the demo's synthetic mixture: 1) where the target is an
    assistant byte or its EOS.
    Images: a global and a centre crop of `crop_px` squares in `patch_px` patches (16 x 48
    values), 2x2 pooling -> 8 `<im_patch>` tokens. Video frames: one crop each, 3x3 pooling
    over the 4x4 patch grid (-1 padded) -> 4 tokens per frame.
    """

    crop_px: int = 16
    patch_px: int = 4
    mixture: str = "synthetic"

    @property
    def crop_shape(self) -> tuple[int, int]:
        return (self.crop_px // self.patch_px) ** 2, self.patch_px ** 2 * 3

    def media_fields(self, max_crops: int, max_frames: int) -> tuple[MediaField, ...]:
        """Packer fields matching this encoder's crops (images and video frames)."""
        return (MediaField.image(max_crops, self.crop_shape),
                MediaField.video(max_frames, self.crop_shape))

    def _patches(self, pixels: np.ndarray) -> np.ndarray:
        g, p = self.crop_px // self.patch_px, self.patch_px
        im = np.asarray(Image.fromarray(pixels).resize((self.crop_px, self.crop_px),
                                                       Image.BILINEAR), np.float32)
        im = (im - 127.5) / 127.5
        return im.reshape(g, p, g, p, 3).transpose(0, 2, 1, 3, 4).reshape(g * g, p * p * 3)

    def _pooling(self, first_crop: int, window: int) -> np.ndarray:
        g = self.crop_px // self.patch_px
        rows = []
        for r0 in range(0, g, window):
            for c0 in range(0, g, window):
                rows.append([first_crop * g * g + r * g + c if r < g and c < g else -1
                             for r in range(r0, r0 + window) for c in range(c0, c0 + window)])
        return np.asarray(rows, np.int32)

    def _media(self, ex: Example) -> tuple[list[int], dict[str, np.ndarray]]:
        """Prefix tokens after BOS and the media arrays."""
        prefix: list[int] = []
        out: dict[str, np.ndarray] = {}
        if ex.images:
            crops, pooling = [], []
            for img in ex.images:
                h, w = img.array.shape[:2]
                s = min(h, w)
                centre = img.array[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2]
                pooling += [self._pooling(len(crops), 2), self._pooling(len(crops) + 1, 2)]
                crops += [self._patches(img.array), self._patches(centre)]
                prefix += [IM_START] + [IM_PATCH] * sum(len(p) for p in pooling[-2:]) + [IM_END]
            g = self.crop_px // self.patch_px // 2
            out["pixel_values"] = np.stack(crops)                   # [crops, 16, 48]
            out["image_token_pooling"] = np.concatenate(pooling)    # [tokens, 4]
            out["image_grids"] = np.asarray([[g, g, g, g]] * len(ex.images), np.int32)
            out["image_num_crops"] = np.full((len(ex.images),), 2, np.int32)
        if ex.video is not None:
            frames, times = media.decode_video(ex.video)
            crops, pooling = [], []
            for i, (frame, t) in enumerate(zip(frames, times)):
                pooling.append(self._pooling(i, 3))
                crops.append(self._patches(frame))
                prefix += self._bytes(f"{t:.1f} ") + [FRAME_START] + [IM_PATCH] * 4 + [FRAME_END]
            out["pixel_values_videos"] = np.stack(crops)            # [frames, 16, 48]
            out["video_token_pooling"] = np.concatenate(pooling)    # [tokens, 9]
            g = -(-self.crop_px // self.patch_px // 3)
            out["video_grids"] = np.asarray([[len(frames), g, g]], np.int32)
        return prefix, out

    def __call__(self, ex: Example) -> dict[str, np.ndarray]:
        prefix, out = self._media(ex)
        prefix = [EOS] + prefix  # BOS = EOS, as in Molmo2
        rule = loss_weighting(ex.task, ex.source, self.mixture)
        ids, targets, weights, branches = [], [], [], []

        def add(tokens: list[int], is_loss: list[bool], branch: int) -> None:
            """One span; weights[t] scores predicting tokens[t + 1] (targets already shifted)."""
            ids.extend(tokens)
            targets.extend(tokens[1:] + [-1])  # -1: no target
            mask = [float(x) for x in is_loss[1:]]
            w = branch_weights(mask, rule, len(ex.conversations)) if branch >= 0 and any(mask) else mask
            weights.extend([float(x) for x in w] + [0.0])
            branches.extend([branch] * len(tokens))

        add(prefix, [False] * len(prefix), -1)
        for k, conv in enumerate(ex.conversations):
            tokens, is_loss = [], []
            for m in conv.messages:
                assistant = m.role == "assistant"
                text = self._bytes(m.content) + ([EOS] if assistant else [])
                tokens += [ASSISTANT if assistant else USER] + text
                is_loss += [False] + [assistant] * len(text)
            add(tokens, is_loss, k)
        out["input_ids"] = np.asarray(ids, np.int32)                 # [T]
        out["target_ids"] = np.asarray(targets, np.int32)            # [T]
        out["loss_weights"] = np.asarray(weights, np.float32)        # [T]
        out["branch_ids"] = np.asarray(branches, np.int32)           # [T]
        out["position_ids"] = branch_positions(out["branch_ids"])   # [T]
        out["mm_token_type_ids"] = np.isin(out["input_ids"], MM_TOKENS).astype(np.int32)
        return out

    @staticmethod
    def _bytes(text: str) -> list[int]:
        return [b + BYTE_OFFSET for b in text.encode("utf-8")]

    @staticmethod
    def decode(ids: np.ndarray) -> str:
        """Token ids -> text, special tokens as <name>, padding dropped."""
        out, buf = [], bytearray()
        for i in map(int, ids):
            if i >= BYTE_OFFSET:
                buf.append(i - BYTE_OFFSET)
                continue
            out.append(buf.decode("utf-8", "replace"))
            buf = bytearray()
            if i != PAD:
                out.append(_SPECIAL.get(i, f"<{i}>"))
        out.append(buf.decode("utf-8", "replace"))
        return "".join(out)
