"""Molmo2's output formats: points, tracks and counts as text, written for targets and parsed in eval.

    <points coords="1 1 073 160 2 911 800">boats</points>     one image: image index 1, then
                                                               `id x y` with x, y in 0..1000
    <points coords="1 1 100 200;2 2 300 400">cats</points>    several images: groups by image index
    <points coords="0.5 1 911 800;1.0 2 900 400">...</points> video: groups by time in seconds
    <tracks coords="0.0 1 259 340;1.0 1 138 427">car</tracks>  tracking: object ids per time
    Counting the <points ...>boats</points> shows a total of 5.   /   There are none.

The writers are allenai/molmo2's `UnifiedPointFormatter` (olmo/preprocessing/point_formatter.py,
html-v2: groups joined by ';'), taking canonical coordinates (fractions of width/height):
coordinates are integers 0..1000 (3 digits, zero-padded); points are sorted by their scaled (x, y)
and numbered from 1 across groups; an answer without points is "There are none."
(`build_point_output`), one without tracks "No tracks available." Images without points are left
out (data_formatter keeps only images with points); video frames without points stay, as `0.5 `
(`format_video_points` writes every sampled timestamp).

The parsers read groups separated by ';', tab, ':' or ',', and also Molmo's legacy
`<point x="41.0" y="22.5" alt="...">` / `<points x1=".." y1=".." ...>` (percent, 0-100); they
never raise: whatever does not parse is skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

Point = tuple[float, float]
Size = tuple[float, float]
# (image index, 1-based) or (timestamp in seconds, float) -> points as fractions of width/height
PointGroup = tuple[int | float, Sequence[Point]]

NO_POINTS = "There are none."
NO_TRACKS = "No tracks available."

_TAG_RE = re.compile(r"<(points|tracks|point)(?=[\s>/])([^<>]*)>", re.IGNORECASE)
_ATTR_RE = re.compile(r"([A-Za-z_][\w-]*)\s*=\s*\"([^\"]*)\"")
_GROUP_SPLIT_RE = re.compile(r"[;\t:,]")
_CLOSE_RE = {name: re.compile(f"</{name}>", re.IGNORECASE) for name in ("points", "tracks", "point")}
_LEGACY_KEY_RE = re.compile(r"([xy])(\d*)$")


def to_1000(fraction: float) -> int:
    """Fraction of width/height -> Molmo2's integer 0..1000 coordinate (clamped, as `_scale_point`)."""
    return int(min(max(round(1000 * fraction), 0), 1000))


def from_1000(value: float, size: float) -> float:
    """Molmo2's 0..1000 coordinate -> pixels."""
    return value / 1000 * size


def format_time(t: float) -> str:
    """A timestamp group prefix as Molmo2 writes it (`DefaultTimestampFormatter`: "%0.1f")."""
    return f"{t:.1f}"


def _prefix(group: int | float) -> str:
    """Image indices as integers, timestamps with one decimal."""
    return format_time(group) if isinstance(group, float) else str(int(group))


def points_coords(groups: Sequence[PointGroup], sep: str = ";") -> str:
    """The `coords` value of `<points>`: `prefix id x y id x y ...` per group, joined by `sep`.

    Points are sorted by scaled (x, y) within a group and numbered from 1 across groups. Image
    groups without points are left out; timestamp groups without points stay as `t ` (Molmo2).
    """
    parts, next_id = [], 1
    for group, xy in groups:
        scaled = sorted((to_1000(x), to_1000(y)) for x, y in xy)
        if not scaled and not isinstance(group, float):
            continue
        triples = " ".join(f"{next_id + i} {x:03d} {y:03d}" for i, (x, y) in enumerate(scaled))
        parts.append(f"{_prefix(group)} {triples}")
        next_id += len(scaled)
    return sep.join(parts)


def _tag(name: str, coords: str, label: str) -> str:
    return f'<{name} coords="{coords}">{label}</{name}>'


def format_points(groups: Sequence[PointGroup], label: str, sep: str = ";") -> str:
    """Molmo2's pointing answer, e.g. `<points coords="1 1 123 456">red circles</points>`; "There are none."."""
    if not sum(len(xy) for _, xy in groups):
        return NO_POINTS
    return _tag("points", points_coords(groups, sep), label)


