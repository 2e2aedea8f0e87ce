"""Train-step benchmark: tokens/s, step time, compile time, memory and MFU of the real JAX step, next to PyTorch.

    python benchmarks/bench_train_step.py --model tiny --seq-len 2536 --torch
    python benchmarks/bench_train_step.py --model nano --rows 4 --crops 10 --grad-accum 4 --remat block \
        --attention blockwise --steps 1 --memory-limit-gb 24

builds a random transformers Molmo2 (`torch_reference.hf_config`), saves it, loads the same weights into JAX, and
trains both on the same batch (one image of `--crops` crops, the rest caption text with loss, fp32, AdamW, frozen
ViT); prints one JSON line per side and their tokens/s ratio, all from one run. `--rows R` trains R sequences,
each with its own image (PyTorch: one batch; JAX: one crop group per row, `--grad-accum N` micro-batches through
`train.make_train_step`). `--isolate` (implied by `--memory-limit-gb G`) runs the model build and each side in
its own child process: the PyTorch child under RLIMIT_AS = G GiB (`--jax-memory-limit-gb` for JAX), so an
allocation past it is a clean exception reported as `"status": "out_of_memory"` with the child's peak RSS; a
child that dies is reported with its exit code / signal, and one is killed (and reported out of memory) when the
machine's available RAM falls below `--min-available-gb`, before the kernel's OOM killer picks a process.
`--abstract` compiles the step on abstract shapes only (per-device memory and FLOPs, no weights; use fake
devices for a mesh).
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


def hf_batch(config, seq_len: int, crops: int = 7, seed: int = 0, rows: int = 1) -> dict:
    """`rows` sequences in transformers' batched Molmo2 inputs, each: text, one image (1 low-res + crops-1 high-res
    crops), caption text with loss. Row r draws from seed + r (row 0 = the one-row batch).

    transformers' layout (Molmo2ImageProcessor): every image's crops concatenated in `pixel_values` [N, P, D],
    `image_token_pooling` [M, 4] indexing the flattened patches of ALL crops (offset per image), `image_grids`
    [images, 4], `image_num_crops` [images]; token fields [rows, T].
    """
    one = [_hf_row(config, seq_len, crops, np.random.default_rng(seed + r)) for r in range(rows)]
    patches = one[0]["pixel_values"].shape[1]
    offsets = np.cumsum([0] + [len(o["pixel_values"]) * patches for o in one[:-1]])
    out = {k: np.concatenate([o[k] for o in one]) for k in one[0] if k != "image_token_pooling"}
    out["image_token_pooling"] = np.concatenate([np.where(o["image_token_pooling"] >= 0, o["image_token_pooling"] + off,
                                                          -1) for o, off in zip(one, offsets)])
    return out


def _hf_row(config, seq_len: int, crops: int, rng) -> dict:
    """One sequence (batch of 1) of `hf_batch`."""
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
                image_grids=np.asarray([[pooled, pooled, hi_h, hi_w]], np.int64),
                image_num_crops=np.asarray([n_crops], np.int64))


def jax_batch(hf: dict, crop_slots: int | None = None) -> dict:
    """The same rows in the packer's layout, one crop group per row (target_ids shifted, each row's crops padded
    to `crop_slots`, pooling indices local to the row's crops): crops [R, C, P, D], crop_pooling [R, T, 4]."""
    ids = hf["input_ids"].astype(np.int32)
    rows, t = ids.shape
    labels = hf["labels"]
    target = np.concatenate([np.where(labels[:, 1:] >= 0, labels[:, 1:], -1), np.full((rows, 1), -1)], 1)
    counts = hf["image_num_crops"]
    grids = hf["image_grids"]
    tokens = grids[:, 0] * grids[:, 1] + grids[:, 2] * grids[:, 3]  # pooled vectors per image (= per row)
    slots = max(crop_slots or int(counts.max()), int(counts.max()))
    patches = hf["pixel_values"].shape[1]
    pixels = np.zeros((rows, slots, *hf["pixel_values"].shape[1:]), np.float32)
    pooling = np.full((rows, t, 4), -1, np.int32)
    crop_segments = np.zeros((rows, slots), np.int32)
    c0, p0 = np.cumsum([0, *counts[:-1]]), np.cumsum([0, *tokens[:-1]])
    for r in range(rows):
        pixels[r, :counts[r]] = hf["pixel_values"][c0[r]:c0[r] + counts[r]]
        pool = hf["image_token_pooling"][p0[r]:p0[r] + tokens[r]]
        pooling[r, :tokens[r]] = np.where(pool >= 0, pool - c0[r] * patches, -1)
        crop_segments[r, :counts[r]] = 1
    return {"input_ids": ids, "target_ids": target.astype(np.int32), "loss_weights": np.ones_like(ids, np.float32),
            "mm_token_type_ids": hf["mm_token_type_ids"].astype(np.int32), "segment_ids": np.ones_like(ids),
            "positions": np.broadcast_to(np.arange(t, dtype=np.int32), (rows, t)).copy(), "crops": pixels,
            "crop_pooling": pooling, "crop_segment_ids": crop_segments}


