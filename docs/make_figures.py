"""Draw the figures of docs/*.md from the real code (PIL only; a few minutes on a CPU).

COMMAND: python docs/make_figures.py                          # every figure into docs/figures/
         python docs/make_figures.py --run runs/demo          # also the demo's loss curve, predictions and
                                                              # demo_summary.json (README's table: make_tables.py)
         python docs/make_figures.py --only attention_mask    # one figure

Every picture is made by the functions the model and the data pipeline use: the crop grid by
`crop_geometry`, the pooling windows by `high_res_index_grid` / `pooling_windows`, the token layout by
`image_token_ids` / `video_token_segments`, the mask by `attention.molmo2_mask`, the packed batch by the demo's
own Grain pipeline, the predictions by `evaluate.draw_predictions` (the drawing the demo writes). Without
`--run` the loss curve and the predictions are left as they are (they need a finished demo run).
"""

from __future__ import annotations

import argparse
import colorsys
import glob
import json
import os
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "docs", "figures")
WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (190, 190, 190)
VISION, TEXT, PAD = (230, 120, 30), (70, 130, 200), (235, 235, 235)


def hue(i: int, n: int, light: float = 0.55) -> tuple[int, int, int]:
    r, g, b = colorsys.hls_to_rgb((i * 0.618) % 1.0 if n > 6 else i / max(n, 1), light, 0.65)
    return int(r * 255), int(g * 255), int(b * 255)


