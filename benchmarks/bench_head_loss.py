"""LM head + cross-entropy benchmark: `train.head_cross_entropy` value and gradients at the tiny step's shapes.

    python benchmarks/bench_head_loss.py --tokens 2536 --hidden 96 --vocab 151936

prints one JSON line: wall and process-CPU seconds per call (min over `--reps` after a warm-up), the chunk size,
and the FLOPs of the three head matmuls (forward logits, d hidden, d head). Process-CPU time is steadier than
wall time on a shared machine; compare before/after with the same command (PYTHONPATH picks the tree).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=2536)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--vocab", type=int, default=151_936)
    p.add_argument("--prompt", type=int, default=44, help="leading tokens without a loss weight")
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--z-loss", type=float, default=0.0)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from molmo2_jax import train

    rng = np.random.default_rng(0)
    n, d, v = args.tokens, args.hidden, args.vocab
    hidden = jnp.asarray(rng.normal(size=(1, n, d)), jnp.float32)
    head = jnp.asarray(rng.normal(size=(d, v)) * d ** -0.5, jnp.float32)
    targets = rng.integers(0, v, (1, n))
    targets[:, :args.prompt] = -1
    batch = {"target_ids": jnp.asarray(targets, jnp.int32), "loss_weights": jnp.ones((1, n), jnp.float32)}
    grad = jax.jit(jax.value_and_grad(
        lambda h, w: train.head_cross_entropy(h, w, batch, args.z_loss, chunk=args.chunk)[0], argnums=(0, 1)))
    jax.block_until_ready(grad(hidden, head))
    walls, cpus = [], []
    for _ in range(args.reps):
        c0, t0 = time.process_time(), time.perf_counter()
        jax.block_until_ready(grad(hidden, head))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    out = {"tokens": n, "hidden": d, "vocab": v, "chunk": args.chunk, "wall_s": min(walls), "cpu_s": min(cpus),
           "matmul_flops": 3 * 2 * n * d * v, "load_avg": os.getloadavg()[0]}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
