"""How a trained demo decides "There are none.": P(its first token) on the held-out counting scenes, by targets.

    python benchmarks/demo_none_probability.py --run runs/demo [--config configs/demo.py]

The point-then-count answer starts with "There" only for a count of zero, so the first token's probability is
the model's whole absence decision. Printed per group of scenes (empty, zero targets among drawn objects, 1..N
targets): median P and the share above 0.5. A model that reads the question puts zero-target scenes near 1 and
target scenes near 0, whatever else is drawn (docs/benchmarks.md, "Deciding absence").
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="the demo's workdir (its model/ is loaded)")
    p.add_argument("--config", default="configs/demo.py")
    p.add_argument("--num-examples", type=int, default=128)
    args = p.parse_args(argv)

    import jax

    import molmo2_jax
    from molmo2_jax.config_utils import load_config_file
    from molmo2_jax.evaluate import _image, _prompt, synthetic_eval_examples
    from molmo2_jax.generation import generate_tokens
    from molmo2_jax.processing.formats import NO_POINTS

    model, processor = molmo2_jax.load(os.path.join(args.run, "model"))
    examples = [e for e in synthetic_eval_examples(load_config_file(args.config), args.num_examples)
                if e.task == "counting"]
    none_id = processor.tokenizer.encode(NO_POINTS)[0]
    groups = collections.defaultdict(list)
    for ex in examples:
        _, logits = generate_tokens(model, processor.chat(_prompt(ex), images=[_image(ex)]), 1, return_logits=True)
        prob = float(jax.nn.softmax(logits[0, 0])[none_id])
        groups[f"{ex.count} targets" if ex.count else ("empty scene" if not ex.boxes else "0 targets, objects drawn")
               ].append(prob)
    print(f"P(first token of {NO_POINTS!r}) on {len(examples)} held-out counting scenes of {args.run}")
    for name in sorted(groups):
        v = np.asarray(groups[name])
        print(f"  {name:26s} n={len(v):3d}  median {np.median(v):.3f}  share > 0.5: {(v > 0.5).mean():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
