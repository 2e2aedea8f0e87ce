"""Molmo2's output formats: points, tracks and counts as text, written for targets and parsed in eval.

    <points coords="1 1 073 160 2 911 800">boats</points>     one image: image index 1, then
                                                               `id x y` with x, y in 0..1000
    <points coords="1 1 100 200;2 2 300 400">cats</points>    several images: groups by image index
    <points coords="0.5 1 911 800;1.0 2 900 400">...</points> video: groups by time in seconds
    <tracks coords="0.0 1 259 340;1.0 1 138 427">car</tracks>  tracking: object ids per time
    Counting the <points ...>boats</points> shows a total of 5.   /   There are none.

Coordinates are integers 0..1000 of the width/height (3 digits, zero-padded); points are sorted by
(x, y) and numbered from 1. Groups may be separated by ';', tab, ':' or ','. The parsers also read
Molmo's legacy `<point x="41.0" y="22.5" alt="...">` / `<points x1=".." y1=".." ...>` (percent, 0-100)
and never raise: whatever does not parse is skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

Point = tuple[float, float]
Size = tuple[float, float]

_TAG_RE = re.compile(r"<(points|tracks|point)(?=[\s>/])([^<>]*)>", re.IGNORECASE)
_ATTR_RE = re.compile(r"([A-Za-z_][\w-]*)\s*=\s*\"([^\"]*)\"")
_GROUP_SPLIT_RE = re.compile(r"[;\t:,]")
_CLOSE_RE = {name: re.compile(f"</{name}>", re.IGNORECASE) for name in ("points", "tracks", "point")}
_COUNT_RE = re.compile(r"total of\s+(\d+)", re.IGNORECASE)
_NONE_RE = re.compile(r"\bthere are none\b", re.IGNORECASE)
_LEGACY_KEY_RE = re.compile(r"([xy])(\d*)$")


def to_1000(value: float, size: float) -> int:
    """Pixel coordinate -> Molmo2's integer 0..1000 scale."""
    return int(min(max(round(value / size * 1000), 0), 1000))


def from_1000(value: float, size: float) -> float:
    """Molmo2's 0..1000 coordinate -> pixels."""
    return value / 1000 * size


def _group_str(group: int | float, time_decimals: int) -> str:
    """Image indices as integers, timestamps with a fixed number of decimals."""
    return str(group) if isinstance(group, int) else f"{group:.{time_decimals}f}"


def format_point_groups(groups: Mapping[int | float, Sequence[Point]],
                        sizes: Size | Mapping[int | float, Size], label: str,
                        time_decimals: int = 1) -> str:
    """`<points>` for points grouped by image index (int, 1-based) or time (float seconds).

    Within a group points are sorted by their (x, y) on the 0..1000 scale; ids run from 1 across
    the groups in key order. `sizes` is one (width, height) or one per group.
    """
    parts, next_id = [], 1
    for group in sorted(groups):
        w, h = sizes[group] if isinstance(sizes, Mapping) else sizes
        coords = sorted((to_1000(x, w), to_1000(y, h)) for x, y in groups[group])
        triples = []
        for x, y in coords:
            triples.append(f"{next_id} {x:03d} {y:03d}")
            next_id += 1
        parts.append(" ".join([_group_str(group, time_decimals)] + triples))
    return f'<points coords="{";".join(parts)}">{label}</points>'


def format_points(points: Sequence[Point], width: float, height: float, label: str) -> str:
    """`<points>` for one image: `<points coords="1 1 x y 2 x y ...">label</points>`."""
    return format_point_groups({1: points}, (width, height), label)


def format_count(points: Sequence[Point], width: float, height: float, label: str) -> str:
    """Molmo2's counting answer: points then the total, or 'There are none.'."""
    if not points:
        return "There are none."
    return f"Counting the {format_points(points, width, height, label)} shows a total of {len(points)}."


def format_tracks(tracks: Sequence[Mapping[str, Any]], width: float, height: float, label: str,
                  time_decimals: int = 1) -> str:
    """`<tracks>` from [{"time": t, "points": {obj: (x, y)}}]; objects renumbered 1.. by first appearance."""
    ids: dict[Any, int] = {}
    parts = []
    for step in sorted(tracks, key=lambda s: s["time"]):
        for obj in step["points"]:
            ids.setdefault(obj, len(ids) + 1)
        triples = [f"{ids[obj]} {to_1000(x, width):03d} {to_1000(y, height):03d}"
                   for obj, (x, y) in sorted(step["points"].items(), key=lambda kv: ids[kv[0]])]
        if triples:
            parts.append(" ".join([f"{step['time']:.{time_decimals}f}"] + triples))
    return f'<tracks coords="{";".join(parts)}">{label}</tracks>'


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


def parse_count(text: str) -> int | None:
    """The count an answer states ('a total of N' / 'There are none'), else its number of points."""
    try:
        text = str(text)
        m = _COUNT_RE.search(text)
        if m:
            return int(m.group(1))
        if _NONE_RE.search(text):
            return 0
        points = parse_points(text, 1000, 1000)
        return len({(p["group"], p["id"]) for p in points}) if points else None
    except Exception:  # noqa: BLE001 - garbage in, None out
        return None