def bench_config(args, seq_len: int, crop_slots: int, rows: int = 1):
    """The few stage-config keys the FLOPs formula and step report read."""
    from ml_collections import ConfigDict

    return ConfigDict({"batch_size": rows, "seq_len": seq_len, "freeze_vit": True, "dtype": args.dtype,
                       "data": {"max_crops": crop_slots, "max_frames": 0}})


def peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_bytes() -> int:
    """This process's resident memory now (VmRSS)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def release_freed_heap() -> None:
    """glibc malloc_trim(0): hand freed heap pages back to the OS (a no-op where libc has no malloc_trim)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_jax(args, hf_dir: str, hf: dict) -> dict:
    """The real train step (`train.make_train_step`, `--grad-accum` micro-batches of the rows) on the HF weights."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from molmo2_jax import train
    from molmo2_jax.attention import DEFAULT_BLOCK
    from molmo2_jax.convert import load_hf_molmo2
    from torch_reference import StepMeter

    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    model = load_hf_molmo2(hf_dir, dtype=dtype, attention_impl=args.attention, remat=args.remat,
                           attention_block_size=args.attention_block or DEFAULT_BLOCK)
    lr = {c: args.lr for c in train.COMPONENTS}
    sched = {c: (lambda v: (lambda step: v))(lr[c]) for c in train.COMPONENTS}
    opt = nnx.Optimizer(model, train.make_optimizer(sched, weight_decay=0.0, clip=1.0),
                        wrt=train.trainable_filter(True))
    batch = {k: jnp.asarray(v) for k, v in jax_batch(hf, args.crop_slots).items()}
    del hf
    rss = {"loaded": rss_bytes()}  # resident bytes after each stage: where the memory goes
    accum = max(args.grad_accum, 1)
    step = train.make_train_step(accum_steps=accum)
    t0 = time.perf_counter()
    compiled = step.lower(model, opt, batch).compile()  # called directly below: the step is compiled once
    compile_s = time.perf_counter() - t0
    rss["compiled"] = rss_bytes()
    release_freed_heap()  # the compiler's freed heap back to the OS before the step allocates its temporaries
    rss["trimmed"] = rss_bytes()
    print(f"jax child: rss {rss}, compile {compile_s:.0f} s", file=sys.stderr, flush=True)
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    meter, losses = StepMeter(), []
    for i in range(args.steps):
        if args.profile and i == 1:  # the steps after the first (compiled, warm) into an XProf/TensorBoard trace
            jax.profiler.start_trace(args.profile)
        with meter:
            out = compiled(model, opt, batch)
            losses.append(float(jax.block_until_ready(out["loss"])))
    if args.profile and args.steps > 1:
        jax.profiler.stop_trace()
    rows, seq_len = batch["input_ids"].shape
    flops = train.model_flops_per_step(model.cfg, bench_config(args, seq_len, batch["crops"].shape[1], rows))
    timing = meter.medians()
    step_s = timing["step_s"]
    out = {"side": "jax", "status": "ok", "rows": rows, "grad_accum": accum, **timing,
           "tokens_per_s": rows * seq_len / step_s, "compile_s": compile_s,
           "losses": losses, "temp_bytes": int(mem.temp_size_in_bytes),
           "argument_bytes": int(mem.argument_size_in_bytes),
           "formula_flops": flops, "xla_flops": float(cost.get("flops", 0.0)), "flops_per_s": flops / step_s,
           "peak_rss_bytes": peak_rss_bytes(), "rss_bytes": dict(rss, stepped=rss_bytes()),
           "device": jax.devices()[0].device_kind}
    stats = jax.devices()[0].memory_stats() or {}  # accelerators: the allocator's peak (None on CPU)
    if "peak_bytes_in_use" in stats:
        out["device_peak_bytes"] = int(stats["peak_bytes_in_use"])
    peak = train.peak_flops_per_device()
    if peak:
        out["mfu"] = flops / step_s / peak
    return out


def run_torch(args, model, hf: dict) -> dict:
    """transformers' Molmo2 trained on all rows in one forward/backward (as a user runs it)."""
    import torch_reference

    res = torch_reference.train_steps(model, {k: v for k, v in hf.items()}, args.steps, args.lr, args.dtype)
    rows, seq_len = hf["input_ids"].shape
    return {"side": "torch", "status": "ok", "rows": rows, **res, "tokens_per_s": rows * seq_len / res["step_s"],
            "peak_rss_bytes": peak_rss_bytes()}


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
    if args.crop_group_rows:
        c.data.crop_group_rows = args.crop_group_rows
    r = compiled_step_report(c)
    print(format_report(r), file=sys.stderr)
    return dict(r, side="jax-abstract")