def format_count(groups: Sequence[PointGroup], label: str, sep: str = ";") -> str:
    """Molmo2's point-then-count answer: "Counting the <points ...>label</points> shows a total of N."."""
    n = sum(len(xy) for _, xy in groups)
    if n == 0:
        return NO_POINTS
    return f"Counting the {_tag('points', points_coords(groups, sep), label)} shows a total of {n}."


def format_tracks(tracks: Sequence[Sequence[tuple[float, float, float]]], label: str, sep: str = ";") -> str:
    """`<tracks coords="0.0 1 259 340;0.5 1 270 338">label</tracks>` from [(time, x, y)] per object.

    Frames in time order; objects are numbered from 1 by first appearance (earlier frame first,
    then scaled (x, y) within the frame, as `build_video_track_coordinates`), listed by id in
    each frame; occluded points are simply absent from an object's list.
    """
    by_time: dict[str, dict[int, tuple[int, int]]] = {}
    order: dict[str, float] = {}
    for k, pts in enumerate(tracks):
        for t, x, y in pts:
            key = format_time(t)
            order[key] = min(order.get(key, t), t)
            by_time.setdefault(key, {})[k] = (to_1000(x), to_1000(y))
    if not by_time:
        return NO_TRACKS
    new_id: dict[int, int] = {}
    frames = []
    for key in sorted(by_time, key=order.__getitem__):
        objs = by_time[key]
        for k in sorted(objs, key=lambda k: objs[k]):
            new_id.setdefault(k, len(new_id) + 1)
        triples = " ".join(f"{new_id[k]} {x:03d} {y:03d}" for k, (x, y) in sorted(objs.items(),
                                                                                   key=lambda kv: new_id[kv[0]]))
        frames.append(f"{key} {triples}")
    return _tag("tracks", sep.join(frames), label)


# ------------------------------------------------------------------------------------------------
# Parsing


def _number(token: str) -> float | None:
    """A finite float, or None."""
    try:
        value = float(token)
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _tags(text: str):
    """(tag name, attributes, label) for each points/tracks/point tag; label None if unclosed."""
    matches = list(_TAG_RE.finditer(text))
    for k, m in enumerate(matches):
        name = m.group(1).lower()
        attrs = {key.lower(): v for key, v in _ATTR_RE.findall(m.group(2))}
        label = None
        if not m.group(2).rstrip().endswith("/"):
            next_start = matches[k + 1].start() if k + 1 < len(matches) else len(text)
            close = _CLOSE_RE[name].search(text, m.end(), next_start)
            if close:
                label = text[m.end():close.start()].strip()
        yield name, attrs, label or attrs.get("alt") or None


def _coord_groups(coords: str):
    """(group token, [(id, x1000, y1000)]) per group of a coords attribute: `group id x y id x y ...`."""
    for chunk in _GROUP_SPLIT_RE.split(coords):
        tokens = chunk.split()
        if not tokens:
            continue
        triples = []
        for k in range(1, len(tokens) - 2, 3):
            idx, x, y = (_number(t) for t in tokens[k:k + 3])
            if idx is None or x is None or y is None or idx != int(idx):
                continue
            if 0 <= x <= 1000 and 0 <= y <= 1000:
                triples.append((int(idx), x, y))
        yield tokens[0], triples


def _size_for(group: int | float | None, width: Any, height: Any) -> Size | None:
    """The (width, height) a group's coordinates refer to; None if there is no such image."""
    if isinstance(width, (int, float)) and isinstance(height, (int, float)):
        return float(width), float(height)
    try:
        k = group - 1 if isinstance(group, int) else 0
        if k < 0:
            return None
        return float(width[k]), float(height[k])
    except (IndexError, TypeError, ValueError):
        return None


def _parse_group(token: str) -> int | float | None:
    """An image index (int) or a timestamp (float, written with a '.'); None if invalid."""
    value = _number(token)
    if value is None or value < 0:
        return None
    return value if "." in token else int(value)


