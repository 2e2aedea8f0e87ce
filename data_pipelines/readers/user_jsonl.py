"""Your own fine-tuning data: one JSON object per line of a `.jsonl` file -> canonical `Example`.

One line (every key but the media and one of conversation / qa / points is optional):

    {"id": "kitchen-01",
     "image": "imgs/a.jpg",                 # or "images": ["a.jpg", "b.jpg"] (paths relative to the file,
                                            #    or absolute; "http(s)://" URLs must be downloaded first)
     "video": "clips/c.mp4",                # instead of images; "start_s"/"end_s" select a clip
     "conversation": [{"role": "user", "content": "What is on the table?"},
                      {"role": "assistant", "content": "Two cups."}],
     "qa": [{"question": "...", "answer": "..."}],          # several QA turns (instead of conversation)
     "points": [{"label": "cup", "xy": [[120, 80], [300, 95]], "image": 0, "time": 1.5}],
     "tracks": [{"label": "car", "id": 1, "points": [[0.0, 100, 200], [0.5, 110, 190]]}],
     "count": 2,
     "coords": "pixels",                    # units of xy: "pixels" (default), "1000" (Molmo2's 0-1000)
                                            #    or "fraction" (0-1)
     "task": "pointing", "style": "pointing"}

A line with points (or tracks) and no conversation becomes Molmo2's pointing (counting, with
`count`; tracking, with tracks) question and its formatted answer (`molmo2_jax/processing/formats.py`).
`check_line` checks one line (keys, conversation, media exist and decode, coordinates inside the
image, times inside the video); `read_jsonl` returns the good Examples and `(line, reason)` per bad line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, MutableMapping
from typing import Any

from data_pipelines import media
from data_pipelines.schema import (BadSample, Conversation, Example, ImageRef, Message, Points, Task, Track,
                                   VideoRef, validate)

KEYS = ("id", "image", "images", "video", "start_s", "end_s", "conversation", "qa", "points", "tracks", "count",
        "coords", "task", "style")
POINT_KEYS = ("label", "xy", "image", "time")
TRACK_KEYS = ("label", "id", "points")
COORDS = ("pixels", "1000", "fraction")


def _bad(message: str, reason: str = "bad_annotation") -> BadSample:
    return BadSample(reason, message)


def _unknown(d: dict, allowed: tuple[str, ...], what: str) -> None:
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise _bad(f"unknown key(s) {extra} in {what}; the keys are {list(allowed)}", "malformed_record")


def _media_path(value: Any, root: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(f"media path {value!r} is not a non-empty string", "malformed_record")
    if value.startswith(("http://", "https://")):
        raise _bad(f"{value} is a URL: download it and give the local path", "missing_media")
    return value if os.path.isabs(value) else os.path.join(root, value)


def _conversation(d: dict) -> list[Message]:
    if "conversation" in d:
        turns = d["conversation"]
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise _bad("'conversation' must be a list of {role, content} objects", "malformed_record")
        for t in turns:
            _unknown(t, ("role", "content"), "a conversation turn")
        msgs = [Message(t.get("role"), t.get("content")) for t in turns]
    elif "qa" in d:
        turns = d["qa"]
        if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
            raise _bad("'qa' must be a list of {question, answer} objects", "malformed_record")
        msgs = []
        for t in turns:
            _unknown(t, ("question", "answer"), "a qa turn")
            msgs += [Message("user", t.get("question")), Message("assistant", t.get("answer"))]
    else:
        return []
    if not msgs:
        raise _bad("empty conversation: give at least one user and one assistant turn")
    if any(not isinstance(m.content, str) or not m.content.strip() for m in msgs):
        raise _bad("empty conversation turn: every content/question/answer must be non-empty text")
    return msgs


def _to_fraction(v: Any, size: float, unit: str, what: str) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise _bad(f"{what} {v!r} is not a number")
    scale = {"pixels": size, "1000": 1000.0, "fraction": 1.0}[unit]
    if not 0 <= v <= scale:
        raise _bad(f"{what} {v} is outside the image (0..{scale:g} in {unit})")
    return float(v) / scale


def check_line(d: Any, root: str, line_no: int = 0) -> Example:
    """One parsed JSONL line -> Example, decoding its media; BadSample(reason, why) for a bad line."""
    if not isinstance(d, dict):
        raise _bad(f"a line must be a JSON object, got {type(d).__name__}", "malformed_record")
    _unknown(d, KEYS, "the line")
    unit = d.get("coords", "pixels")
    if unit not in COORDS:
        raise _bad(f"coords {unit!r} is not one of {list(COORDS)}", "malformed_record")
    paths = d.get("images", [d["image"]] if "image" in d else [])
    if not isinstance(paths, list):
        raise _bad("'images' must be a list of paths", "malformed_record")
    images, sizes = [], []
    for p in paths:
        ref = ImageRef(path=_media_path(p, root))
        arr = media.load_image(ref)  # missing_media / undecodable_media
        images.append(ref)
        sizes.append((arr.shape[1], arr.shape[0]))
    video, duration = None, None
    if d.get("video") is not None:
        if images:
            raise _bad("give images or a video, not both", "malformed_record")
        video = VideoRef(path=_media_path(d["video"], root), start_s=d.get("start_s"), end_s=d.get("end_s"))
        duration, vsize = _video_info(video)
        sizes = [vsize]
    msgs = _conversation(d)
    points, tracks = [], []
    for p in d.get("points") or []:
        if not isinstance(p, dict):
            raise _bad("each point entry must be an object {label, xy, image, time}", "malformed_record")
        _unknown(p, POINT_KEYS, "a points entry")
        i = p.get("image", 0)
        if not isinstance(i, int) or not 0 <= i < max(len(sizes), 1) or not sizes:
            raise _bad(f"points refer to image {i!r}, but the line has {len(sizes)} image(s)")
        w, h = sizes[i]
        xy = p.get("xy")
        if not isinstance(xy, list) or not all(isinstance(q, list) and len(q) == 2 for q in xy):
            raise _bad(f"points 'xy' must be a list of [x, y] pairs, got {xy!r}")
        t = p.get("time")
        _check_time(t, duration, "point time")
        points.append(Points(p.get("label"), [(_to_fraction(x, w, unit, "x"), _to_fraction(y, h, unit, "y"))
                                              for x, y in xy], 0 if video else i, t))
    for k, tr in enumerate(d.get("tracks") or []):
        if not isinstance(tr, dict):
            raise _bad("each track must be an object {label, id, points}", "malformed_record")
        _unknown(tr, TRACK_KEYS, "a track")
        if not sizes:
            raise _bad("tracks need a video or an image")
        w, h = sizes[0]
        pts = []
        for q in tr.get("points") or []:
            if not isinstance(q, list) or len(q) != 3:
                raise _bad(f"track points must be [time, x, y], got {q!r}")
            _check_time(q[0], duration, "track time")
            pts.append((float(q[0]), _to_fraction(q[1], w, unit, "x"), _to_fraction(q[2], h, unit, "y")))
        tracks.append(Track(tr.get("label"), tr.get("id", k + 1), pts))
    task = d.get("task")
    if not msgs:
        msgs, task = _annotation_conversation(points, tracks, d.get("count"), video is not None)
    if not msgs:
        raise _bad("empty conversation: give 'conversation', 'qa', or points/tracks to point at")
    ex = Example(id=str(d.get("id", f"line{line_no}")), source="user_jsonl",
                 task=task or (Task.VIDEO_QA if video else Task.VQA if images else Task.TEXT),
                 conversations=[Conversation(msgs, d.get("style", ""))], images=images, video=video,
                 points=points, tracks=tracks, count=d.get("count"))
    validate(ex)
    return ex


def _check_time(t: Any, duration: float | None, what: str) -> None:
    if t is None:
        return
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        raise _bad(f"{what} {t!r} is not a number")
    if duration is not None and not 0 <= t <= duration:
        raise _bad(f"{what} {t} s is outside the video (0..{duration:.2f} s)")
    if duration is None:
        raise _bad(f"{what} {t} given for a line without a video")


def _video_info(ref: VideoRef) -> tuple[float, tuple[int, int]]:
    """(clip duration in seconds, (width, height)) from the container, decoding the first frame."""
    container, what = media._open_video(ref, None)
    try:
        with container:
            stream = container.streams.video[0]
            frame = next(container.decode(stream))
            size = (frame.width, frame.height)
            dur = (float(stream.duration * stream.time_base) if stream.duration
                   else float(container.duration or 0) / 1e6)
    except Exception as e:  # PyAV raises several types for broken files
        raise _bad(f"cannot decode {what}: {e}", "undecodable_media")
    start = ref.start_s or 0.0
    end = min(ref.end_s, dur) if ref.end_s is not None else dur
    return max(end - start, 0.0), size


def _annotation_conversation(points, tracks, count, is_video) -> tuple[list[Message], str | None]:
    """Molmo2's pointing / counting / tracking question and formatted answer for an annotation-only line."""
    from molmo2_jax.processing import formats

    if tracks:
        label = tracks[0].label
        return [Message("user", f"Track the {label}."),
                Message("assistant", formats.format_tracks([t.points for t in tracks], label))], Task.TRACKING
    if not points:
        return [], None
    label = points[0].label
    if is_video:
        groups = [(float(p.time or 0.0), p.xy) for p in points]
    else:
        groups = [(p.image + 1, p.xy) for p in points]
    if count is not None:
        return [Message("user", f"How many {label} are there?"),
                Message("assistant", formats.format_count(groups, label))], Task.COUNTING
    task = Task.VIDEO_POINTING if is_video else Task.POINTING
    return [Message("user", f"Point to the {label}."), Message("assistant", formats.format_points(groups, label))], task


