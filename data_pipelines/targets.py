"""Molmo2 target text for points, counts and tracks (reference section 7, `UnifiedPointFormatter`).

Inputs are canonical coordinates (fractions of width/height). Readers and the synthetic
generator write conversations with these; the parsers live in `molmo2_jax/processing/formats.py`.
"""

from __future__ import annotations

from collections.abc import Sequence


def scale_coord(v: float) -> int:
    """Fraction of width/height -> Molmo2 integer coordinate 0..1000 (written `%03d`)."""
    return min(max(round(1000 * v), 0), 1000)


def points_coords(groups: Sequence[tuple[str, Sequence[tuple[float, float]]]], sep: str = ";"
                  ) -> str:
    """`coords` value from (prefix = image index or timestamp, points) groups.

    Points are sorted by (x, y) within a group and numbered from 1 across groups; empty groups
    are omitted; groups are separated by `sep` (`;` in SFT html-v2, tab in html-v1).
    """
    parts, next_id = [], 1
    for prefix, xy in groups:
        scaled = sorted((scale_coord(x), scale_coord(y)) for x, y in xy)
        if not scaled:
            continue
        triples = [f"{next_id + i} {x:03d} {y:03d}" for i, (x, y) in enumerate(scaled)]
        parts.append(" ".join([prefix, *triples]))
        next_id += len(scaled)
    return sep.join(parts)


def points_tag(coords: str, label: str) -> str:
    return f'<points coords="{coords}">{label}</points>'


def image_points_text(xy: Sequence[tuple[float, float]], label: str, image: int = 1) -> str:
    """Single-image pointing answer, e.g. `<points coords="1 1 123 456">red circles</points>`."""
    if not xy:
        return "There are none."
    return points_tag(points_coords([(str(image), xy)]), label)


def count_text(coords: str, label: str, n: int) -> str:
    """Molmo2 point-then-count answer; `There are none.` for zero."""
    if n == 0:
        return "There are none."
    return f"Counting the {points_tag(coords, label)} shows a total of {n}."


def format_time(t: float) -> str:
    """Timestamp prefix as Molmo2 writes it: `str(round(t, 1))`."""
    return str(round(t, 1))


def tracks_text(tracks: Sequence[Sequence[tuple[float, float, float]]], label: str) -> str:
    """`<tracks coords="0.0 1 259 340;0.5 1 270 338">label</tracks>` from [(time, x, y)] per object.

    Object ids are numbered from 1 in order of first appearance (time, then x, y); occluded
    points are simply absent from an object's list.
    """
    firsts = sorted((pts[0], k) for k, pts in enumerate(tracks) if pts)
    new_id = {k: i + 1 for i, (_, k) in enumerate(firsts)}
    by_time: dict[float, list[tuple[int, int, int]]] = {}
    for k, pts in enumerate(tracks):
        for t, x, y in pts:
            by_time.setdefault(round(t, 1), []).append((new_id[k], scale_coord(x), scale_coord(y)))
    groups = [format_time(t) + "".join(f" {i} {x:03d} {y:03d}" for i, x, y in sorted(objs))
              for t, objs in sorted(by_time.items())]
    return f'<tracks coords="{";".join(groups)}">{label}</tracks>'
