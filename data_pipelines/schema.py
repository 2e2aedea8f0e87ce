"""Canonical Molmo2 training example: media refs, conversations (or a message tree), annotations.

Every reader turns its upstream schema into `Example`; everything downstream (ArrayRecord shards,
the Grain pipeline, `encode_fn` in `molmo2_jax/processing/`, evaluators) reads only this.

Coordinates are fractions of the referenced image/frame's width and height, in [0, 1] (x right,
y down), so readers need no image sizes and `x * 1000` is the Molmo2 output coordinate; times are
seconds from the start of the video (clip). Target text in conversations uses the Molmo2 output
formats (`molmo2_jax/processing/formats.py`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgpack
import numpy as np

# Why a sample was skipped; the pipeline counts skips per (dataset, reason).
SKIP_REASONS = (
    "malformed_record",   # bytes that do not deserialize into an Example
    "missing_media",      # image/video file not found
    "undecodable_media",  # file present but PIL/PyAV cannot decode it
    "bad_annotation",     # points outside the image, NaNs, empty label, bad roles
    "encode_error",       # encode_fn raised
    "too_long",           # tokens or crops exceed one packed sequence
)

ROLES = ("user", "assistant")


class Task:
    """Task kinds of the Molmo2 recipe (drive prompt style and loss weights in processing)."""

    CAPTION = "caption"                # dense image caption (PixMo-Cap)
    TRANSCRIPT = "transcript"          # spoken-caption transcript (PixMo-Cap)
    POINTING = "pointing"              # point to <label> (PixMo-Points, CoSyn-Point)
    COUNTING = "counting"              # point then count (PixMo-Count)
    VQA = "vqa"                        # image question answering
    MULTI_IMAGE = "multi_image"        # QA or pointing over 2-5 images
    VIDEO_CAPTION = "video_caption"
    VIDEO_QA = "video_qa"
    VIDEO_POINTING = "video_pointing"  # points at timestamps (Molmo2-VideoPoint)
    TRACKING = "tracking"              # <tracks> over frames (molmo2-track-instruction)
    TEXT = "text"                      # text-only chat (Tulu)

    ALL = (CAPTION, TRANSCRIPT, POINTING, COUNTING, VQA, MULTI_IMAGE, VIDEO_CAPTION, VIDEO_QA,
           VIDEO_POINTING, TRACKING, TEXT)


class BadSample(Exception):
    """A sample that must be skipped and counted under `reason` (one of SKIP_REASONS)."""

    def __init__(self, reason: str, message: str):
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; use one of {SKIP_REASONS}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclasses.dataclass
class ImageRef:
    """One image: a local path (relative to the media root), encoded bytes, or a URL to fetch."""

    path: str | None = None
    data: bytes | None = None
    url: str | None = None
    sha256: str | None = None
    # Decoded pixels [H, W, 3] uint8, filled by the pipeline before encode_fn; never serialized.
    array: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass
class VideoRef:
    """One video (or clip [start_s, end_s] of it): a local path, encoded bytes, or a URL."""

    path: str | None = None
    data: bytes | None = None
    url: str | None = None
    start_s: float | None = None
    end_s: float | None = None


@dataclasses.dataclass
class Message:
    role: str      # "user" | "assistant"
    content: str


@dataclasses.dataclass
class Conversation:
    """One annotation: alternating user/assistant turns; `style` names the Molmo2 prompt style."""

    messages: list[Message]
    style: str = ""


@dataclasses.dataclass
class Points:
    """Points for one referring expression in one image (`image`) or video frame (`time`)."""

    label: str
    xy: list[tuple[float, float]]      # fractions of width, height
    image: int = 0
    time: float | None = None


@dataclasses.dataclass
class Box:
    """Ground-truth object box (fractions, x0 <= x1, y0 <= y1) for pointing F1 / counting eval."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float
    image: int = 0
    time: float | None = None


@dataclasses.dataclass
class Track:
    """One object's trajectory: (time, x, y) per visible frame; occluded frames omitted."""

    label: str
    object_id: int
    points: list[tuple[float, float, float]]


