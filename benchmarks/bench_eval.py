"""Evaluation throughput: batched, length-bucketed generation vs answering one example at a time.

    python benchmarks/bench_eval.py [--examples 32] [--batch-size 8] [--new-tokens 16]

Same tiny random model, same pointing_eval_v2 / video count fixtures (published layouts, tests/eval_fixtures.py),
greedy. Prompts are encoded once for both; both paths are warmed up
once (compilation excluded), then timed interleaved, best of --repeats; prints examples/s and the ratio.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))


def tiny_model_dir(d: str) -> str:
    """A random tiny Molmo2 with a SentencePiece processor, as tests/conftest.py `tiny_inference_dir` builds it."""
    from flax import nnx

    from molmo2_jax import model_config as mc
    from molmo2_jax.checkpoints.orbax_io import save_params
    from molmo2_jax.data import fit_to_token_ids
    from molmo2_jax.model import Molmo2
    from molmo2_jax.processing.images import ImageConfig
    from molmo2_jax.processing.processor import Molmo2Processor
    from molmo2_jax.processing.tokenizer import SentencePieceTokenizer, train_sentencepiece
    from molmo2_jax.processing.video import VideoConfig

    sp = train_sentencepiece(["Point to the red circles.", "There are 3 blue squares."] * 50,
                             os.path.join(d, "tokenizer"), vocab_size=300)
    proc = Molmo2Processor(SentencePieceTokenizer(sp),
                           ImageConfig(base_size=56, patch_size=7, max_crops=2, overlap_margins=(1, 1)),
                           VideoConfig(base_size=56, patch_size=7, max_frames=4))
    cfg = fit_to_token_ids(mc.tiny(), proc.token_ids)
    out = os.path.join(d, "model")
    save_params(out, Molmo2(cfg, rngs=nnx.Rngs(0)))
    proc.save(out, sp)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from eval_fixtures import build_raw

    import molmo2_jax
    from molmo2_jax.eval.runner import example_media, generate_batch, prompt_messages
    from molmo2_jax.evaluate import load_benchmark

    with tempfile.TemporaryDirectory() as d:
        build_raw(os.path.join(d, "raw"), n=args.examples)
        model, processor = molmo2_jax.load(tiny_model_dir(d))
        for name in ("pointing_eval_v2", "vixmo_points_count_clip_63s"):
            task = load_benchmark(name, os.path.join(d, "raw"), None)
            media = [example_media(ex, task.media_root, processor.video) for ex in task.examples]
            prompts = [processor.chat(prompt_messages(ex), images=im or None, videos=vid or None)
                       for ex, (im, vid) in zip(task.examples, media)]
            order = sorted(range(len(prompts)), key=lambda i: prompts[i]["input_ids"].shape[1])

            def batched():
                for s in range(0, len(order), args.batch_size):
                    generate_batch(model, processor, [prompts[i] for i in order[s:s + args.batch_size]],
                                   args.new_tokens)

            def one_at_a_time():  # the same prompts, one generate call each (what the runner did before)
                for prompt in prompts:
                    generate_batch(model, processor, [prompt], args.new_tokens)

            paths = (("one at a time", one_at_a_time), (f"batched (batch {args.batch_size})", batched))
            for _, fn in paths:
                fn()  # compile
            best = {label: float("inf") for label, _ in paths}
            for _ in range(args.repeats):  # interleaved, best of N: the machine is shared
                for label, fn in paths:
                    t0 = time.perf_counter()
                    fn()
                    best[label] = min(best[label], time.perf_counter() - t0)
            rates = {label: len(prompts) / t for label, t in best.items()}
            slow, fast = rates.values()
            print(f"{name}: {len(prompts)} examples, {args.new_tokens} new tokens, greedy, tiny model")
            for label, r in rates.items():
                print(f"  {label:20s} {r:8.2f} examples/s")
            print(f"  batched / one-at-a-time: {fast / slow:.2f}x")


if __name__ == "__main__":
    main()
