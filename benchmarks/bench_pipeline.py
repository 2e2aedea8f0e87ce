"""Packed sequences/s and tokens/s of the Molmo2 data pipeline with 0, 1 and 2 Grain workers.

    python benchmarks/bench_pipeline.py [--batches 40] [--seq-len 2048] [--workers 0,1,2]

Reads synthetic examples from ArrayRecord shards (written to a temp dir first, so the real read
path runs: ArrayRecord -> msgpack -> PNG/MP4 decode), encodes them with the tiny demo's processor
(`ExampleEncoder`, its SentencePiece tokenizer and 56-px crops), packs first-fit and batches. Prints one
line per worker count and the speed-up ratios against 1 worker.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_pipelines import writer  # noqa: E402
from data_pipelines.pipeline import prepared_pipeline  # noqa: E402
from data_pipelines.synthetic import DEMO_WEIGHTS, synthetic_sources  # noqa: E402


def demo_encoder(args: argparse.Namespace, workdir: str):
    """(encode_fn, PackSpec) of the tiny demo's processor at this benchmark's sequence length and crop budget."""
    from data_pipelines.inspect import DEMO_CONFIG, load_config
    from molmo2_jax.data import make_processor, model_config_for, pack_spec
    from molmo2_jax.processing.encode import ExampleEncoder

    config = load_config(DEMO_CONFIG)
    config.seq_len, config.data.max_crops, config.data.max_frames = args.seq_len, args.max_crops, args.max_crops
    processor = make_processor(config, workdir)
    return ExampleEncoder(processor, mixture="synthetic"), pack_spec(config, processor,
                                                                     model_config_for(config, processor))


def measure(data: str, workers: int, args: argparse.Namespace, enc, spec) -> tuple[float, float, float]:
    """(packed sequences/s, non-pad tokens/s, packing efficiency) after a warm-up."""
    it = iter(prepared_pipeline(data, DEMO_WEIGHTS, enc, spec, args.batch_size,
                                num_workers=workers, pack_window=args.window))
    for _ in range(args.warmup):
        next(it)
    tokens0 = it.counters.real_tokens
    start = time.perf_counter()
    for _ in range(args.batches):
        next(it)
    elapsed = time.perf_counter() - start
    eff = it.counters.packing_efficiency
    tokens = it.counters.real_tokens - tokens0
    if workers:
        it.close()
    return args.batches * args.batch_size / elapsed, tokens / elapsed, eff


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--max-crops", type=int, default=64)
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--examples", type=int, default=1500, help="per synthetic task")
    p.add_argument("--workers", default="0,1,2")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as data:
        t = time.perf_counter()
        for name, src in synthetic_sources(args.examples, seed=0).items():
            writer.write_examples((src[i] for i in range(len(src))), data, name)
        print(f"wrote {7 * args.examples} synthetic examples in {time.perf_counter() - t:.1f}s; "
              f"seq_len {args.seq_len}, batch {args.batch_size}, cpus {os.cpu_count()}")
        enc, spec = demo_encoder(args, os.path.join(data, "tokenizer"))
        results = {}
        for w in (int(x) for x in args.workers.split(",")):
            seq_s, tok_s, eff = measure(data, w, args, enc, spec)
            results[w] = seq_s
            print(f"workers={w}: {seq_s:8.1f} packed seq/s  {tok_s:10.0f} tokens/s  "
                  f"efficiency {eff:.3f}")
        if 1 in results:
            print("ratio vs 1 worker: " + ", ".join(f"{w}: {s / results[1]:.2f}x"
                                                    for w, s in results.items()))


if __name__ == "__main__":
    main()
