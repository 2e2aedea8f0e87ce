"""Mixture statistics of a stage config, and decoded packed batches (synthetic data offline).

    python -m data_pipelines.inspect --config configs/stage1.py [--samples 20000]
    python -m data_pipelines.inspect --stage 2 [--data PREPARED]
    python -m data_pipelines.inspect --synthetic --decode 2      # demo mixture, packed + decoded
    python -m data_pipelines.inspect --config configs/demo.py --png out/   # real processor, PNGs of packs

A config's `data.mixture` ("stage1"/"stage2"/"stage3"/"synthetic") and `data.weights` (keys:
datasets, groups or name prefixes; see `mixture.config_weights`) give the weights; `data.path`
points at prepared data whose sizes replace the registry's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from data_pipelines import mixture, registry, writer
from data_pipelines.pipeline import decode_batch


def load_config(path: str) -> Any:
    """`get_config()` of a config file (configs/<stage>.py)."""
    from molmo2_jax.config_utils import load_config_file

    return load_config_file(path)


def _get(cfg: Any, dotted: str, default: Any = None) -> Any:
    for key in dotted.split("."):
        if cfg is None:
            return default
        cfg = cfg.get(key, None) if isinstance(cfg, Mapping) or hasattr(cfg, "get") else \
            getattr(cfg, key, None)
    return default if cfg is None else cfg


def resolve_weights(mixture_name: Any, weights: Mapping[str, float] | None,
                    data_path: str | None) -> tuple[dict[str, float], int | None]:
    """(per-dataset weights, stage or None) of a config; prepared sizes under `data_path`."""
    sizes = writer.prepared_datasets(data_path) if data_path and os.path.isdir(data_path) else {}
    resolved = mixture.config_weights(mixture_name, dict(weights or {}), sizes)
    digits = "".join(c for c in str(mixture_name) if c.isdigit())
    return resolved, int(digits) if digits else None


def mixture_table(weights: Mapping[str, float], stage: int | None, samples: int,
                  draws_per_run: int | None = None) -> str:
    """Per-dataset (and per-group) target and realised shares, sizes, expected draws per run."""
    realised = mixture.realised_shares(weights, samples)
    groups = {e.dataset: e.group for e in registry.STAGE_MIXTURES.get(stage, ())}
    lines = [f"{'dataset':44s} {'group':15s} {'size':>10s} {'target':>8s} {'realised':>8s}"
             + ("  draws/run*" if draws_per_run else "")]
    per_group: dict[str, float] = {}
    for name, w in sorted(weights.items(), key=lambda kv: -kv[1]):
        if w <= 0:
            continue
        size = registry.REGISTRY[name].size if name in registry.REGISTRY else None
        group = groups.get(name, "-")
        per_group[group] = per_group.get(group, 0.0) + w
        line = (f"{name:44s} {group:15s} {size if size else '?':>10} {w:8.4f} "
                f"{realised.get(name, 0.0):8.4f}")
        if draws_per_run:
            line += f"  {w * draws_per_run:10.0f}"
        lines.append(line)
    lines.append("groups: " + ", ".join(f"{g} {s:.3f}" for g, s in sorted(per_group.items())))
    if draws_per_run:
        lines.append("* lower bound: total_steps x batch_size x share (a pack holds >= 1 example)")
    if stage is not None:
        left_out = [e.dataset for e in registry.STAGE_MIXTURES[stage] if e.dataset not in weights]
        if left_out:
            lines.append(f"left out (not prepared, size unknown): {len(left_out)}: "
                         + ", ".join(left_out[:12]) + (" ..." if len(left_out) > 12 else ""))
    return "\n".join(lines)


def print_packed(batches: Iterator[Mapping[str, np.ndarray]],
                 detokenize: Callable[[list[int]], str], num_batches: int,
                 max_chars: int = 400) -> None:
    """Prints each packed row's examples as text (with processing's tokenizer: its decode)."""
    for b in range(num_batches):
        batch = next(batches)
        for row in range(len(batch["input_ids"])):
            eff = float(np.mean(batch["segment_ids"][row] > 0))
            print(f"--- batch {b} row {row}: efficiency {eff:.3f}")
            for i, text in enumerate(decode_batch(batch, detokenize, row), start=1):
                print(f"  [{i}] {text[:max_chars]}")


def crops_to_images(pixels: np.ndarray, patch: int) -> np.ndarray:
    """Patchified crops [C, g*g, patch*patch*3] in [-1, 1] -> uint8 images [C, g*patch, g*patch, 3]."""
    c, n, _ = pixels.shape
    g = int(round(n ** 0.5))
    im = pixels.reshape(c, g, g, patch, patch, 3).transpose(0, 1, 3, 2, 4, 5).reshape(c, g * patch, g * patch, 3)
    return np.clip(np.round(im * 127.5 + 127.5), 0, 255).astype(np.uint8)


def write_pack_pngs(batch: Mapping[str, np.ndarray], detokenize: Callable[[list[int]], str], patch: int,
                    out_dir: str, prefix: str = "pack") -> list[str]:
    """One PNG per packed row: each example's first crop (its global view) with the points of its text drawn."""
    from PIL import Image

    from molmo2_jax.processing.formats import parse_points
    from molmo2_jax.visualize import draw_points, grid

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for row in range(len(batch["input_ids"])):
        images = crops_to_images(batch["crops"][row], patch)
        crop_seg = batch["crop_segment_ids"][row]
        texts = decode_batch(batch, detokenize, row)
        tiles = []
        for seg, text in enumerate(texts, start=1):
            first = np.flatnonzero(crop_seg == seg)
            if not len(first):
                continue
            im = Image.fromarray(images[first[0]]).resize((160, 160), Image.NEAREST)
            tiles.append(draw_points(im, parse_points(text, 160, 160), radius=4))
        if tiles:
            path = os.path.join(out_dir, f"{prefix}_row{row}.png")
            grid(tiles, columns=4).save(path)
            paths.append(path)
    return paths