# --- --isolate: each side in its own child process (its memory apart, its failure reported, not fatal) ---

CHILD_ROW = "BENCH_ROW "  # prefix of the one stdout line a child reports


def is_out_of_memory(e: BaseException) -> bool:
    """An allocation failure (RLIMIT_AS reached) as torch / JAX / Python raise it."""
    text = str(e).lower()
    return isinstance(e, MemoryError) or any(w in text for w in ("out of memory", "can't allocate", "cannot allocate",
                                                                  "resource_exhausted", "failed to allocate"))


def limit_address_space(gib: float) -> None:
    """RLIMIT_AS (soft) = `gib` GiB: an allocation past it fails as an exception in this process (no OOM kill)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (int(gib * 2 ** 30), hard))


def unlimit_address_space() -> None:
    """Back to the hard limit, so that reporting after an out-of-memory error can allocate."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def child_main(args) -> dict:
    """One side (`--child build|jax|torch`) on the model saved in `--hf-dir`; never raises an out-of-memory error."""
    import torch_reference

    config = torch_reference.hf_config(args.model, args.vocab)
    if args.child == "build":
        torch_reference.build(config, args.hf_dir)
        return {"side": "build", "status": "ok", "peak_rss_bytes": peak_rss_bytes()}
    hf = hf_batch(config, args.seq_len, args.crops, rows=args.rows)
    limit = args.memory_limit_gb if args.child == "torch" else args.jax_memory_limit_gb
    if args.child == "torch":
        import torch  # noqa: F401  imported before the limit: it covers loading the model and the step
        import transformers  # noqa: F401
    else:
        import jax  # noqa: F401
    if limit:
        limit_address_space(limit)
    try:
        if args.child == "torch":
            row = run_torch(args, torch_reference.load(args.hf_dir), hf)
        else:
            row = run_jax(args, args.hf_dir, hf)
    except Exception as e:  # noqa: BLE001  only out-of-memory is reported; anything else is a bug and raised
        unlimit_address_space()  # first: handling the error allocates
        if not is_out_of_memory(e):
            raise
        first = next((line for line in str(e).splitlines() if line.strip()), "")
        row = {"side": args.child, "status": "out_of_memory", "error": f"{type(e).__name__}: {first}"[:500].strip(": "),
               "peak_rss_bytes": peak_rss_bytes()}
    return dict(row, memory_limit_gb=limit or None)


def mem_available_bytes() -> int:
    """MemAvailable of /proc/meminfo."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62


def run_child(side: str, argv: list[str], hf_dir: str, min_available_gb: float) -> dict:
    """Run `--child side` as a subprocess; its reported row, or how it died (exit code / signal), with its peak
    RSS from wait4. If the machine's available memory falls below `min_available_gb` (a real out-of-memory that
    the address-space limit did not catch first, e.g. a limit above the free RAM), the child is killed and
    reported as out of memory, before the kernel's OOM killer picks a process."""
    import signal
    import subprocess

    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--child", side, "--hf-dir", hf_dir]
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out)
        killed = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if killed is None and mem_available_bytes() < min_available_gb * 2 ** 30:
                killed = mem_available_bytes()
                os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = [ln[len(CHILD_ROW):] for ln in out.read().splitlines() if ln.startswith(CHILD_ROW)]
    peak = usage.ru_maxrss * 1024
    if killed is not None:
        return {"side": side, "status": "out_of_memory", "peak_rss_bytes": peak,
                "error": f"killed by the benchmark: the machine's available memory fell to {killed / 2 ** 30:.2f} "
                         f"GiB (< {min_available_gb} GiB) at this child's RSS {peak / 2 ** 30:.2f} GiB"}
    if proc.returncode != 0 or not lines:
        sig = -proc.returncode if proc.returncode < 0 else None
        return {"side": side, "status": "died", "exit_code": proc.returncode,
                "signal": signal.Signals(sig).name if sig else None, "peak_rss_bytes": peak}
    return dict(json.loads(lines[-1]), child_peak_rss_bytes=peak)


