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