@dataclasses.dataclass
class Example:
    """The canonical Molmo2 example; `conversations` has K > 1 entries for a message tree."""

    id: str
    source: str
    task: str
    conversations: list[Conversation]
    images: list[ImageRef] = dataclasses.field(default_factory=list)
    video: VideoRef | None = None
    points: list[Points] = dataclasses.field(default_factory=list)
    boxes: list[Box] = dataclasses.field(default_factory=list)
    tracks: list[Track] = dataclasses.field(default_factory=list)
    count: int | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def _image_to_dict(ref: ImageRef) -> dict[str, Any]:
    return {"path": ref.path, "data": ref.data, "url": ref.url, "sha256": ref.sha256}


def to_dict(ex: Example) -> dict[str, Any]:
    """Plain msgpack/JSON-able dict of an Example (decoded pixels are dropped)."""
    d = dataclasses.asdict(dataclasses.replace(ex, images=[]))
    d["images"] = [_image_to_dict(r) for r in ex.images]
    return d


def from_dict(d: dict[str, Any]) -> Example:
    """Inverse of `to_dict`; raises BadSample('malformed_record') on a wrong structure."""
    try:
        return Example(
            id=str(d["id"]),
            source=str(d["source"]),
            task=str(d["task"]),
            conversations=[
                Conversation([Message(m["role"], m["content"]) for m in c["messages"]],
                             c.get("style", ""))
                for c in d["conversations"]
            ],
            images=[ImageRef(**r) for r in d.get("images", [])],
            video=VideoRef(**d["video"]) if d.get("video") else None,
            points=[Points(p["label"], [tuple(xy) for xy in p["xy"]], p.get("image", 0),
                           p.get("time")) for p in d.get("points", [])],
            boxes=[Box(**b) for b in d.get("boxes", [])],
            tracks=[Track(t["label"], t["object_id"], [tuple(p) for p in t["points"]])
                    for t in d.get("tracks", [])],
            count=d.get("count"),
            meta=dict(d.get("meta", {})),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BadSample("malformed_record", f"record does not match the Example schema ({e!r})")


def serialize(ex: Example) -> bytes:
    """Example -> bytes for one ArrayRecord record (msgpack; image bytes stored raw)."""
    return msgpack.packb(to_dict(ex), use_bin_type=True)


def deserialize(record: bytes) -> Example:
    """Bytes of one ArrayRecord record -> Example; BadSample('malformed_record') if unreadable."""
    try:
        d = msgpack.unpackb(record, raw=False)
    except Exception as e:  # msgpack raises several unrelated exception types
        raise BadSample("malformed_record", f"not a msgpack Example record ({e!r})")
    if not isinstance(d, dict):
        raise BadSample("malformed_record", f"record is a {type(d).__name__}, not a dict")
    return from_dict(d)


def validate(ex: Example) -> None:
    """Checks structure and annotations; raises BadSample naming the sample and the problem."""
    where = f"example {ex.id!r} of {ex.source!r}"
    if not ex.conversations:
        raise BadSample("bad_annotation", f"{where} has no conversation")
    for conv in ex.conversations:
        roles = [m.role for m in conv.messages]
        if not roles or len(roles) % 2 or any(r != ROLES[i % 2] for i, r in enumerate(roles)):
            raise BadSample("bad_annotation",
                            f"{where}: turns must alternate user/assistant, got {roles}")
        if any(not isinstance(m.content, str) for m in conv.messages):
            raise BadSample("bad_annotation", f"{where}: a message content is not a string")
    for p in ex.points:
        if not p.label:
            raise BadSample("bad_annotation", f"{where}: points with an empty label")
        if ex.video is None and not 0 <= p.image < max(len(ex.images), 1):
            raise BadSample("bad_annotation", f"{where}: points refer to image {p.image} "
                                              f"of {len(ex.images)}")
        for x, y in p.xy:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):  # also rejects NaN
                raise BadSample("bad_annotation", f"{where}: point ({x}, {y}) is not inside the "
                                                  "image (coordinates are fractions in [0, 1])")
    for t in ex.tracks:
        times = [p[0] for p in t.points]
        inside = all(math.isfinite(t0) and 0 <= x <= 1 and 0 <= y <= 1 for t0, x, y in t.points)
        if not inside or times != sorted(times):
            raise BadSample("bad_annotation", f"{where}: track {t.object_id} has points outside "
                                              "[0, 1] or unsorted times")
    if ex.count is not None and ex.count < 0:
        raise BadSample("bad_annotation", f"{where}: negative count {ex.count}")
