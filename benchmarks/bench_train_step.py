"""Train-step benchmark: tokens/s, step time, compile time, memory and MFU of the real JAX step, next to PyTorch.

    python benchmarks/bench_train_step.py --model tiny --seq-len 2536 --torch

builds a random transformers Molmo2 (`torch_reference.hf_config`), saves it, loads the same weights into JAX, and
trains both on the same batch (one image of `--crops` crops, the rest caption text with loss, fp32, AdamW, frozen
ViT); prints one JSON line per side and their tokens/s ratio, all from one run. `--abstract` compiles the step
on abstract shapes only (per-device memory and FLOPs, no weights; use fake devices for a mesh).
FLOPs: `train.model_flops_per_step` (LLM + ViT + connector), next to XLA's cost_analysis.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def hf_batch(config, seq_len: int, crops: int = 7, seed: int = 0) -> dict:
    """One sequence in transformers' Molmo2 inputs: text, one image (1 low-res + crops-1 high-res crops), text."""
    rng = np.random.default_rng(seed)
    t, v = config.text_config, config.vision_config
    side = v.image_size[0] // v.patch_size if isinstance(v.image_size, (list, tuple)) else v.image_size // v.patch_size
    patches, pooled = side * side, (side + 1) // 2
    cols = max(1, crops - 1)
    grid = (1, cols) if cols < 3 else (2, (cols + 1) // 2) if cols % 2 == 0 else (1, cols)

    def window(crop, r, c):
        idx = [crop * patches + (2 * r + dr) * side + 2 * c + dc if 2 * r + dr < side and 2 * c + dc < side else -1
               for dr in (0, 1) for dc in (0, 1)]
        return idx

    lo = [window(0, r, c) for r in range(pooled) for c in range(pooled)]
    hi_h, hi_w = grid[0] * pooled, grid[1] * pooled
    hi = [window(1 + (r // pooled) * grid[1] + c // pooled, r % pooled, c % pooled)
          for r in range(hi_h) for c in range(hi_w)]
    vocab = t.vocab_size
    text = lambda n: list(rng.integers(1, vocab - 1, n))  # noqa: E731
    ids = text(8) + [config.low_res_image_start_token_id] + [config.image_patch_id] * len(lo)
    ids += [config.image_end_token_id, config.image_start_token_id]
    for _ in range(hi_h):
        ids += [config.image_patch_id] * hi_w + [config.image_col_token_id]
    ids += [config.image_end_token_id]
    prompt = len(ids)
    if prompt >= seq_len:
        raise ValueError(f"--seq-len {seq_len} leaves no text after the {prompt} image tokens; raise it")
    ids = np.asarray([ids + text(seq_len - prompt)], np.int64)
    labels = ids.copy()
    labels[:, :prompt] = -100
    vision = {config.image_patch_id, config.image_col_token_id, config.image_start_token_id,
              config.image_end_token_id, config.low_res_image_start_token_id}
    n_crops = 1 + grid[0] * grid[1]
    return dict(input_ids=ids, labels=labels, attention_mask=np.ones_like(ids),
                mm_token_type_ids=np.isin(ids, list(vision)).astype(np.int64),
                pixel_values=rng.uniform(-1, 1, (n_crops, patches, v.patch_size ** 2 * 3)).astype(np.float32),
                image_token_pooling=np.asarray(lo + hi, np.int64),
                image_grids=np.asarray([[pooled, pooled, hi_h, hi_w]], np.int64))


def jax_batch(hf: dict, crop_slots: int | None = None) -> dict:
    """The same sequence in the packer's layout (target_ids shifted, crops padded to `crop_slots`)."""
    ids = hf["input_ids"].astype(np.int32)
    labels = hf["labels"]
    target = np.concatenate([np.where(labels[:, 1:] >= 0, labels[:, 1:], -1), np.full((1, 1), -1)], 1)
    crops = hf["pixel_values"]
    slots = max(crop_slots or len(crops), len(crops))
    pixels = np.zeros((1, slots, *crops.shape[1:]), np.float32)
    pixels[0, :len(crops)] = crops
    t = ids.shape[1]
    pooling = np.full((1, t, 4), -1, np.int32)
    pooling[0, :len(hf["image_token_pooling"])] = hf["image_token_pooling"]
    return {"input_ids": ids, "target_ids": target.astype(np.int32), "loss_weights": np.ones_like(ids, np.float32),
            "mm_token_type_ids": hf["mm_token_type_ids"].astype(np.int32), "segment_ids": np.ones_like(ids),
            "positions": np.arange(t, dtype=np.int32)[None], "crops": pixels, "crop_pooling": pooling,
            "crop_segment_ids": (np.arange(slots) < len(crops)).astype(np.int32)[None]}


def bench_config(args, seq_len: int, crop_slots: int):
    """The few stage-config keys the FLOPs formula and step report read."""
    from ml_collections import ConfigDict

    return ConfigDict({"batch_size": 1, "seq_len": seq_len, "freeze_vit": True, "dtype": args.dtype,
                       "data": {"max_crops": crop_slots, "max_frames": 0}})


def run_jax(args, hf_dir: str, hf: dict) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from molmo2_jax import train
    from molmo2_jax.convert import load_hf_molmo2

    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    model = load_hf_molmo2(hf_dir, dtype=dtype, attention_impl=args.attention, remat=args.remat,
                           attention_block_size=args.attention_block or 64)
    lr = {c: args.lr for c in train.COMPONENTS}
    sched = {c: (lambda v: (lambda step: v))(lr[c]) for c in train.COMPONENTS}
    opt = nnx.Optimizer(model, train.make_optimizer(sched, weight_decay=0.0, clip=1.0),
                        wrt=train.trainable_filter(True))
    batch = {k: jnp.asarray(v) for k, v in jax_batch(hf, args.crop_slots).items()}
    step = train.make_train_step()
    t0 = time.perf_counter()
    compiled = step.lower(model, opt, batch).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    times, cpus, losses = [], [], []
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        out = step(model, opt, batch)
        losses.append(float(jax.block_until_ready(out["loss"])))
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    seq_len = batch["input_ids"].shape[1]
    flops = train.model_flops_per_step(model.cfg, bench_config(args, seq_len, batch["crops"].shape[1]))
    step_s = float(np.median(times[1:] if len(times) > 1 else times))
    cpu_s = float(np.median(cpus[1:] if len(cpus) > 1 else cpus))
    out = {"side": "jax", "step_s": step_s, "cpu_s": cpu_s, "tokens_per_s": seq_len / step_s, "compile_s": compile_s,
           "losses": losses, "temp_bytes": int(mem.temp_size_in_bytes),
           "argument_bytes": int(mem.argument_size_in_bytes),
           "formula_flops": flops, "xla_flops": float(cost.get("flops", 0.0)), "flops_per_s": flops / step_s}
    peak = float(os.environ.get("MOLMO2_PEAK_FLOPS", 0))
    if peak:
        out["mfu"] = flops / step_s / peak
    return out


def run_torch(args, model, hf: dict) -> dict:
    import torch_reference

    res = torch_reference.train_steps(model, {k: v for k, v in hf.items()}, args.steps, args.lr)
    seq_len = hf["input_ids"].shape[1]
    return {"side": "torch", "step_s": res["step_s"], "cpu_s": res["cpu_s"], "tokens_per_s": seq_len / res["step_s"],
            "losses": res["losses"],
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def run_abstract(args) -> dict:
    """Compile the nano/tiny step on abstract shapes (memory/FLOPs per device) via molmo2_jax.step_report."""
    from configs.stage1 import get_config

    from molmo2_jax.step_report import compiled_step_report, format_report

    c = get_config()
    c.model.name, c.seq_len, c.dtype, c.remat, c.attention_impl = args.model, args.seq_len, args.dtype, args.remat, \
        args.attention
    if args.attention_block:
        c.attention_block_size = args.attention_block
    c.batch_size = args.batch_size
    if args.crop_slots:
        c.data.max_crops = args.crop_slots
    if args.grad_accum:
        c.grad_accum_steps = args.grad_accum
    r = compiled_step_report(c)
    print(format_report(r), file=sys.stderr)
    return dict(r, side="jax-abstract")


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", choices=("tiny", "nano"))
    p.add_argument("--seq-len", type=int, default=2536)
    p.add_argument("--crops", type=int, default=7, help="real crops of the one image (1 low-res + high-res)")
    p.add_argument("--crop-slots", type=int, default=0, help="crop budget per sequence (0 = the real crops)")
    p.add_argument("--vocab", type=int, default=151_936)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--remat", default="none", choices=("none", "block", "dots"))
    p.add_argument("--attention", default="blockwise", choices=("xla", "dot_product", "cudnn", "blockwise"))
    p.add_argument("--attention-block", type=int, default=0,
                   help="query/key block of blockwise attention (0: 64, the fastest on CPU in docs/benchmarks.md; "
                        "--abstract: the stage config's)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=8, help="--abstract only: global batch")
    p.add_argument("--grad-accum", type=int, default=0,
                   help="--abstract only: micro-batches per step (0 = configs/stage1.py's grad_accum_steps)")
    p.add_argument("--torch", action="store_true", help="also train the PyTorch reference; print the ratio")
    p.add_argument("--abstract", action="store_true", help="compile on abstract shapes only (memory, FLOPs)")
    args = p.parse_args(argv)
    if args.abstract:
        rows = [run_abstract(args)]
    else:
        import torch_reference

        config = torch_reference.hf_config(args.model, args.vocab)
        hf = hf_batch(config, args.seq_len, args.crops)
        with tempfile.TemporaryDirectory() as tmp:
            model = torch_reference.build(config, tmp)
            rows = [run_jax(args, tmp, hf)]
            if args.torch:
                rows.append(run_torch(args, model, hf))
        if args.torch:
            ratio = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
            rows.append({"side": "ratio", "jax_over_torch_tokens_per_s": ratio,
                         "jax_over_torch_cpu_s": rows[1]["cpu_s"] / rows[0]["cpu_s"], "load_avg": os.getloadavg()[0],
                         "first_loss_diff": abs(rows[0]["losses"][0] - rows[1]["losses"][0])})
    for r in rows:
        print(json.dumps(dict(r, model=args.model, seq_len=args.seq_len, dtype=args.dtype, remat=args.remat,
                              attention=args.attention, attention_block=args.attention_block or 64)))
    return rows


if __name__ == "__main__":
    main()
