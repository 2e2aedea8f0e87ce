"""Molmo2 attention time and memory vs sequence length: dense (xla), blockwise, ring and Ulysses (8 fake devices).

Memory: compiled temp bytes per device of forward + backward (`memory_analysis()`, nothing allocated) at nano's
attention shape (16 query heads, 8 KV heads, head_dim 128, bf16) for 2k -> 36k tokens. Time: wall clock of a
jitted forward + backward on a small head shape (`--time-heads` query = KV heads x 32, fp32, so a 2-core CPU
finishes), median of `--repeats`, in microseconds per token, and the ring / dense ratio per token (dense is timed
up to `--dense-max-time` tokens: beyond, its T x T scores alone exceed a small machine's memory). The mask is a
stage-3-like pack: a video example (frames of vision tokens separated by timestamp text) then a text example, so
block skipping sees the real structure.

COMMAND: python -m benchmarks.bench_attention [--lengths 2048,4096,8192,16384,36864] [--time-lengths 2048,4096,8192]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from molmo2_jax.attention import MaskInfo, attend  # noqa: E402
from molmo2_jax.ring_attention import zigzag_order  # noqa: E402
from molmo2_jax.sharding import make_mesh  # noqa: E402

IMPLS = ("xla", "blockwise", "ring", "ulysses")
GiB = 2 ** 30


def video_pack(t: int) -> MaskInfo:
    """[1, t] MaskInfo: 70% a video example (81 vision tokens per frame, 4 timestamp tokens between), 30% text."""
    split = int(0.7 * t)
    seg = np.where(np.arange(t) < split, 1, 2).astype(np.int32)
    pos = np.where(np.arange(t) < split, np.arange(t), np.arange(t) - split).astype(np.int32)
    vis = np.zeros(t, bool)
    i = 16
    while i + 85 < split - 32:
        vis[i + 4:i + 85] = True
        i += 85
    return MaskInfo(jnp.asarray(seg[None]), jnp.asarray(pos[None]), jnp.asarray(vis[None]), None)


def fwd_bwd(impl: str, info: MaskInfo, block: int):
    def loss(q, k, v, do):
        return jnp.sum(attend(q, k, v, info, impl, block_size=block).astype(jnp.float32) * do)

    return jax.jit(jax.grad(loss, (0, 1, 2)))


def mesh_for(impl: str):
    return make_mesh(1, 1, 8) if impl in ("ring", "ulysses") else make_mesh(1, 1, 1, devices=jax.devices()[:1])


def args_for(t: int, heads: int, kv_heads: int, hd: int, dtype, abstract: bool):
    shapes = [(1, t, heads, hd), (1, t, kv_heads, hd), (1, t, kv_heads, hd), (1, t, heads, hd)]
    dtypes = [dtype, dtype, dtype, jnp.float32]
    if abstract:
        return [jax.ShapeDtypeStruct(s, d) for s, d in zip(shapes, dtypes)]
    rng = np.random.default_rng(0)
    return [jnp.asarray(rng.normal(size=s), d) for s, d in zip(shapes, dtypes)]


def layout(impl: str, t: int) -> MaskInfo:
    info = video_pack(t)
    if impl == "ring":  # the model runs ring in its zig-zag token order
        order = zigzag_order(t, 8)
        info = jax.tree.map(lambda a: a[:, order], info)
    return info


def memory_row(impl: str, t: int, block: int) -> dict:
    mesh = mesh_for(impl)
    with jax.set_mesh(mesh):
        fn = fwd_bwd(impl, layout(impl, t), block)
        mem = fn.lower(*args_for(t, 16, 8, 128, jnp.bfloat16, True)).compile().memory_analysis()
    return {"impl": impl, "tokens": t, "temp_gib_per_device": mem.temp_size_in_bytes / GiB}


def time_row(impl: str, t: int, block: int, repeats: int, heads: int = 8) -> dict:
    mesh = mesh_for(impl)
    with jax.set_mesh(mesh):
        fn = fwd_bwd(impl, layout(impl, t), block)
        args = args_for(t, heads, heads, 32, jnp.float32, False)
        jax.block_until_ready(fn(*args))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - t0)
    s = float(np.median(times))
    return {"impl": impl, "tokens": t, "heads": heads, "fwd_bwd_s": s, "us_per_token": s / t * 1e6}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="2048,4096,8192,16384,36864")
    p.add_argument("--time-lengths", default="2048,4096,8192")
    p.add_argument("--time-heads", type=int, default=8,
                   help="query (= KV) heads of the timed shape, head_dim 32 (ulysses needs 8 | KV heads)")
    p.add_argument("--dense-max-time", type=int, default=4096, help="longest length the dense path is timed at")
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--block", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    impls = a.impls.split(",")
    print(f"memory (nano attention, 16/8 heads x 128, bf16; forward + backward; per device), block {a.block}")
    for t in [int(x) for x in a.lengths.split(",") if x]:
        rows = [memory_row(i, t, a.block) for i in impls]
        print(f"  {t:6d} tokens: " + ", ".join(f"{r['impl']} {r['temp_gib_per_device']:.3f} GiB" for r in rows))
        print(json.dumps(rows), flush=True)
    print(f"time ({a.time_heads}/{a.time_heads} heads x 32, fp32, forward + backward, median of {a.repeats}; "
          "ring/ulysses over 8 fake devices sharing the host's cores)")
    for t in [int(x) for x in a.time_lengths.split(",") if x]:
        rows = {i: time_row(i, t, a.block, a.repeats, a.time_heads) for i in impls
                if i != "xla" or t <= a.dense_max_time}
        line = ", ".join(f"{i} {r['fwd_bwd_s']:.2f} s ({r['us_per_token']:.0f} us/token)" for i, r in rows.items())
        ratios = [f"{i}/dense {rows[i]['us_per_token'] / rows['xla']['us_per_token']:.2f}" for i in rows
                  if i != "xla" and "xla" in rows]
        print(f"  {t:6d} tokens: {line}" + (f"; per token {', '.join(ratios)}" if ratios else ""), flush=True)
        print(json.dumps(list(rows.values())), flush=True)


if __name__ == "__main__":
    main()
