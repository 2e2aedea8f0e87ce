"""Write a fine-tuning JSONL in the user schema from the synthetic scenes (offline; for the README example).

    python -m data_pipelines.make_example_jsonl --out my_data --num 200 [--tasks pointing counting]

Writes `OUT/images/<i>.png` and `OUT/data.jsonl`: one line per scene with its image path, points in
pixels and the conversation (data_pipelines/readers/user_jsonl.py describes the schema).
"""

from __future__ import annotations

import argparse
import json
import os

from data_pipelines.schema import Example
from data_pipelines.synthetic import SyntheticConfig, synthetic_sources


def to_line(ex: Example, image_paths: list[str], width: int, height: int) -> dict:
    """A canonical Example (fractions) -> one user JSONL line (pixels, paths relative to the file)."""
    line = {"id": ex.id, "images": image_paths,
            "conversation": [{"role": m.role, "content": m.content} for m in ex.conversations[0].messages]}
    if ex.points:
        line["points"] = [{"label": p.label, "image": p.image,
                           "xy": [[round(x * width, 2), round(y * height, 2)] for x, y in p.xy]} for p in ex.points]
    if ex.count is not None:
        line["count"] = ex.count
    return line


def write_example_jsonl(out: str, num: int, tasks=("pointing", "counting"), seed: int = 0, side: int = 56) -> str:
    """`num` synthetic scenes (drawn evenly from `tasks`) as images + a JSONL file; returns the file's path."""
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    cfg = SyntheticConfig(width=side, height=side, max_objects=3, max_count=3, min_radius=0.12, max_radius=0.18)
    sources = list(synthetic_sources(num, seed=seed, config=cfg, tasks=tuple(tasks)).values())
    path = os.path.join(out, "data.jsonl")
    with open(path, "w") as f:
        for i in range(num):
            ex = sources[i % len(sources)][i // len(sources)]
            paths = []
            for j, ref in enumerate(ex.images):
                rel = os.path.join("images", f"{i}_{j}.png")
                with open(os.path.join(out, rel), "wb") as img:
                    img.write(ref.data)
                paths.append(rel)
            f.write(json.dumps(to_line(ex, paths, side, side)) + "\n")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipelines.make_example_jsonl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--num", type=int, default=200, help="lines to write")
    p.add_argument("--tasks", nargs="+", default=["pointing", "counting"], help="synthetic tasks")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(f"wrote {write_example_jsonl(args.out, args.num, tuple(args.tasks), args.seed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
