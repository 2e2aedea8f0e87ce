"""Write the generated tables of docs/*.md and README.md from the real code (shapes, sharding rules, dataset
registry) and the demo run's own figures (`docs/figures/demo_summary.json`, written by `make_figures.py --run`).

COMMAND: python docs/make_tables.py           # rewrites the blocks between `<!-- generated:NAME -->` markers
         python docs/make_tables.py --check   # exit 1 when a doc is stale (tests/test_docs.py runs this)

Nothing is allocated: the nano model is built with `nnx.eval_shape` and every step of its forward pass is
traced with `jax.eval_shape` on the arrays the real processor makes from one 640x480 image and a 4-frame video.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DOCS = {"shapes": "docs/architecture.md", "rules": "docs/training.md", "registry": "docs/data.md", "demo": "README.md"}
DEMO_SUMMARY = os.path.join(ROOT, "docs", "figures", "demo_summary.json")
PHOTO = (480, 640)  # (height, width) of the example image


def _fmt(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def shapes_rows() -> list[tuple[str, str, str]]:
    """(step, where in the code, shape) for the nano preset, one image + one 4-frame video through the model."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from molmo2_jax.attention import molmo2_mask
    from molmo2_jax.connector import gather_windows, masked_mean_query
    from molmo2_jax.model import Molmo2, merge_visual_inputs
    from molmo2_jax.model_config import preset
    from molmo2_jax.processing.images import ImageConfig, crop_geometry, image_token_ids, process_image
    from molmo2_jax.model_config import Molmo2TokenIds
    from molmo2_jax.processing.video import VideoConfig, VideoFrames, process_video, video_token_segments

    cfg = preset("nano")
    icfg, vcfg, ids = ImageConfig(), VideoConfig(), Molmo2TokenIds()
    photo = np.zeros((*PHOTO, 3), np.uint8)
    th, tw, ch, cw = crop_geometry(*PHOTO, icfg)
    img = process_image(photo, icfg)
    frames = VideoFrames(np.zeros((4, 240, 320, 3), np.uint8), np.asarray([0.0, 0.5, 1.0, 1.5]))
    vid = process_video(frames, vcfg)
    img_tokens = image_token_ids(img.grid, icfg, ids)
    vid_tokens = sum(len(s) for s in video_token_segments(frames.timestamps, vid.grid, vcfg, ids)
                     if not isinstance(s, str))
    rows = [
        ("image pixels (uint8 RGB)", "processing/images.py load_image", _fmt(photo.shape)),
        (f"crop grid {th}x{tw} + global view; canvas {ch}x{cw} px", "processing/images.py crop_geometry",
         f"{1 + th * tw} crops of {icfg.base_size}x{icfg.base_size}"),
        ("patchified crops (14 px patches, [-1, 1])", "processing/images.py process_image",
         _fmt(img.pixel_values.shape)),
        ("image pooling windows (2x2 patches, -1 = pad)", "processing/images.py pooling_windows",
         _fmt(img.pooling.shape)),
        ("image tokens (global rows + high-res rows, `<im_col>`)", "processing/images.py image_token_ids",
         _fmt(img_tokens.shape)),
        ("video frames, one crop each", "processing/video.py process_video", _fmt(vid.pixel_values.shape)),
        ("video pooling windows (3x3 patches)", "processing/video.py process_video", _fmt(vid.pooling.shape)),
        ("video tokens (frames; the times are text)", "processing/video.py video_token_segments",
         f"[{vid_tokens}]"),
    ]

    abstract = nnx.eval_shape(lambda: Molmo2(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    pixels, pooling = jax.eval_shape(
        lambda a, b, c, d: merge_visual_inputs(a, b, c, d),
        *(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in (img.pixel_values, img.pooling, vid.pixel_values,
                                                           vid.pooling)))
    rows.append(("images then videos: one crop group (stack)", "model.py merge_visual_inputs", _fmt(pixels.shape)))
    rows.append(("... and one pooling table (narrow windows -1-padded)", "model.py merge_visual_inputs",
                 _fmt(pooling.shape)))

    def vit(st, px):
        m = nnx.merge(graphdef, st)
        return m.vision_tower.patch_embedding(px), m.vision_tower(px, cfg.connector.feature_layers)

    embedded, layers = jax.eval_shape(vit, state, jax.ShapeDtypeStruct(pixels.shape[1:], pixels.dtype))
    rows.append(("patch embedding + learned positions", "vit.py VisionTransformer", _fmt(embedded.shape)))
    rows.append((f"ViT blocks {', '.join(map(str, cfg.connector.feature_layers))} (of {cfg.vit.num_layers} built)",
                 "vit.py VitBlock", " + ".join(_fmt(x.shape) for x in layers)))
    feats = jax.ShapeDtypeStruct((1, *layers[0].shape[:-1], sum(x.shape[-1] for x in layers)), jnp.float32)
    rows.append(("concatenated features", "model.py Molmo2.image_features", _fmt(feats.shape)))
    windows, valid = jax.eval_shape(gather_windows, feats, pooling)
    rows.append(("patches gathered per pooling window", "connector.py gather_windows", _fmt(windows.shape)))
    query = jax.eval_shape(masked_mean_query, windows, valid)
    rows.append(("window query: mean of its valid patches", "connector.py masked_mean_query", _fmt(query.shape)))

    def pool(st, q, w, v):
        m = nnx.merge(graphdef, st)
        pooled = m.connector.image_pooling_2d(q, w, v)
        return pooled, m.connector.image_projector(pooled)

    pooled, projected = jax.eval_shape(pool, state, query, windows, valid)
    rows.append(("attention pooling over the window", "connector.py AttentionPooling", _fmt(pooled.shape)))
    rows.append(("SwiGLU projector into the LLM width", "connector.py Connector", _fmt(projected.shape)))

    prompt, answer = 12, 8  # text tokens around the media (chat template, question, answer)
    t = prompt + len(img_tokens) + vid_tokens + answer
    ids_sds = jax.ShapeDtypeStruct((1, t), jnp.int32)

    def forward(st, input_ids, px, pl):
        m = nnx.merge(graphdef, st)
        x = m.embed(input_ids, px, pl)
        info = m.mask_info(input_ids)
        attn = m.language_model.layers[0].self_attn
        hidden = m(input_ids, crops=px, crop_pooling=pl, return_hidden=True)
        return (x, molmo2_mask(info, info), attn.q_proj(x), attn.k_proj(x), hidden,
                m.language_model.logits(hidden))

    x, mask, q, k, hidden, logits = jax.eval_shape(forward, state, ids_sds, pixels, pooling)
    rows.append((f"token embeddings, pooled vectors added at `<im_patch>` ({prompt} + {answer} text tokens)",
                 "model.py add_image_features", _fmt(x.shape)))
    tc = cfg.text
    rows.append(("Molmo2 mask: causal, vision block bidirectional", "attention.py molmo2_mask", _fmt(mask.shape)))
    rows.append((f"per layer: q / k, v projections ({tc.num_heads} / {tc.num_kv_heads} heads of {tc.head_dim}; "
                 "QK-norm, RoPE)", "qwen3.py Qwen3Attention", f"{_fmt(q.shape)} / {_fmt(k.shape)}"))
    rows.append((f"after {tc.num_layers} decoder layers", "qwen3.py Qwen3", _fmt(hidden.shape)))
    rows.append(("logits over the base vocabulary (extra rows are input-only)", "qwen3.py Qwen3.logits",
                 _fmt(logits.shape)))
    return rows


def shapes_table() -> list[str]:
    rows = shapes_rows()
    out = ["| step | code | shape |", "|---|---|---|"]
    for step, where, shape in rows:
        path, name = where.split(" ", 1)
        out.append(f"| {step} | [`{name}`](../molmo2_jax/{path}) | `{shape}` |")
    return out


def rules_table() -> list[str]:
    from molmo2_jax.sharding import LOGICAL_RULES

    out = ["| logical axis | mesh axes |", "|---|---|"]
    for name, target in LOGICAL_RULES:
        t = "replicated" if target is None else " x ".join(f"`{a}`" for a in ((target,) if isinstance(target, str)
                                                                              else target))
        out.append(f"| `{name}` | {t} |")
    return out


def registry_table() -> list[str]:
    from data_pipelines import registry

    stages: dict[str, list[str]] = {}
    for stage, entries in sorted(registry.STAGE_MIXTURES.items()):
        for e in entries:
            if str(stage) not in stages.setdefault(e.dataset, []):
                stages[e.dataset].append(str(stage))
    out = [f"{len(registry.REGISTRY)} datasets, {sum(1 for s in registry.REGISTRY.values() if s.reader)} with a "
           "reader.", "", "| dataset | task | modality | media | reader | stages | annotations from |",
           "|---|---|---|---|---|---|---|"]
    for name, s in sorted(registry.REGISTRY.items()):
        origin = s.origin.replace("|", "/")
        out.append(f"| `{name}` | {s.task} | {s.modality} | {s.media} | {s.reader or '-'} | "
                   f"{','.join(stages.get(name, [])) or '-'} | {origin} |")
    return out


def demo_table(path: str = DEMO_SUMMARY) -> list[str]:
    """README's demo results: the held-out scores of the run's eval/<step>/summary.json, with chance beside them."""
    import json

    with open(path) as f:
        d = json.load(f)
    s, loss = d["summary"], d["loss"]
    return [
        f"| | chance (loss: at the start) | after {d['step']} steps |",
        "|---|---|---|",
        f"| training loss (weighted CE, per batch) | {loss['first']:.2f} at step {loss['first_step']} | "
        f"{loss['last_min']:.2f}-{loss['last_max']:.2f} (steps {loss['last_from']}-{d['step']}) |",
        f"| held-out pointing F1 (point inside the target's box, one-to-one; {s['pointing_n']} scenes) | "
        f"{s['chance_pointing_f1']:.2f} by guessing | **{s['pointing_f1']:.2f}** (P {s['pointing_precision']:.2f}, "
        f"R {s['pointing_recall']:.2f}) |",
        f"| held-out counting accuracy (0-3 objects; {s['counting_n']} scenes) | "
        f"{s['chance_counting_accuracy']:.2f} by guessing | **{s['counting_accuracy']:.2f}** |",
    ]


TABLES = {"shapes": shapes_table, "rules": rules_table, "registry": registry_table, "demo": demo_table}


def render(text: str, name: str, lines: list[str]) -> str:
    """`text` with the block between `<!-- generated:name -->` and `<!-- /generated:name -->` replaced."""
    pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- generated:{name} --> ... <!-- /generated:{name} --> block to fill")
    return pattern.sub(lambda m: m.group(1) + "\n".join(lines) + "\n" + m.group(2), text)


def stale(names=tuple(TABLES)) -> list[str]:
    """Docs whose generated block differs from what the code gives now."""
    out = []
    for name in names:
        path = os.path.join(ROOT, DOCS[name])
        with open(path) as f:
            text = f.read()
        if render(text, name, TABLES[name]()) != text:
            out.append(f"{DOCS[name]} ({name})")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when a generated table is stale")
    p.add_argument("tables", nargs="*", help=f"some of {', '.join(TABLES)} (default: all)")
    args = p.parse_args(argv)
    unknown = set(args.tables) - set(TABLES)
    if unknown:
        p.error(f"unknown tables {sorted(unknown)}; choose from {list(TABLES)}")
    args.tables = args.tables or list(TABLES)
    if args.check:
        bad = stale(args.tables)
        for b in bad:
            print(f"stale: {b}; run python docs/make_tables.py", file=sys.stderr)
        return 1 if bad else 0
    for name in args.tables:
        path = os.path.join(ROOT, DOCS[name])
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(render(text, name, TABLES[name]()))
        print(f"wrote {DOCS[name]} ({name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
