"""Generation speed: ours (jit prefill + KV-cache decode) vs transformers' generate, same tiny random Molmo2.

    python benchmarks/bench_generate.py [--new-tokens 32] [--repeats 3]

Prints time-to-first-token and decode tokens/s for both, on the same image prompt and machine.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    import torch
    from hf_reference import build_hf_molmo2, image_inputs

    from molmo2_jax.convert import load_hf_molmo2
    from molmo2_jax.generation import generate_tokens

    with tempfile.TemporaryDirectory() as d:
        ref = build_hf_molmo2(d)
        ours = load_hf_molmo2(d)
    inputs = image_inputs(np.random.default_rng(0), n_images=1, hi_grid=(2, 2))
    t = inputs.torch()
    mask = torch.ones_like(t["input_ids"])

    def hf(n):
        with torch.no_grad():
            return ref.generate(**t, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                pad_token_id=0)

    def jx(n):
        return generate_tokens(ours, inputs.arrays, n)

    rows = []
    for name, fn in (("transformers", hf), ("molmo2-jax", jx)):
        fn(1), fn(args.new_tokens)  # warm-up / compile
        ttft = min(_timed(lambda: fn(1)) for _ in range(args.repeats))
        total = min(_timed(lambda: fn(args.new_tokens)) for _ in range(args.repeats))
        rows.append((name, ttft, (args.new_tokens - 1) / max(total - ttft, 1e-9)))
    print(f"prompt {inputs.arrays['input_ids'].shape[1]} tokens, {args.new_tokens} new tokens, greedy, batch 1")
    for name, ttft, tps in rows:
        print(f"{name:14s} time-to-first-token {ttft * 1e3:8.1f} ms   decode {tps:8.1f} tokens/s")
    print(f"ratio molmo2-jax / transformers decode tokens/s: {rows[1][2] / rows[0][2]:.2f}")


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
