"""Score a checkpoint on Molmo2's benchmarks, as allenai/molmo2 scores them.

    python -m molmo2_jax.evaluate --checkpoint DIR --datasets countbench_qa video_mme ... --raw RAW [--out DIR]
    python -m molmo2_jax.evaluate --checkpoint DIR --datasets image_pointing tracking --raw RAW   # families
    python -m molmo2_jax.evaluate --config configs/demo.py --checkpoint DIR                        # synthetic

`--datasets` takes benchmark names (`data_pipelines/benchmarks.py`), family names (image_pointing,
image_qa, video_qa, video_pointing, tracking), `all`, `synthetic` (held-out demo scenes), or names of
prepared canonical datasets under `--prepared` (scored by task: pointing F1, counting, VQA). A benchmark
is read from `--prepared` when prepared there, else from its raw download under `--raw`; a missing or
gated one is skipped with what to do. Answers are greedy, in batches of similar prompt length; the run
writes OUT/summary.json (score and n per benchmark), OUT/predictions.jsonl (one record per example,
appended as it goes: a rerun answers only what is missing) and OUT/results.md (a Markdown table, beside
Molmo2's published numbers when the checkpoint is a released Molmo2 model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from data_pipelines.schema import BadSample

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


def evaluate_examples(model, processor, examples: Sequence, max_new_tokens: int = 48,
                      batch_size: int = 32) -> tuple[dict, list]:
    """(summary, per-example records in input order) for canonical examples, answered greedily in batches of
    similar prompt length (`runner.generate_batch`: left-padded, bucketed shapes)."""
    from molmo2_jax.eval.runner import generate_batch

    prompts = [processor.chat(_prompt(ex), images=[_image(ex)] if ex.images else None) for ex in examples]
    order = sorted(range(len(examples)), key=lambda i: prompts[i]["input_ids"].shape[1])
    texts: dict[int, str] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        texts.update(zip(chunk, generate_batch(model, processor, [prompts[i] for i in chunk], max_new_tokens)))
    records = []
    for i, ex in enumerate(examples):
        h, w = _image(ex).shape[:2] if ex.images else (1, 1)
        records.append(score(ex, texts[i], w, h))
    return summarize(records), records


def synthetic_eval_examples(config, n: int) -> list:
    """Held-out synthetic pointing and counting scenes (a seed the training data never uses)."""
    from data_pipelines.synthetic import SyntheticSource

    from molmo2_jax.data import synthetic_config

    import dataclasses

    examples = []
    # one question per scene, as asked; pointing always has 1..max_count targets (training may add negatives
    # and contrast questions)
    scenes = dataclasses.replace(synthetic_config(config), questions_per_image=1, pointing_negatives=0.0,
                                 contrast_questions=())
    for task in ("pointing", "counting"):
        src = SyntheticSource(task, n, seed=config.seed + 10_000, config=scenes)
        examples += [src[i] for i in range(n)]
    return examples


def write_example_scenes(config, out_dir: str, n: int = 2) -> list[dict]:
    """The first `n` held-out pointing and counting scenes as PNGs, for `generate --image`; their prompts and
    answers in OUT/examples.json ([{"image", "prompt", "answer"}])."""
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for ex in synthetic_eval_examples(config, n):
        name = f"{ex.conversations[0].style.replace('point_count', 'counting')}_{ex.id.rsplit('-', 1)[1]}.png"
        Image.fromarray(_image(ex)).save(os.path.join(out_dir, name))
        msgs = ex.conversations[0].messages
        rows.append({"image": name, "prompt": msgs[0].content, "answer": msgs[1].content})
    with open(os.path.join(out_dir, "examples.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return rows


def draw_predictions(examples: Sequence, records: Sequence[dict], path: str, n: int = 8) -> None:
    """A PNG grid of pointing answers: prompt, predicted points (hit / miss) and the ground-truth boxes."""
    from PIL import Image

    from molmo2_jax.eval.pointing import match_points
    from molmo2_jax.visualize import draw_prediction_panel, grid

    tiles = []
    for ex, rec in zip(examples, records):
        if rec["task"] == "pointing" and len(tiles) < n:
            pixels = _image(ex)
            h, w = pixels.shape[:2]
            boxes = [(b.x0 * w, b.y0 * h, b.x1 * w, b.y1 * h) for b in target_boxes(ex)]
            pred = [(float(p["x"]), float(p["y"])) for p in rec["points"]]
            matched, _ = match_points(np.asarray(pred, np.float32).reshape(-1, 2),
                                      PointTarget(boxes=np.asarray(boxes, np.float32).reshape(-1, 4)))
            hits = [i in set(matched.tolist()) for i in range(len(pred))]
            prompt = ex.conversations[0].messages[0].content
            tiles.append(draw_prediction_panel(Image.fromarray(pixels), prompt, pred, boxes, hits, size=192))
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
    """`eval_every`: held-out synthetic scores, or a small configured benchmark subset, as `eval_*` metrics.

    With `config.data.eval_benchmarks` (names or families) and `config.data.eval_raw` (their download root),
    each benchmark runs on its first `data.eval_examples` examples; otherwise the synthetic scenes are scored
    (with the chance baseline and a PNG of pointing predictions). main.py logs the result to TensorBoard.
    """
    out = os.path.join(workdir, "eval", str(step))
    names = list(config.data.get("eval_benchmarks", ()) or ())
    if names:
        tasks, missing = load_benchmarks(expand_names(names), raw=config.data.get("eval_raw") or None,
                                         limit=config.data.get("eval_examples", 32),
                                         max_new_tokens=config.data.get("eval_max_new_tokens"))
        summary = evaluate_benchmarks(model, processor, tasks, out, progress=False)
        for m in missing:
            print(f"eval step {step}: skipped {m}", file=sys.stderr)
        return {f"eval/{name}/{k}": float(v) for name, s in summary.items() for k, v in s.items()
                if k in ("score", "n") and v == v}  # a NaN score (no example scored) is not logged
    examples = synthetic_eval_examples(config, config.data.get("eval_examples", 32) // 2)
    summary, records = evaluate_examples(model, processor, examples, config.data.get("eval_max_new_tokens", 96))
    summary.update(chance_baseline(examples))
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


class MissingBenchmark(Exception):
    """A benchmark whose files are not there; the message says what to do."""


def expand_names(names: Sequence[str]) -> list[str]:
    """Family names and `all` -> benchmark names; other names kept, in order, without duplicates."""
    from data_pipelines import benchmarks

    out: list[str] = []
    for name in names:
        if name == "all":
            out += list(benchmarks.BENCHMARKS)
        elif name in benchmarks.FAMILIES:
            out += [b.name for b in benchmarks.by_family(name)]
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def load_benchmark(name: str, raw: str | None, prepared: str | None, limit: int | None = None,
                   max_new_tokens: int | None = None):
    """A `runner.BenchmarkRun` from prepared shards (if there) or the raw download; MissingBenchmark if neither."""
    from data_pipelines import benchmarks, readers
    from data_pipelines.readers.eval_sets import read_benchmark_rows

    from molmo2_jax.eval.runner import BenchmarkRun, iter_prepared, take

    bench = benchmarks.get(name)
    spec = bench.dataset
    budget = max_new_tokens or bench.max_new_tokens
    skipped: dict[str, int] = {}
    if prepared:
        for split in (bench.split, "train"):
            if os.path.exists(os.path.join(prepared, spec.name, f"{split}.json")):
                examples, media_root = iter_prepared(prepared, spec.name, split, skipped, limit)
                return BenchmarkRun(spec.name, bench.metric, examples, budget, media_root, skipped)
    root = os.path.join(raw, "hf", spec.repo) if raw and spec.repo else None
    if root is None or not os.path.isdir(root):
        where = f"{root} not found" if root else "no --raw download root given"
        how = bench.instructions or (f"`python -m data_pipelines.download`-style snapshot of {spec.repo} into "
                                     f"RAW/hf/{spec.repo}")
        raise MissingBenchmark(f"{name}: {where}; to get it: {how}")
    files = readers.find_files(root, spec.allow_patterns)
    if not files:
        raise MissingBenchmark(f"{name}: no parquet/json/jsonl files under {root} (patterns {spec.allow_patterns})")
    rows = read_benchmark_rows(files, root)
    examples = take(readers.READERS[spec.reader](rows, media_root=raw, source=spec.name, skipped=skipped,
                                                 **spec.reader_kwargs), limit)
    if not examples:
        raise MissingBenchmark(f"{name}: no usable example under {root} (skipped: {skipped}); "
                               f"{bench.instructions}")
    return BenchmarkRun(spec.name, bench.metric, examples, budget, raw, skipped)


def released_model_name(checkpoint: str) -> str | None:
    """'Molmo2-4B' / 'Molmo2-8B' / 'Molmo2-O-7B' when the checkpoint is a released Molmo2 model, else None."""
    from data_pipelines import benchmarks

    names = {n.lower(): n for n in benchmarks.PUBLISHED}
    candidates = [os.path.basename(os.path.normpath(checkpoint))]
    cfg = os.path.join(checkpoint, "config.json")
    if os.path.exists(cfg):
        try:
            with open(cfg) as f:
                candidates.append(str(json.load(f).get("_name_or_path", "")).split("/")[-1])
        except (OSError, ValueError):
            pass
    return next((names[c.lower()] for c in candidates if c.lower() in names), None)


def load_benchmarks(names: Sequence[str], raw: str | None = None, prepared: str | None = None,
                    limit: int | None = None, max_new_tokens: int | None = None) -> tuple[list, list[str]]:
    """(runnable `BenchmarkRun`s, one message per benchmark whose files are missing, saying what to do)."""
    tasks, missing = [], []
    for name in names:
        try:
            tasks.append(load_benchmark(name, raw, prepared, limit, max_new_tokens))
        except (MissingBenchmark, FileNotFoundError) as e:
            missing.append(str(e))
    return tasks, missing


def evaluate_benchmarks(model, processor, tasks: Sequence, out_dir: str, *, batch_size: int = 8,
                        progress: bool = True, model_name: str | None = None) -> dict:
    """Answer and score `tasks`; writes summary.json, predictions.jsonl and results.md; returns the summary."""
    from data_pipelines import benchmarks

    from molmo2_jax.eval.runner import markdown_table, run_tasks, write_summary

    summary = run_tasks(model, processor, tasks, out_dir, batch_size=batch_size, progress=progress)
    published = benchmarks.PUBLISHED.get(model_name) if model_name else None
    write_summary(out_dir, summary, markdown_table(summary, published, model_name, benchmarks.PUBLISHED_SOURCE))
    return summary


def _prepared_examples(root: str, name: str, limit: int, skipped: dict[str, int]) -> list:
    """Canonical examples of a prepared (non-benchmark) dataset with their images decoded; bad ones counted."""
    from data_pipelines.media import load_image

    from molmo2_jax.eval.runner import iter_prepared

    examples, media_root = iter_prepared(root, name, "train", skipped, limit)
    good = []
    for ex in examples:
        try:
            for ref in ex.images:
                ref.array = load_image(ref, media_root)
        except BadSample as e:
            skipped[e.reason] = skipped.get(e.reason, 0) + 1
            continue
        if ex.task in SCORED_TASKS:
            good.append(ex)
        else:
            skipped["unscored_task"] = skipped.get("unscored_task", 0) + 1
    return good


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m molmo2_jax.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="stage config file (for 'synthetic' and the default --prepared data.path)")
    p.add_argument("--checkpoint", required=True, help="our checkpoint (e.g. WORKDIR/model) or an HF Molmo2 dir")
    p.add_argument("--datasets", nargs="*", default=None,
                   help="benchmarks, families, 'all', 'synthetic' or prepared dataset names (default: synthetic "
                        "with --config, else all)")
    p.add_argument("--raw", help="download root of the benchmarks (RAW/hf/<repo>/...)")
    p.add_argument("--prepared", help="root of prepared ArrayRecord datasets (default: the config's data.path)")
    p.add_argument("--num-examples", type=int, default=None, help="at most this many examples per dataset")
    p.add_argument("--max-new-tokens", type=int, default=None, help="override each benchmark's answer budget")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", help="output directory (default: CHECKPOINT/eval)")
    args = p.parse_args(argv)
    import molmo2_jax
    from data_pipelines import benchmarks

    try:
        config = None
        if args.config:
            from molmo2_jax.config_utils import load_config_file

            config = load_config_file(args.config)
        names = expand_names(args.datasets or (["synthetic"] if config is not None else ["all"]))
        prepared = args.prepared or (config.data.path if config is not None and config.data.get("path") else None)
        bench_names = [n for n in names if n.split(":")[0] in benchmarks.BENCHMARKS]
        other = [n for n in names if n not in bench_names]
        if "synthetic" in other and config is None:
            raise ValueError("'synthetic' needs --config (its data settings and seed)")
        unknown = [n for n in other if n != "synthetic" and not (
            prepared and os.path.exists(os.path.join(prepared, n, "train.json")))]
        if unknown:
            raise ValueError(f"unknown dataset(s) {unknown}: not a benchmark ({sorted(benchmarks.BENCHMARKS)}), "
                             f"family ({list(benchmarks.FAMILIES)}) or dataset prepared under {prepared}")
        tasks, missing = load_benchmarks(bench_names, args.raw, prepared, args.num_examples, args.max_new_tokens)
        for m in missing:
            print(f"skipped {m}", file=sys.stderr)
        if bench_names and not tasks and not other:
            raise FileNotFoundError("no benchmark could run (see the skipped lines above)")
        model, processor = molmo2_jax.load(args.checkpoint)
        if processor is None:
            raise FileNotFoundError(f"{args.checkpoint} has no tokenizer/processor files")
        out = args.out or os.path.join(args.checkpoint, "eval")
        summary: dict = {}
        if tasks:
            summary = evaluate_benchmarks(model, processor, tasks, out, batch_size=args.batch_size,
                                          progress=not args.no_progress,
                                          model_name=released_model_name(args.checkpoint))
        if other:
            examples, skipped = [], {}
            for name in other:
                if name == "synthetic":
                    examples += synthetic_eval_examples(config, (args.num_examples or 64) // 2)
                else:
                    examples += _prepared_examples(prepared, name, args.num_examples or 64, skipped)
            scores, records = evaluate_examples(model, processor, examples, args.max_new_tokens or 48)
            if skipped:
                scores["skipped"] = skipped
            if tasks:  # keep the benchmark outputs; canonical-task scores go beside them
                summary["canonical"] = scores
                write_outputs(os.path.join(out, "canonical"), scores, records)
            else:
                summary = scores
                write_outputs(out, scores, records)
    except (FileNotFoundError, ValueError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