DEMO_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "demo.py")


def _is_synthetic_tiny(cfg: Any) -> bool:
    return cfg is not None and _get(cfg, "model.name") == "tiny" and _get(cfg, "data.mixture") == "synthetic"


def _demo_batches(cfg: Any, workdir: str):
    """(processor, model config, batch iterator) of a synthetic tiny-model config, as the trainer builds them."""
    from molmo2_jax.data import make_processor, make_train_data, model_config_for

    proc = make_processor(cfg, workdir)  # trains the demo tokenizer into workdir once
    model_cfg = model_config_for(cfg, proc)
    return proc, model_cfg, iter(make_train_data(cfg, proc, model_cfg))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Molmo2 mixture statistics and decoded packs.")
    p.add_argument("--config", help="configs/<stage>.py with get_config()")
    p.add_argument("--stage", type=int, choices=sorted(registry.STAGE_MIXTURES))
    p.add_argument("--data", help="prepared data root (default: the config's data.path)")
    p.add_argument("--synthetic", action="store_true", help="use the synthetic demo mixture")
    p.add_argument("--samples", type=int, default=20_000, help="draws for realised shares")
    p.add_argument("--decode", type=int, default=0, metavar="N",
                   help="print N packed batches of the demo's synthetic data (its real processor)")
    p.add_argument("--png", metavar="DIR", help="with a tiny-model config: pack synthetic data with the real "
                   "processor, print one batch as text and write PNGs of its crops with the points drawn")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config) if args.config else None
        data_path = args.data or _get(cfg, "data.path")
        if args.synthetic:
            mix_value, config_w = "synthetic", None
        elif args.stage is not None:
            mix_value, config_w = f"stage{args.stage}", None
        elif cfg is not None:
            mix_value, config_w = _get(cfg, "data.mixture"), _get(cfg, "data.weights")
        else:
            p.error("pass --config, --stage or --synthetic")
        weights, stage = resolve_weights(mix_value, config_w, data_path)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    steps, batch = _get(cfg, "total_steps"), _get(cfg, "batch_size")
    print(f"mixture: {mix_value}" + (f" (stage {stage})" if stage else "")
          + (f", data: {data_path}" if data_path else ""))
    print(mixture_table(weights, stage, args.samples,
                        steps * batch if steps and batch else None))
    if args.decode:  # the tiny demo's real processor (its SentencePiece tokenizer) on the synthetic mixture
        import tempfile

        demo = cfg if _is_synthetic_tiny(cfg) else load_config(DEMO_CONFIG)
        with tempfile.TemporaryDirectory() as tmp:
            proc, _, it = _demo_batches(demo, tmp)
            print_packed(it, proc.tokenizer.decode, args.decode)
            print(it.counters.metrics())
    if args.png:
        if not _is_synthetic_tiny(cfg):
            print("error: --png needs a synthetic tiny-model config, e.g. --config configs/demo.py", file=sys.stderr)
            return 2
        proc, model_cfg, it = _demo_batches(cfg, args.png)
        batch = next(it)
        print_packed(iter([batch]), proc.tokenizer.decode, 1)
        for path in write_pack_pngs(batch, proc.tokenizer.decode, model_cfg.vit.patch_size, args.png):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
