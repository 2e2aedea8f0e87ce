"""Score a checkpoint on canonical-schema eval sets: `python -m molmo2_jax.evaluate --config ... --checkpoint DIR`.

Each example is answered by greedy generation from its first user turn; the answer is parsed with the
Molmo2 output formats and scored with `molmo2_jax.eval` by the example's task (pointing P/R/F1 against
the ground-truth boxes, counting accuracy, VQA accuracy). Writes `summary.json` and `predictions.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from molmo2_jax.eval import metrics
from molmo2_jax.eval.pointing import PointTarget, pointing_counts, precision_recall_f1
from molmo2_jax.eval.vqa import counting_accuracy, vqa_accuracy
from molmo2_jax.generation import generate
from molmo2_jax.processing.formats import parse_count, parse_points

SCORED_TASKS = ("pointing", "counting", "vqa")


def _image(example) -> np.ndarray:
    ref = example.images[0]
    if ref.array is not None:
        return ref.array
    from data_pipelines.media import load_image

    return load_image(ref)


def _prompt(example) -> list[dict[str, Any]]:
    conv = example.conversations[0]
    text = conv.messages[0].content
    content = [{"type": "text", "text": text, "style": conv.style}] if conv.style else text
    return [{"role": "user", "content": content}]


def answer(model, processor, example, max_new_tokens: int) -> str:
    """Greedy answer to the example's first question about its images."""
    images = [_image(example)] if example.images else None
    return generate(model, processor, _prompt(example), images=images, max_new_tokens=max_new_tokens)["text"]


def target_boxes(example) -> list:
    """The ground-truth objects of a pointing example: the boxes that hold one of its annotated points."""
    pts = [xy for p in example.points for xy in p.xy]
    return [b for b in example.boxes if any(b.x0 <= x <= b.x1 and b.y0 <= y <= b.y1 for x, y in pts)]