def read_jsonl(path: str) -> tuple[list[Example], list[tuple[int, str]]]:
    """Every line of a user JSONL file checked: (good Examples, [(line number, reason)] of the bad ones)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: pass the JSONL file with --config.data.path")
    root = os.path.dirname(os.path.abspath(path))
    good, bad = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                good.append(check_line(json.loads(line), root, n))
            except json.JSONDecodeError as e:
                bad.append((n, f"malformed_record: not valid JSON ({e.msg} at column {e.colno})"))
            except BadSample as e:
                bad.append((n, str(e)))
    return good, bad


def format_report(path: str, n_good: int, bad: list[tuple[int, str]], limit: int = 50) -> str:
    """The validation report: a summary line, then `FILE:LINE: reason` per bad line."""
    lines = [f"{path}: {n_good} good line(s), {len(bad)} bad line(s)"]
    lines += [f"{path}:{n}: {why}" for n, why in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more")
    return "\n".join(lines)


def read_user_jsonl(rows, *, media_root: str | None, source: str = "user_jsonl",
                    skipped: MutableMapping[str, int], **_: Any) -> Iterator[Example]:
    """READERS entry: rows already parsed from a user JSONL file (media relative to `media_root`)."""
    for n, row in enumerate(rows, 1):
        try:
            ex = check_line(row, media_root or ".", n)
        except BadSample as e:
            skipped[e.reason] = skipped.get(e.reason, 0) + 1
            continue
        ex.source = source
        yield ex


def load_user_data(path: str, skip_bad: bool = False) -> list[Example]:
    """The trainer's check before step 1: all good lines, or DataError with the report of the bad ones.

    `skip_bad`: train on the good lines and print the report of the rest.
    """
    from data_pipelines.schema import DataError

    try:
        good, bad = read_jsonl(path)
    except (FileNotFoundError, IsADirectoryError) as e:
        raise DataError(str(e)) from None
    report = format_report(path, len(good), bad)
    if bad and not skip_bad:
        raise DataError(f"{report}\nfix these lines (check with `python -m data_pipelines.validate {path}`) "
                        "or pass --config.data.skip_bad=True to train on the good lines only")
    if not good:
        raise DataError(f"{report}\nno usable line to train on")
    if bad:
        print(f"data.skip_bad: training on {len(good)} good line(s); skipped:\n{report}", flush=True)
    return good