def parse_points(text: str, width: Any, height: Any) -> list[dict[str, Any]]:
    """Points in pixels from model output: dicts with x, y, id, group, label.

    `group` is the image index (int, 1-based as in "Image 1") or the timestamp (float seconds);
    None for a single image (every group is image 1 and one size was given). Pass per-image
    lists of widths/heights for multi-image answers. Never raises.
    """
    try:
        return _parse_points(str(text), width, height)
    except Exception:  # noqa: BLE001 - garbage in, empty out
        return []


def _parse_points(text: str, width: Any, height: Any) -> list[dict[str, Any]]:
    single = isinstance(width, (int, float)) and isinstance(height, (int, float))
    out: list[dict[str, Any]] = []
    legacy_id = 0
    for name, attrs, label in _tags(text):
        if "coords" in attrs:
            for token, triples in _coord_groups(attrs["coords"]):
                group = _parse_group(token)
                if group is None:
                    continue
                size = _size_for(group, width, height)
                if size is None:
                    continue
                for idx, x, y in triples:
                    out.append({"x": from_1000(x, size[0]), "y": from_1000(y, size[1]),
                                "id": idx, "group": group, "label": label})
            continue
        size = _size_for(None, width, height)
        if size is None:
            continue
        xs: dict[str, float] = {}
        ys: dict[str, float] = {}
        for key, value in attrs.items():
            m = _LEGACY_KEY_RE.match(key)
            number = _number(value)
            if m and number is not None and 0 <= number <= 100:
                (xs if m.group(1) == "x" else ys)[m.group(2)] = number
        for key in sorted(set(xs) & set(ys), key=lambda k: int(k) if k else 0):
            legacy_id += 1
            out.append({"x": xs[key] / 100 * size[0], "y": ys[key] / 100 * size[1],
                        "id": legacy_id, "group": None, "label": label})
    if single and all(p["group"] is None or (type(p["group"]) is int and p["group"] == 1)
                      for p in out):
        for p in out:
            p["group"] = None
    return out


def parse_tracks(text: str, width: float, height: float) -> list[dict[str, Any]]:
    """Tracks from model output: [{"time": s, "points": {object_id: (x, y)}}] in time order.

    Reads `<tracks>` tags and video `<points>` (groups that are timestamps). Never raises.
    """
    try:
        steps: dict[float, dict[int, Point]] = {}
        for name, attrs, _ in _tags(str(text)):
            if name == "point" or "coords" not in attrs:
                continue
            for token, triples in _coord_groups(attrs["coords"]):
                time = _number(token)
                if time is None or time < 0 or (name == "points" and "." not in token):
                    continue
                step = steps.setdefault(time, {})
                for idx, x, y in triples:
                    step[idx] = (from_1000(x, width), from_1000(y, height))
        return [{"time": t, "points": steps[t]} for t in sorted(steps)]
    except Exception:  # noqa: BLE001 - garbage in, empty out
        return []


# allenai/molmo2 olmo/eval/evaluators.py WORD_TO_NUM
_WORD_TO_NUM = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_TOTAL_OF_RE = re.compile(r"(?:a total of|the total number(?:\s+of\s+.+?)?\s+is:)\s*(\d+)", re.IGNORECASE)
_NONE_RE = re.compile(r"\bnone\b", re.IGNORECASE)


def parse_count(text: str) -> int | None:
    """The count a counting answer states, in the order of allenai/molmo2's `PointCountEval`.

    1. the last word is a number ("3", "There are 3", "three");
    2. "a total of N" / "the total number of ... is: N" (`VixMoPointCountEval`);
    3. the number of points the answer holds (allenai finally counts `extract_points`);
    4. "none" -> 0 ("There are none.").
    None when none of these applies (e.g. "There are three dogs.", "I cannot tell"). Never raises.
    """
    try:
        text = str(text)
        words = text.lower().rstrip(".").strip().split()
        if words:
            last = words[-1].strip(". ")
            if last.isascii() and last.isdigit():
                return int(last)
            if last in _WORD_TO_NUM:
                return _WORD_TO_NUM[last]
        m = _TOTAL_OF_RE.search(text)
        if m:
            return int(m.group(1))
        points = parse_points(text, 1000, 1000)
        if points:
            return len({(p["group"], p["id"]) for p in points})
        return 0 if _NONE_RE.search(text) else None
    except Exception:  # noqa: BLE001 - garbage in, None out
        return None
