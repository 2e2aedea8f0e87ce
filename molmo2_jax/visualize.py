"""Draw what the model points at: parsed points (and tracks) over images and frame strips."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

COLOURS = ((255, 59, 48), (52, 199, 89), (0, 122, 255), (255, 204, 0), (175, 82, 222), (255, 149, 0))


def draw_points(image: Image.Image, points: Sequence[dict], radius: int | None = None,
                colour: tuple[int, int, int] | None = None) -> Image.Image:
    """A copy of `image` with each point (dict with pixel `x`, `y`, optional `id`) drawn as a ringed dot."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    r = radius or max(2, round(min(out.size) / 40))
    for i, p in enumerate(points):
        c = colour or COLOURS[(int(p.get("id") or i)) % len(COLOURS)]
        x, y = float(p["x"]), float(p["y"])
        draw.ellipse([x - r - 1, y - r - 1, x + r + 1, y + r + 1], fill=(255, 255, 255))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=c)
    return out


def grid(images: Sequence[Image.Image], columns: int = 4, pad: int = 4) -> Image.Image:
    """Tile images (e.g. video frames or demo predictions) into one picture."""
    w = max(im.width for im in images)
    h = max(im.height for im in images)
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + pad) + pad), (255, 255, 255))
    for i, im in enumerate(images):
        sheet.paste(im, (pad + (i % columns) * (w + pad), pad + (i // columns) * (h + pad)))
    return sheet


def draw_video_strip(frames, timestamps, points: Sequence[dict], tracks: Sequence[dict], max_frames: int = 8,
                     size: int = 192) -> Image.Image:
    """A strip of up to `max_frames` sampled frames, each with the points/tracks whose time is that frame's."""
    import numpy as np

    idx = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
    tiles = []
    for i in idx:
        t = float(timestamps[i])
        im = Image.fromarray(frames[i])
        sx, sy = size / im.width, size / im.height
        here = [p for p in points if p.get("group") is not None and abs(float(p["group"]) - t) < 1e-3]
        for tr in tracks:
            if abs(float(tr["time"]) - t) < 1e-3:
                here += [{"x": x, "y": y, "id": k} for k, (x, y) in tr["points"].items()]
        scaled = [dict(p, x=p["x"] * sx, y=p["y"] * sy) for p in here]
        tiles.append(draw_points(im.resize((size, size)), scaled))
    return grid(tiles, columns=min(4, len(tiles)))