def run_isolated(args, argv: list[str]) -> list[dict]:
    """Build + save the model in one child, then each side in its own child loading it (the parent allocates
    nothing big and survives whatever a child does)."""
    with tempfile.TemporaryDirectory() as tmp:
        built = run_child("build", argv, tmp, args.min_available_gb)
        if built["status"] != "ok":
            return [built]
        default = ["jax"] + (["torch"] if args.torch or args.memory_limit_gb else [])
        sides = args.sides.split(",") if args.sides else default
        rows = [run_child(side, argv, tmp, args.min_available_gb) for side in sides]
    return rows


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", choices=("tiny", "nano"))
    p.add_argument("--seq-len", type=int, default=2536)
    p.add_argument("--rows", type=int, default=1, help="sequences per step, each with its own image")
    p.add_argument("--crops", type=int, default=7, help="real crops of each row's image (1 low-res + high-res)")
    p.add_argument("--crop-slots", type=int, default=0, help="crop budget per sequence (0 = the real crops)")
    p.add_argument("--vocab", type=int, default=151_936)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--remat", default="none", choices=("none", "block", "dots"))
    p.add_argument("--attention", default="blockwise", choices=("xla", "dot_product", "cudnn", "blockwise"))
    p.add_argument("--attention-block", type=int, default=0,
                   help="query/key block of blockwise attention (0: the model default, 512; --abstract: the stage "
                        "config's)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=8, help="--abstract only: global batch")
    p.add_argument("--grad-accum", type=int, default=0,
                   help="JAX micro-batches per step (0 = 1; --abstract: 0 = configs/stage1.py's grad_accum_steps)")
    p.add_argument("--crop-group-rows", type=int, default=0,
                   help="--abstract only: rows per crop group (0 = configs/stage1.py's)")
    p.add_argument("--torch", action="store_true", help="also train the PyTorch reference; print the ratio")
    p.add_argument("--profile", default="", help="write a jax.profiler trace of the steps after the first to DIR "
                   "(open with TensorBoard / XProf)")
    p.add_argument("--abstract", action="store_true", help="compile on abstract shapes only (memory, FLOPs)")
    p.add_argument("--isolate", action="store_true",
                   help="each side in its own subprocess (implied by --memory-limit-gb)")
    p.add_argument("--memory-limit-gb", type=float, default=0.0,
                   help="RLIMIT_AS of the PyTorch child in GiB (implies --isolate and --torch)")
    p.add_argument("--jax-memory-limit-gb", type=float, default=0.0, help="RLIMIT_AS of the JAX child in GiB")
    p.add_argument("--min-available-gb", type=float, default=1.0,
                   help="--isolate: kill a child (reported out of memory) when the machine's free RAM falls below")
    p.add_argument("--sides", default="", help="--isolate: the sides to run, e.g. torch (default jax[,torch])")
    p.add_argument("--child", choices=("build", "jax", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--hf-dir", help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    if args.child:
        print(CHILD_ROW + json.dumps(child_main(args)), flush=True)
        return []
    if args.abstract:
        rows = [run_abstract(args)]
    elif args.isolate or args.memory_limit_gb or args.jax_memory_limit_gb:
        rows = run_isolated(args, argv)
    else:
        import torch_reference

        config = torch_reference.hf_config(args.model, args.vocab)
        hf = hf_batch(config, args.seq_len, args.crops, rows=args.rows)
        with tempfile.TemporaryDirectory() as tmp:
            model = torch_reference.build(config, tmp)
            rows = [run_jax(args, tmp, hf)]
            if args.torch:
                rows.append(run_torch(args, model, hf))
    if len(rows) == 2 and all(r.get("status") == "ok" for r in rows):
        ratio = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
        rows.append({"side": "ratio", "jax_over_torch_tokens_per_s": ratio,
                     "jax_over_torch_cpu_s": rows[1]["cpu_s"] / rows[0]["cpu_s"], "load_avg": os.getloadavg()[0],
                     "first_loss_diff": abs(rows[0]["losses"][0] - rows[1]["losses"][0])})
    for r in rows:
        print(json.dumps(dict(r, model=args.model, seq_len=args.seq_len, dtype=args.dtype, remat=args.remat,
                              attention=args.attention, attention_block=args.attention_block or "default",
                              load_avg=r.get("load_avg", os.getloadavg()[0]))))
    return rows


if __name__ == "__main__":
    main()
