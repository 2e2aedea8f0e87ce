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
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from data_pipelines import media
from data_pipelines.schema import (Box, Conversation, Example, ImageRef, Message, Points, Task,
                                   Track, VideoRef)
from molmo2_jax.processing import formats

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
    # pointing: the fraction of scenes whose asked kind is absent ("There are none.", as PixMo-Points' negative
    # questions); 0 = always 1..max_count targets (the held-out pointing eval)
    pointing_negatives: float = 0.0
    # tasks ("pointing", "counting") whose scenes get one more branch whose answer differs
    # from the first's in kind: a kind absent from the scene ("There are none.") when the first has targets, a
    # drawn kind when it has none. The same image then needs two answers, so the "none" decision must read the
    # question, not the number of objects drawn. () = off (the held-out eval).
    contrast_questions: tuple[str, ...] = ()

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


def _question(label: str, centres: list[tuple[float, float]], style: str) -> Conversation:
    """'Point to the <label>.' ("pointing") or 'How many <label> are there?' (point-then-count), answered."""
    if style == "pointing":
        q, a = f"Point to the {label}.", formats.format_points([(1, centres)], label)
    else:
        q, a = f"How many {label} are there?", formats.format_count([(1, centres)], label)
    return Conversation([Message("user", q), Message("assistant", a)], style=style)


def _ask_about(kind: tuple[str, str], shapes: list[Shape], style: str, cfg: SyntheticConfig) -> Conversation:
    """`_question` about one (shape, colour) kind of a drawn scene, answered with that kind's centres."""
    centres = [s.centre(cfg) for s in shapes if (s.shape, s.colour) == kind]
    return _question(plural(f"{kind[1]} {kind[0]}"), centres, style)


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
        convs = [_question(label, centres, style)] + self._more_questions(rng, cfg, shapes, target, style)
        if self.task in cfg.contrast_questions:
            convs += self._contrast_question(rng, shapes, k, style, cfg)
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
        return [_ask_about(kind, shapes, style, cfg) for kind in picks]

    @staticmethod
    def _contrast_question(rng: np.random.Generator, shapes: list[Shape], k: int, style: str,
                           cfg: SyntheticConfig) -> list[Conversation]:
        """One branch about a kind absent from the scene when the first question has targets, else about a drawn
        kind (drawn after everything else, so the first conversations are unchanged); none for an empty scene."""
        present = list(dict.fromkeys((s.shape, s.colour) for s in shapes))
        pool = [kd for kd in _kinds() if kd not in present] if k else present  # k = 0: the target is not drawn
        if not pool:
            return []
        return [_ask_about(pool[int(rng.integers(0, len(pool)))], shapes, style, cfg)]

    def _pointing(self, rng: np.random.Generator, cfg: SyntheticConfig) -> Example:
        k = int(rng.integers(1, cfg.max_count + 1))
        if cfg.pointing_negatives and rng.random() < cfg.pointing_negatives:
            k = 0
        return self._points_example(rng, cfg, k, "pointing")

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