def score(example, text: str, width: int, height: int) -> dict[str, Any]:
    """Per-example prediction record with the task's raw counts / scores."""
    rec: dict[str, Any] = {"id": example.id, "task": example.task, "prediction": text}
    if example.task == "pointing":
        pts = parse_points(text, width, height)
        pred = np.asarray([[p["x"], p["y"]] for p in pts], np.float32).reshape(-1, 2)
        boxes = np.asarray([[b.x0 * width, b.y0 * height, b.x1 * width, b.y1 * height]
                            for b in target_boxes(example)], np.float32).reshape(-1, 4)
        tp, n_pred, n_gt = pointing_counts(pred, PointTarget(boxes=boxes))
        rec.update(points=pts, boxes=boxes.tolist(), tp=tp, n_pred=n_pred, n_gt=n_gt)
    elif example.task == "counting":
        rec.update(count=parse_count(text), target=example.count,
                   correct=counting_accuracy(text, example.count))
    elif example.task == "vqa":
        answer = example.conversations[0].messages[1].content
        rec.update(answer=answer, correct=vqa_accuracy(text, answer))
    return rec


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Dataset-level scores of `score` records through `eval.metrics.summarize`: pointing micro P/R/F1,
    counting and VQA accuracy."""
    out: dict[str, float] = {}
    pointing = [r for r in records if r["task"] == "pointing"]
    if pointing:
        preds = [np.asarray([[p["x"], p["y"]] for p in r["points"]], np.float32).reshape(-1, 2) for r in pointing]
        targets = [PointTarget(boxes=np.asarray(r["boxes"], np.float32).reshape(-1, 4)) for r in pointing]
        m = metrics.summarize("pointing", preds, targets)
        out.update(pointing_precision=m["precision_micro"], pointing_recall=m["recall_micro"],
                   pointing_f1=m["f1_micro"], pointing_n=len(pointing))
    counting = [r for r in records if r["task"] == "counting"]
    if counting:
        m = metrics.summarize("counting", [r["prediction"] for r in counting], [r["target"] for r in counting])
        out.update(counting_accuracy=m["counting_accuracy"], counting_n=len(counting))
    vqa = [r for r in records if r["task"] == "vqa"]
    if vqa:
        m = metrics.summarize("vqa", [r["prediction"] for r in vqa], [r["answer"] for r in vqa])
        out.update(vqa_accuracy=m["vqa_accuracy"], vqa_n=len(vqa))
    return out


def evaluate_examples(model, processor, examples: Sequence, max_new_tokens: int = 48) -> tuple[dict, list]:
    """(summary, per-example records) for a list of canonical examples."""
    records = []
    for ex in examples:
        h, w = _image(ex).shape[:2] if ex.images else (1, 1)
        records.append(score(ex, answer(model, processor, ex, max_new_tokens), w, h))
    return summarize(records), records


def synthetic_eval_examples(config, n: int) -> list:
    """Held-out synthetic pointing and counting scenes (a seed the training data never uses)."""
    from data_pipelines.synthetic import SyntheticSource

    from molmo2_jax.data import synthetic_config

    examples = []
    for task in ("pointing", "counting"):
        src = SyntheticSource(task, n, seed=config.seed + 10_000, config=synthetic_config(config))
        examples += [src[i] for i in range(n)]
    return examples


def draw_predictions(examples: Sequence, records: Sequence[dict], path: str, n: int = 8) -> None:
    """A PNG grid of pointing predictions (points drawn on the held-out images)."""
    from PIL import Image

    from molmo2_jax.visualize import draw_points, grid

    tiles = []
    for ex, rec in zip(examples, records):
        if rec["task"] == "pointing" and len(tiles) < n:
            im = Image.fromarray(_image(ex)).resize((192, 192), Image.NEAREST)
            scale = 192 / _image(ex).shape[1]
            pts = [dict(p, x=p["x"] * scale, y=p["y"] * scale) for p in rec["points"]]
            tiles.append(draw_points(im, pts, radius=5))
    if tiles:
        grid(tiles, columns=4).save(path)


def chance_baseline(examples: Sequence, seed: int = 0) -> dict[str, float]:
    """What guessing scores: as many uniform random points as there are targets; a uniform count."""
    rng = np.random.default_rng(seed)
    tp = n_pred = n_gt = 0
    counts = []
    for ex in examples:
        if ex.task == "pointing":
            boxes = np.asarray([[b.x0, b.y0, b.x1, b.y1] for b in target_boxes(ex)], np.float32).reshape(-1, 4)
            guess = rng.uniform(0, 1, (len(boxes), 2)).astype(np.float32)
            t, p, g = pointing_counts(guess, PointTarget(boxes=boxes))
            tp, n_pred, n_gt = tp + t, n_pred + p, n_gt + g
        elif ex.task == "counting":
            counts.append(ex.count)
    out = {"chance_pointing_f1": precision_recall_f1(tp, n_pred, n_gt)[2]} if n_gt else {}
    if counts:
        out["chance_counting_accuracy"] = 1.0 / (max(counts) + 1)
    return out


def evaluate_during_training(config, model, processor, workdir: str, step: int) -> dict:
    """Held-out synthetic scores (`eval_every`), with the chance baseline and a PNG of pointing predictions."""
    examples = synthetic_eval_examples(config, config.data.get("eval_examples", 32) // 2)
    summary, records = evaluate_examples(model, processor, examples, config.data.get("eval_max_new_tokens", 96))
    summary.update(chance_baseline(examples))
    out = os.path.join(workdir, "eval", str(step))
    write_outputs(out, summary, records)
    draw_predictions(examples, records, os.path.join(workdir, f"predictions_{step}.png"))
    return {f"eval_{k}": v for k, v in summary.items()}


def write_outputs(out_dir: str, summary: dict, records: list) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(out_dir, "predictions.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r, default=float) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m molmo2_jax.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="stage config file (its data settings and seed are used)")
    p.add_argument("--checkpoint", required=True, help="our checkpoint (e.g. WORKDIR/model) or an HF Molmo2 dir")
    p.add_argument("--datasets", nargs="*", default=["synthetic"],
                   help="'synthetic' (held-out pointing/counting scenes) or prepared dataset names under data.path")
    p.add_argument("--num-examples", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--out", help="output directory (default: CHECKPOINT/eval)")
    args = p.parse_args(argv)
    import molmo2_jax
    from molmo2_jax.config_utils import load_config_file

    try:
        config = load_config_file(args.config)
        model, processor = molmo2_jax.load(args.checkpoint)
        if processor is None:
            raise FileNotFoundError(f"{args.checkpoint} has no tokenizer/processor files")
        examples = []
        for name in args.datasets:
            if name == "synthetic":
                examples += synthetic_eval_examples(config, args.num_examples // 2)
            else:
                from data_pipelines import writer

                src = writer.open_source(config.data.path, name)
                examples += [src[i] for i in range(min(args.num_examples, len(src)))]
        summary, records = evaluate_examples(model, processor, examples, args.max_new_tokens)
    except (FileNotFoundError, ValueError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = args.out or os.path.join(args.checkpoint, "eval")
    write_outputs(out, summary, records)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
