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


HIT, MISS, TRUTH = (52, 199, 89), (255, 59, 48), (0, 122, 255)


def _wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap to at most `width` characters a line (PIL's default font is fixed-width enough)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line] if line else lines


def draw_prediction_panel(image: Image.Image, prompt: str, predicted: Sequence[tuple[float, float]],
                          truth: Sequence[tuple[float, float, float, float]], hits: Sequence[bool],
                          size: int = 256) -> Image.Image:
    """One pointing answer: the prompt as title, ground-truth boxes, predicted points marked hit/miss, a legend.

    `predicted` are pixel (x, y) and `truth` pixel boxes (x0, y0, x1, y1) of `image`; `hits[i]` says whether
    predicted point i was matched one-to-one to a ground-truth object (molmo2_jax/eval/pointing.py match_points).
    """
    sx, sy = size / image.width, size / image.height
    body = image.convert("RGB").resize((size, size), Image.NEAREST)
    draw = ImageDraw.Draw(body)
    for x0, y0, x1, y1 in truth:
        draw.rectangle([x0 * sx - 1, y0 * sy - 1, x1 * sx + 1, y1 * sy + 1], outline=TRUTH, width=2)
    r = max(3, size // 40)
    for (x, y), hit in zip(predicted, hits):
        x, y = x * sx, y * sy
        if hit:
            draw.ellipse([x - r - 1, y - r - 1, x + r + 1, y + r + 1], fill=(255, 255, 255))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=HIT)
        else:
            for w, c in ((4, (255, 255, 255)), (2, MISS)):
                draw.line([x - r, y - r, x + r, y + r], fill=c, width=w)
                draw.line([x - r, y + r, x + r, y - r], fill=c, width=w)
    title = _wrap(prompt, max(10, size // 7))[:3]
    n_hit = int(sum(bool(h) for h in hits))
    legend = [(HIT, "o", f"predicted, hit ({n_hit})"), (MISS, "x", f"predicted, miss ({len(hits) - n_hit})"),
              (TRUTH, "[]", f"ground truth ({len(truth)})")]
    line_h = 13
    top, bottom = 6 + line_h * len(title), 6 + line_h * len(legend)
    panel = Image.new("RGB", (size, top + size + bottom), (255, 255, 255))
    panel.paste(body, (0, top))
    d = ImageDraw.Draw(panel)
    for i, text in enumerate(title):
        d.text((4, 3 + i * line_h), text, fill=(0, 0, 0))
    for i, (c, mark, text) in enumerate(legend):
        y = top + size + 4 + i * line_h
        if mark == "o":
            d.ellipse([6, y + 1, 14, y + 9], fill=c)
        elif mark == "x":
            d.line([6, y + 1, 14, y + 9], fill=c, width=2)
            d.line([6, y + 9, 14, y + 1], fill=c, width=2)
        else:
            d.rectangle([6, y + 1, 14, y + 9], outline=c, width=2)
        d.text((20, y), text, fill=(0, 0, 0))
    return panel