def photo(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A photo-like test image (sky, sun, hills, a house, noise), made here so nothing is downloaded."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    sky = y / height
    img[...] = np.stack([110 + 90 * sky, 160 + 60 * sky, 235 - 20 * sky], -1)
    sun = (x - 0.78 * width) ** 2 + (y - 0.2 * height) ** 2 < (0.07 * width) ** 2
    img[sun] = (255, 220, 90)
    for k, (amp, base, col) in enumerate(((40, 0.62, (90, 150, 70)), (30, 0.72, (60, 120, 50)))):
        ridge = base * height + amp * np.sin(x / width * (5 + 3 * k) + k)
        img[y > ridge] = col
    x0, y0, w, h = int(0.2 * width), int(0.5 * height), int(0.22 * width), int(0.22 * height)
    img[y0:y0 + h, x0:x0 + w] = (200, 80, 60)
    roof = (y < y0) & (y > y0 - 0.6 * h + np.abs(x - x0 - w / 2) * 0.6 * h / (w / 2))
    img[roof & (x > x0) & (x < x0 + w)] = (120, 60, 50)
    img[y0 + h // 3:y0 + h, x0 + w // 2 - 12:x0 + w // 2 + 12] = (80, 50, 40)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def label(draw: ImageDraw.ImageDraw, xy, text: str, fill=BLACK) -> None:
    draw.text(xy, text, fill=fill)


def legend(draw: ImageDraw.ImageDraw, x: int, y: int, items) -> None:
    for i, (colour, text) in enumerate(items):
        draw.rectangle([x, y + i * 14, x + 10, y + i * 14 + 10], fill=colour, outline=BLACK)
        draw.text((x + 16, y + i * 14), text, fill=BLACK)


# ------------------------------------------------------------------------------------------------


def crop_tiling() -> Image.Image:
    """The global view and the overlapping high-res crops of a 640x480 image (the released settings)."""
    from molmo2_jax.processing.images import ImageConfig, crop_geometry, resize_uint8

    cfg = ImageConfig()
    img = photo()
    th, tw, ch, cw = crop_geometry(*img.shape[:2], cfg)
    canvas = Image.fromarray(resize_uint8(img, ch, cw))
    window, s = cfg.window_patches * cfg.patch_size, cfg.base_size
    left, right = (m * cfg.patch_size for m in cfg.overlap_margins)
    shade = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    sd = ImageDraw.Draw(shade)
    draw = ImageDraw.Draw(canvas)
    for i in range(th):
        for j in range(tw):
            x0, y0 = j * window, i * window
            c = hue(i * tw + j, th * tw)
            # the margins a crop shares with a neighbour: its patches there are dropped after the ViT
            if i:
                sd.rectangle([x0, y0, x0 + s, y0 + left], fill=(*c, 90))
            if j:
                sd.rectangle([x0, y0, x0 + left, y0 + s], fill=(*c, 90))
            if i < th - 1:
                sd.rectangle([x0, y0 + s - right, x0 + s, y0 + s], fill=(*c, 90))
            if j < tw - 1:
                sd.rectangle([x0 + s - right, y0, x0 + s, y0 + s], fill=(*c, 90))
            inset = 3 * (i * tw + j)
            draw.rectangle([x0 + inset, y0 + inset, x0 + s - 1 - inset, y0 + s - 1 - inset], outline=c, width=3)
            label(draw, (x0 + inset + 6, y0 + inset + 6), f"crop {1 + i * tw + j}", fill=WHITE)
    canvas = Image.alpha_composite(canvas.convert("RGBA"), shade).convert("RGB")
    glob_view = Image.fromarray(resize_uint8(img, s, s)).resize((s // 2, s // 2))
    src = Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2))
    pad = 12
    out = Image.new("RGB", (src.width + canvas.width + 3 * pad, canvas.height + 60), WHITE)
    d = ImageDraw.Draw(out)
    out.paste(src, (pad, 40))
    label(d, (pad, 22), f"input {img.shape[1]}x{img.shape[0]}")
    out.paste(glob_view, (pad, 60 + src.height))
    label(d, (pad, 44 + src.height), f"crop 0: global view {s}x{s} (shown half size)")
    out.paste(canvas, (2 * pad + src.width, 40))
    label(d, (2 * pad + src.width, 8), f"{th}x{tw} crops of {s}x{s} on a {cw}x{ch} canvas; shaded: overlap margins "
                                       f"({cfg.overlap_margins[0]} patches = {left} px)")
    label(d, (2 * pad + src.width, 22), "a margin's patches are dropped; its neighbour's interior covers it")
    return out


def pooling_figure() -> Image.Image:
    """Patch grid of a 1x3 tiling (tiny-model sizes) coloured by pooling window; grey = -1 padding."""
    from molmo2_jax.processing.images import ImageConfig, high_res_index_grid, pooling_windows

    cfg = ImageConfig(base_size=63, patch_size=7, overlap_margins=(1, 1), max_crops=4)
    th, tw = 1, 3
    grid = high_res_index_grid(th, tw, cfg)  # [rows, cols] patch indices into the crops
    windows, rows, cols = pooling_windows(grid, *cfg.pooling)
    cell, pad = 22, 16
    h, w = grid.shape
    ph, pw = (-h) % cfg.pooling[0], (-w) % cfg.pooling[1]
    out = Image.new("RGB", ((w + pw) * cell + 2 * pad + 220, (h + ph) * cell + 2 * pad + 30), WHITE)
    d = ImageDraw.Draw(out)
    cp = cfg.crop_patches * cfg.crop_patches
    for k, win in enumerate(windows):
        r, c = divmod(k, cols)
        for m, idx in enumerate(win):
            rr, cc = r * cfg.pooling[0] + m // cfg.pooling[1], c * cfg.pooling[1] + m % cfg.pooling[1]
            x, y = pad + cc * cell, pad + 30 + rr * cell
            colour = GREY if idx < 0 else hue(k, len(windows), 0.6 + 0.15 * ((r + c) % 2))
            d.rectangle([x, y, x + cell - 2, y + cell - 2], fill=colour)
            if idx >= 0:
                label(d, (x + 2, y + 5), f"{int(idx) // cp + 1}", fill=BLACK)
        x, y = pad + c * cfg.pooling[1] * cell, pad + 30 + r * cfg.pooling[0] * cell
        d.rectangle([x - 1, y - 1, x + cfg.pooling[1] * cell - 1, y + cfg.pooling[0] * cell - 1], outline=BLACK)
    label(d, (pad, 6), f"high-res patch grid of a {th}x{tw} tiling ({cfg.crop_patches}x{cfg.crop_patches}-patch "
                       f"crops, margins {cfg.overlap_margins}); each box = one 2x2 pooling window = one token; "
                       "number = the crop the patch comes from")
    legend(d, pad + (w + pw) * cell + 20, pad + 30, [(GREY, "-1: padding (centred)"),
                                                       (hue(0, 8, 0.6), "patch in a window")])
    label(d, (pad + (w + pw) * cell + 20, pad + 70), f"{h}x{w} patches -> {rows}x{cols} tokens")
    return out


def token_layout() -> Image.Image:
    """The token sequence of one image (nano settings) and of a 4-frame video, one cell per token."""
    from molmo2_jax.processing.images import ImageConfig, image_grid, image_token_ids
    from molmo2_jax.model_config import Molmo2TokenIds
    from molmo2_jax.processing.video import VideoConfig, video_token_segments

    ids, icfg, vcfg = Molmo2TokenIds(), ImageConfig(), VideoConfig()
    names = {ids.image_patch: ("<im_patch>", VISION), ids.image_col: ("<im_col>", (120, 60, 160)),
             ids.image_start: ("<im_start>", (40, 160, 90)), ids.image_end: ("<im_end>", (200, 40, 40)),
             ids.low_res_image_start: ("<low_res_im_start>", (40, 100, 60)),
             ids.frame_start: ("<frame_start>", (40, 160, 90)), ids.frame_end: ("<frame_end>", (200, 40, 40))}
    img_tokens = list(image_token_ids(image_grid(480, 640, icfg), icfg, ids))
    vid: list = []
    for seg in video_token_segments([0.0, 0.5, 1.0, 1.5], (4, 9, 9), vcfg, ids):
        vid += [("text", seg.strip())] if isinstance(seg, str) else list(seg)
    cell, pad = 7, 12
    low_h, low_w, high_h, high_w = image_grid(480, 640, icfg)
    breaks = {ids.image_col, ids.image_end, ids.frame_end, ids.frame_start, ids.low_res_image_start,
              ids.image_start}

    def draw_seq(d, seq, y0, row_len):
        """One cell per token; a new line after a row of `row_len` patches or a layout token."""
        x, y, run = pad, y0, 0
        for tok in seq:
            colour = TEXT if isinstance(tok, tuple) else names[int(tok)][1]
            d.rectangle([x, y, x + cell - 2, y + cell - 2], fill=colour)
            x += cell
            is_patch = not isinstance(tok, tuple) and int(tok) == ids.image_patch
            run = run + 1 if is_patch else 0
            if (not isinstance(tok, tuple) and int(tok) in breaks) or (is_patch and run == row_len):
                x, y, run = pad, y + cell, 0
            if not isinstance(tok, tuple) and int(tok) == ids.image_end:
                row_len = None  # the high-res rows end in <im_col>
        return y + cell

    n_vid = sum(1 for t in vid if not isinstance(t, tuple))
    out = Image.new("RGB", (pad * 2 + 60 * cell + 260, 2 * pad + (low_h + high_h + 4 * 12 + 12) * cell + 40), WHITE)
    d = ImageDraw.Draw(out)
    label(d, (pad, 4), f"image 640x480 ({len(img_tokens)} tokens): <low_res_im_start>, {low_h}x{low_w} global view, "
                       f"<im_end>, <im_start>, {high_h} rows of {high_w} + <im_col>, <im_end>")
    y = draw_seq(d, img_tokens, 20, low_w)  # the global view has no <im_col>: break every low_w patches
    label(d, (pad, y + 6), f"video, 4 frames ({n_vid} vision tokens): per frame the time as text, <frame_start>, "
                           "9 rows of 9, <frame_end>")
    draw_seq(d, vid, y + 22, 9)
    legend(d, pad * 2 + 60 * cell + 20, 20,
           [(VISION, "<im_patch> (one pooled vector)"), ((120, 60, 160), "<im_col> (end of a high-res row)"),
            ((40, 100, 60), "<low_res_im_start>"), ((40, 160, 90), "<im_start> / <frame_start>"),
            ((200, 40, 40), "<im_end> / <frame_end>"), (TEXT, "text (the frame time)")])
    return out


def packed_mask_example():
    """A packed row: two examples (the first a message tree with two answers) and padding -> (MaskInfo, kinds)."""
    from molmo2_jax.attention import MaskInfo

    seg, pos, vis, branch, kind = [], [], [], [], []

    def add(s, n, v, b, k, p0):
        seg.extend([s] * n)
        vis.extend([v] * n)
        branch.extend([b] * n)
        kind.extend([k] * n)
        pos.extend(range(p0, p0 + n))
        return p0 + n

    p = add(1, 2, False, -1, "text", 0)
    p = add(1, 10, True, -1, "vision", p)
    p = add(1, 4, False, -1, "text", p)
    add(1, 6, False, 0, "branch 0", p)  # positions restart after the shared prefix in every branch
    add(1, 5, False, 1, "branch 1", p)
    p = add(2, 2, False, -1, "text", 0)
    p = add(2, 6, True, -1, "vision", p)
    add(2, 7, False, -1, "text", p)
    add(0, 6, False, -1, "pad", 0)
    a = lambda x, dt: np.asarray([x], dt)  # noqa: E731
    return MaskInfo(a(seg, np.int32), a(pos, np.int32), a(vis, bool), a(branch, np.int32)), kind


def attention_mask() -> Image.Image:
    """`molmo2_mask` of a packed row: causal text, the bidirectional vision block, segments, message-tree branches."""
    from molmo2_jax.attention import molmo2_mask

    info, kind = packed_mask_example()
    mask = np.asarray(molmo2_mask(info, info))[0, 0]  # [T, T]
    causal = np.asarray(molmo2_mask(info, info, bidirectional_vision=False))[0, 0]
    t = len(kind)
    cell, pad, band = 12, 14, 10
    colours = {"text": TEXT, "vision": VISION, "branch 0": (120, 60, 160), "branch 1": (40, 160, 90), "pad": PAD}
    x0, y0 = pad + band + 4, pad + band + 24
    out = Image.new("RGB", (x0 + t * cell + 240, y0 + t * cell + pad), WHITE)
    d = ImageDraw.Draw(out)
    label(d, (pad, 4), "rows: queries, columns: keys; filled = may attend (molmo2_mask)")
    for i in range(t):
        d.rectangle([x0 + i * cell, y0 - band - 2, x0 + (i + 1) * cell - 2, y0 - 2], fill=colours[kind[i]])
        d.rectangle([pad, y0 + i * cell, pad + band, y0 + (i + 1) * cell - 2], fill=colours[kind[i]])
        for j in range(t):
            c = (30, 30, 30) if causal[i, j] else VISION if mask[i, j] else WHITE
            d.rectangle([x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell - 2, y0 + (i + 1) * cell - 2], fill=c,
                        outline=(225, 225, 225))
    seg = np.asarray(info.segment_ids[0])
    for s in (1, 2):
        idx = np.flatnonzero(seg == s)
        a, b = x0 + idx[0] * cell - 1, x0 + (idx[-1] + 1) * cell - 1
        d.rectangle([a, y0 + idx[0] * cell - 1, b, y0 + (idx[-1] + 1) * cell - 1], outline=(200, 0, 0), width=2)
    lx = x0 + t * cell + 16
    legend(d, lx, y0, [((30, 30, 30), "causal, same segment/branch"), (VISION, "added: vision <-> vision"),
                       (WHITE, "masked")])
    legend(d, lx, y0 + 60, [(c, k) for k, c in colours.items()])
    label(d, (lx, y0 + 140), "red boxes: packed examples")
    label(d, (lx, y0 + 154), "(segments 1, 2; then padding)")
    label(d, (lx, y0 + 176), "example 1 is a message tree:")
    label(d, (lx, y0 + 190), "branches 0 and 1 share the")
    label(d, (lx, y0 + 204), "prefix, not each other")
    return out


def packed_batch() -> Image.Image:
    """One batch of the demo's own Grain pipeline: per row the segments, vision tokens and loss weights."""
    from data_pipelines.inspect import crops_to_images
    from molmo2_jax.data import make_processor, make_train_data, model_config_for
    from molmo2_jax.config_utils import load_config_file as load_config

    config = load_config(os.path.join(ROOT, "configs", "demo.py"))
    with tempfile.TemporaryDirectory() as tmp:
        proc = make_processor(config, tmp)
        model_cfg = model_config_for(config, proc)
        batch = next(iter(make_train_data(config, proc, model_cfg)))
    seg = np.asarray(batch["segment_ids"])
    vision = np.asarray(batch["mm_token_type_ids"]) == 1
    weights = np.asarray(batch["loss_weights"])
    rows, t = seg.shape
    cw, rh, pad, thumb = 2, 10, 12, 28
    out = Image.new("RGB", (pad * 2 + t * cw + 6 * (thumb + 2) + 20, pad + 40 + rows * (3 * rh + 10)), WHITE)
    d = ImageDraw.Draw(out)
    eff = (seg > 0).mean()
    label(d, (pad, 4), f"demo batch: {rows} rows x {t} tokens, {seg.max(1).sum()} examples, {eff:.0%} non-padding; "
                       "per row: segment | vision tokens | loss weight")
    images = [crops_to_images(np.asarray(batch["crops"][r]), model_cfg.vit.patch_size) for r in range(rows)]
    crop_seg = np.asarray(batch["crop_segment_ids"])
    wmax = max(float(weights.max()), 1e-6)
    for r in range(rows):
        y = 24 + r * (3 * rh + 10)
        for i in range(t):
            x = pad + i * cw
            s = int(seg[r, i])
            d.rectangle([x, y, x + cw - 1, y + rh - 1], fill=PAD if s == 0 else hue(s, 12))
            d.rectangle([x, y + rh, x + cw - 1, y + 2 * rh - 1], fill=VISION if vision[r, i] else PAD)
            g = int(255 - 255 * weights[r, i] / wmax)
            d.rectangle([x, y + 2 * rh, x + cw - 1, y + 3 * rh - 1], fill=(g, g, g))
        x = pad + t * cw + 12
        for s in range(1, int(seg[r].max()) + 1):
            first = np.flatnonzero(crop_seg[r] == s)
            if len(first) and x < out.width - thumb:
                out.paste(Image.fromarray(images[r][first[0]]).resize((thumb, thumb), Image.NEAREST), (x, y))
                d.rectangle([x, y + thumb, x + thumb, y + thumb + 3], fill=hue(s, 12))
                x += thumb + 2
    return out


def loss_curve(run: str) -> Image.Image | None:
    """Training loss (and the eval scores) of a demo run, from its metrics.jsonl."""
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    rows = [json.loads(line) for line in open(path) if line.strip()]
    pts = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
    if not pts:
        return None
    w, h, m = 560, 300, 46
    out = Image.new("RGB", (w, h), WHITE)
    d = ImageDraw.Draw(out)
    steps, losses = np.asarray(pts, np.float64).T
    lo, hi = 0.0, float(losses.max()) * 1.05
    sx = lambda s: m + (s - steps.min()) / max(steps.max() - steps.min(), 1) * (w - 2 * m)  # noqa: E731
    sy = lambda v: h - m - (v - lo) / (hi - lo) * (h - 2 * m)  # noqa: E731
    d.line([m, h - m, w - m, h - m], fill=BLACK)
    d.line([m, m, m, h - m], fill=BLACK)
    for v in np.linspace(lo, hi, 5):
        d.text((4, sy(v) - 5), f"{v:.1f}", fill=BLACK)
    for s in np.linspace(steps.min(), steps.max(), 5):
        d.text((sx(s) - 10, h - m + 6), f"{int(s)}", fill=BLACK)
    d.line([(sx(s), sy(v)) for s, v in pts], fill=TEXT, width=2)
    d.text((m, 10), f"{os.path.basename(os.path.abspath(run))}: weighted CE per batch (step {int(steps.min())}: "
                    f"{losses[0]:.2f}, step {int(steps.max())}: {losses[-1]:.2f})", fill=BLACK)
    evals = [r for r in rows if "eval_pointing_f1" in r]
    if evals:
        e = evals[-1]
        d.text((m, 24), f"held-out at step {e['step']}: pointing F1 {e['eval_pointing_f1']:.2f}, counting "
                        f"accuracy {e.get('eval_counting_accuracy', float('nan')):.2f}", fill=BLACK)
    d.text((w // 2 - 12, h - 16), "step", fill=BLACK)
    return out


def predictions(run: str) -> Image.Image | None:
    """The demo's held-out pointing answers, drawn by `evaluate.draw_predictions` (the demo's own PNG)."""
    from molmo2_jax.config_utils import load_config_file as load_config
    from molmo2_jax.evaluate import draw_predictions, synthetic_eval_examples

    evals = sorted(glob.glob(os.path.join(run, "eval", "*", "predictions.jsonl")),
                   key=lambda p: int(os.path.basename(os.path.dirname(p))))
    if not evals:
        return None
    config = load_config(os.path.join(ROOT, "configs", "demo.py"))
    records = [json.loads(line) for line in open(evals[-1]) if line.strip()]
    examples = synthetic_eval_examples(config, config.data.get("eval_examples", 32) // 2)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.png")
        draw_predictions(examples, records, path)
        return Image.open(path).copy() if os.path.exists(path) else None


def demo_summary(run: str, out: str) -> str | None:
    """The run's last eval/<step>/summary.json and its loss curve's ends -> OUT/demo_summary.json, which
    `make_tables.py` turns into README's demo table (so the table is always a real run's figures)."""
    evals = sorted(glob.glob(os.path.join(run, "eval", "*", "summary.json")),
                   key=lambda p: int(os.path.basename(os.path.dirname(p))))
    metrics = os.path.join(run, "metrics.jsonl")
    if not evals or not os.path.exists(metrics):
        return None
    step = int(os.path.basename(os.path.dirname(evals[-1])))
    rows = [json.loads(line) for line in open(metrics) if line.strip()]
    losses = [(r["step"], r["loss"]) for r in rows if "loss" in r and r["step"] <= step]
    tail = [v for s, v in losses if s > step - 100]
    record = {"step": step, "summary": json.load(open(evals[-1])),
              "loss": {"first_step": losses[0][0], "first": losses[0][1], "last_from": step - 100 + 10,
                       "last_min": min(tail), "last_max": max(tail)}}
    path = os.path.join(out, "demo_summary.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    return path


FIGURES = {"crop_tiling": crop_tiling, "pooling_windows": pooling_figure, "token_layout": token_layout,
           "attention_mask": attention_mask, "packed_batch": packed_batch}
RUN_FIGURES = {"loss_curve": loss_curve, "predictions": predictions}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="a finished demo workdir (metrics.jsonl, eval/<step>/predictions.jsonl)")
    p.add_argument("--only", nargs="*", help=f"some of {', '.join([*FIGURES, *RUN_FIGURES])}")
    p.add_argument("--out", default=OUT)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    wanted = args.only or [*FIGURES, *RUN_FIGURES]
    if args.run:
        path = demo_summary(args.run, args.out)
        print(f"wrote {os.path.relpath(path, ROOT)}; now run python docs/make_tables.py demo" if path else
              f"skipped demo_summary.json: {args.run} has no eval/<step>/summary.json yet")
    for name in wanted:
        if name in FIGURES:
            im = FIGURES[name]()
        elif name in RUN_FIGURES:
            if not args.run:
                print(f"skipped {name}: needs --run DIR (a finished `python -m molmo2_jax.main --config "
                      "configs/demo.py` workdir); the checked-in figure is left as it is")
                continue
            im = RUN_FIGURES[name](args.run)
            if im is None:
                print(f"skipped {name}: {args.run} has no metrics.jsonl / eval predictions yet")
                continue
        else:
            p.error(f"unknown figure {name!r}")
        path = os.path.join(args.out, f"{name}.png")
        im.save(path, optimize=True)
        print(f"wrote {os.path.relpath(path, ROOT)} {im.size[0]}x{im.size[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
