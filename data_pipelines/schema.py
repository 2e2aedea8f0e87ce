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


class DataError(RuntimeError):
    """The data cannot feed training (a dataset yields no usable record); one line naming it and the fix."""


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
    # Passes over this example's dataset so far, set by the pipeline for the encoder's per-epoch
    # randomness (prompt style, length hints, crop choices); never serialized.
    epoch: int = dataclasses.field(default=0, compare=False)


def _image_to_dict(ref: ImageRef) -> dict[str, Any]:
    return {"path": ref.path, "data": ref.data, "url": ref.url, "sha256": ref.sha256}


def to_dict(ex: Example) -> dict[str, Any]:
    """Plain msgpack/JSON-able dict of an Example (decoded pixels are dropped)."""
    d = dataclasses.asdict(dataclasses.replace(ex, images=[]))
    d["images"] = [_image_to_dict(r) for r in ex.images]
    del d["epoch"]
    return d


def _dicts(d: dict[str, Any], key: str, required: bool = False) -> list[dict[str, Any]]:
    """`d[key]` as a list of dicts (missing -> [] unless required); anything else is a malformed record."""
    items = d[key] if required else (d.get(key) or [])
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, dict) for i in items):
        raise TypeError(f"{key!r} must be a list of objects, got {type(items).__name__}")
    return list(items)


def _media_ref(cls, r: dict[str, Any]):
    """ImageRef/VideoRef from a dict whose media fields are bytes or path/URL strings."""
    if set(r) - {f.name for f in dataclasses.fields(cls)} - {"array"}:
        raise TypeError(f"unknown {cls.__name__} fields {sorted(set(r) - {f.name for f in dataclasses.fields(cls)})}")
    for k in ("path", "url", "sha256"):
        if r.get(k) is not None and not isinstance(r[k], str):
            raise TypeError(f"{cls.__name__}.{k} must be a string, got {type(r[k]).__name__}")
    if r.get("data") is not None and not isinstance(r["data"], (bytes, bytearray)):
        raise TypeError(f"{cls.__name__}.data must be bytes, got {type(r['data']).__name__}")
    return cls(**{k: v for k, v in r.items() if k != "array"})


def from_dict(d: dict[str, Any]) -> Example:
    """Inverse of `to_dict`; raises BadSample('malformed_record') on a wrong structure or media type."""
    try:
        video = d.get("video")
        if video is not None and not isinstance(video, dict):
            raise TypeError(f"'video' must be an object, got {type(video).__name__}")
        meta = d.get("meta") or {}
        if not isinstance(meta, dict):
            raise TypeError(f"'meta' must be an object, got {type(meta).__name__}")
        return Example(
            id=str(d["id"]),
            source=str(d["source"]),
            task=str(d["task"]),
            conversations=[
                Conversation([Message(m["role"], m["content"]) for m in _dicts(c, "messages", required=True)],
                             c.get("style", ""))
                for c in _dicts(d, "conversations", required=True)
            ],
            images=[_media_ref(ImageRef, r) for r in _dicts(d, "images")],
            video=_media_ref(VideoRef, video) if video else None,
            points=[Points(p["label"], [tuple(xy) for xy in p["xy"]], p.get("image", 0),
                           p.get("time")) for p in _dicts(d, "points")],
            boxes=[Box(**b) for b in _dicts(d, "boxes")],
            tracks=[Track(t["label"], t["object_id"], [tuple(p) for p in t["points"]])
                    for t in _dicts(d, "tracks")],
            count=d.get("count"),
            meta=dict(meta),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        rid = d.get("id") if isinstance(d, dict) else None
        raise BadSample("malformed_record", f"record {rid!r} does not match the Example schema ({e!r})")


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


def _is_num(v: Any) -> bool:
    """A finite real number (bools and numeric strings are not)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _inside(*xy: Any) -> bool:
    """Numeric fractions inside the image, [0, 1]."""
    return all(_is_num(v) and 0.0 <= v <= 1.0 for v in xy)


def validate(ex: Example) -> None:
    """Type-checks and checks annotations; raises BadSample naming the sample and the problem.

    Coordinates must be finite numbers in [0, 1] (fractions of the image), counts and image indices
    integers, times finite numbers, labels non-empty strings, media bytes or path strings.
    """
    where = f"example {ex.id!r} of {ex.source!r}"

    def bad(message: str):
        return BadSample("bad_annotation", f"{where}: {message}")

    if not ex.conversations:
        raise BadSample("bad_annotation", f"{where} has no conversation")
    for conv in ex.conversations:
        roles = [m.role for m in conv.messages]
        if not roles or len(roles) % 2 or any(r != ROLES[i % 2] for i, r in enumerate(roles)):
            raise bad(f"turns must alternate user/assistant, got {roles}")
        if any(not isinstance(m.content, str) for m in conv.messages):
            raise bad("a message content is not a string")
        if not isinstance(conv.style, str):
            raise bad(f"conversation style {conv.style!r} is not a string")
    n_images = max(len(ex.images), 1)
    for p in ex.points:
        if not isinstance(p.label, str) or not p.label:
            raise bad(f"points with an empty or non-string label {p.label!r}")
        if not _is_int(p.image) or (ex.video is None and not 0 <= p.image < n_images):
            raise bad(f"points refer to image {p.image!r} of {len(ex.images)}")
        if p.time is not None and not _is_num(p.time):
            raise bad(f"point time {p.time!r} is not a number")
        for xy in p.xy:
            if len(xy) != 2 or not _inside(*xy):
                raise bad(f"point {xy!r} is not two numbers inside the image (coordinates are "
                          "fractions in [0, 1])")
    for b in ex.boxes:
        if not isinstance(b.label, str) or not _inside(b.x0, b.y0, b.x1, b.y1) or b.x0 > b.x1 or b.y0 > b.y1:
            raise bad(f"box {b!r} is not x0 <= x1, y0 <= y1 fractions in [0, 1] with a string label")
        if not _is_int(b.image) or (b.time is not None and not _is_num(b.time)):
            raise bad(f"box image {b.image!r} / time {b.time!r} is not an integer / number")
    for t in ex.tracks:
        ok = (isinstance(t.label, str) and _is_int(t.object_id)
              and all(len(p) == 3 and _is_num(p[0]) and _inside(p[1], p[2]) for p in t.points))
        if not ok or [p[0] for p in t.points] != sorted(p[0] for p in t.points):
            raise bad(f"track {t.object_id!r} has points that are not sorted (time, x, y) numbers with "
                      "x, y in [0, 1]")
    if ex.count is not None and (not _is_int(ex.count) or ex.count < 0):
        raise bad(f"count {ex.count!r} is not a non-negative integer")
    if ex.video is not None:
        for k in ("start_s", "end_s"):
            v = getattr(ex.video, k)
            if v is not None and (not _is_num(v) or v < 0):
                raise bad(f"video {k} {v!r} is not a non-negative number")
