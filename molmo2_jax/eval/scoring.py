"""Per-benchmark scoring: a prediction + its example -> a per-example record; records -> the benchmark's scores.

Each metric reproduces one allenai/molmo2 evaluator (`olmo/eval/evaluators.py`, chosen per task by
`eval_utils.get_evaluator`); the headline number is `score` (in [0, 1]; x100 for the paper's %).

metric (allenai evaluator): per example -> score
- point_count (PointCountEval; countbench_qa, pixmo_count): count = number of points parsed; words and
  "a total of N" are not read (allenai overwrites them) -> mean correct
- pointing_eval (PointingEval; pointing_eval_v2): distance-matched P/R/F1, hit = inside the matched
  object's mask -> mean F1
- point_bench (PointBenchEval): at least one point and every point inside the mask -> mean of category means
- vqa_score / relaxed_correctness / anls / real_world_qa / mc (VqaEval): allenai's cleanup then the score
- em_start (VqaEval; MVBench): the answer starts with the target letter -> mean
- video_mme (VideoMMEEval): first A-D after prefixes; unparsed answers left out -> mean over parsed
- long_video_bench (LongVideoBenchEval): first A-E, a random letter when unparsed -> mean
- video_count (VixMoPointCountEval): a bare integer or "a total of N"; "none" is never read (allenai's
  regex has an unescaped `\\b`) -> mean correct
- video_point (VixMoPointEval): (t, x, y) matched at 0-100 scale, hit = inside the tubelet's mask at
  that time -> mean F1
- track_in_mask (VideoObjectTrackingEval, its P/R/F1): per frame, distance-matched points in masks,
  mean over frames -> mean F1
"""

from __future__ import annotations

import math
import random
import re
import zlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from molmo2_jax.eval import choice
from molmo2_jax.eval.masks import decode_rle
from molmo2_jax.eval.pointing import point_bench_correct, pointing_eval_prf, video_point_prf
from molmo2_jax.eval.tracking import track_in_mask_prf
from molmo2_jax.eval.vqa import (allenai_anls, allenai_vqa_score, clean_vqa_prediction, relaxed_correctness,
                                 normalize_vqa_answer)
from molmo2_jax.processing.formats import parse_points, parse_tracks

Record = dict[str, Any]


def _rng(example_id: str) -> random.Random:
    """A per-example RNG for allenai's random fallbacks, so reruns score identically."""
    return random.Random(zlib.crc32(str(example_id).encode()))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _means(records: Sequence[Record], keys: Sequence[str]) -> dict[str, float]:
    return {k: _mean([float(r[k]) for r in records if r.get(k) is not None]) for k in keys}


# --- image pointing / counting ---------------------------------------------------------------------


def point_count_value(text: str) -> int:
    """allenai PointCountEval's count: the number of points in the answer (its text parsing is overwritten)."""
    return len(parse_points(text.lower().rstrip(".").strip(), 100, 100))


def score_point_count(meta: Mapping, text: str, ctx: Mapping) -> Record:
    pred, gt = point_count_value(text), int(meta["count"])
    return {"pred_count": pred, "count": gt, "correct": float(pred == gt), "close": float(abs(pred - gt) <= 1)}


def agg_accuracy(records: Sequence[Record]) -> dict[str, float]:
    out = _means(records, ("correct", "close"))
    return {"score": out["correct"], **out}


def score_pointing_eval(meta: Mapping, text: str, ctx: Mapping) -> Record:
    w, h = meta["mask_size"]
    pts = [(p["x"], p["y"]) for p in parse_points(text, w, h)]
    masks = [decode_rle(m) for m in meta["masks"]]
    p, r, f1 = pointing_eval_prf(pts, meta["gt_points"], masks)
    return {"precision": p, "recall": r, "f1": f1, "num_pred": len(pts)}


def agg_f1(records: Sequence[Record]) -> dict[str, float]:
    out = _means(records, ("precision", "recall", "f1"))
    return {"score": out["f1"], **out}


def score_point_bench(meta: Mapping, text: str, ctx: Mapping) -> Record:
    w, h = ctx["image_size"]
    pts = [(p["x"], p["y"]) for p in parse_points(text, w, h)]
    return {"correct": float(point_bench_correct(pts, ctx["load_mask"](meta["mask_path"]), w, h)),
            "category": meta["category"]}


def agg_point_bench(records: Sequence[Record]) -> dict[str, float]:
    by_cat: dict[str, list[float]] = defaultdict(list)
    for r in records:
        by_cat[r["category"]].append(r["correct"])
    cats = {f"acc_{c}": _mean(v) for c, v in sorted(by_cat.items())}
    return {"score": _mean(list(cats.values())), **cats}


# --- image QA --------------------------------------------------------------------------------------


def score_vqa(meta: Mapping, text: str, ctx: Mapping) -> Record:
    return {"correct": allenai_vqa_score(list(meta["answers"]), clean_vqa_prediction(text))}


def score_relaxed(meta: Mapping, text: str, ctx: Mapping) -> Record:
    pred = clean_vqa_prediction(text)
    return {"correct": float(max(relaxed_correctness(a, pred) for a in meta["answers"])),
            "em": float(pred.lower() in [a.lower() for a in meta["answers"]])}


def score_anls(meta: Mapping, text: str, ctx: Mapping) -> Record:
    pred = clean_vqa_prediction(text)
    return {"correct": max(allenai_anls(a, pred) for a in meta["answers"])}


def score_real_world_qa(meta: Mapping, text: str, ctx: Mapping) -> Record:
    pred = clean_vqa_prediction(text)
    if meta["question_type"] == "multiple_choice":
        letters = ["A", "B", "C", "D"]
        return {"correct": float(choice.select_mc_option(pred, letters) == letters.index(meta["answer"]))}
    gt = normalize_vqa_answer(meta["answer"].lower().strip())
    return {"correct": float(normalize_vqa_answer(pred.lower().strip()) == gt)}


def score_mc(meta: Mapping, text: str, ctx: Mapping) -> Record:
    idx = choice.select_mc_option(clean_vqa_prediction(text), meta["option_names"])
    return {"correct": float(idx == int(meta["answer_idx"])), "picked": idx}


# --- video QA --------------------------------------------------------------------------------------


def score_em_start(meta: Mapping, text: str, ctx: Mapping) -> Record:
    return {"correct": float(choice.em_start(clean_vqa_prediction(text), meta["answer"]))}


def score_video_mme(meta: Mapping, text: str, ctx: Mapping) -> Record:
    letter = choice.video_mme_letter(text)
    return {"letter": letter, "correct": float(letter == meta["answer"]) if letter else None,
            "duration": meta.get("duration")}


def agg_video_mme(records: Sequence[Record]) -> dict[str, float]:
    scored = [r for r in records if r["correct"] is not None]
    out = {"score": _mean([r["correct"] for r in scored]), "parsed_rate": len(scored) / max(len(records), 1)}
    for d in ("short", "medium", "long"):
        out[d] = _mean([r["correct"] for r in scored if r.get("duration") == d])
    return out


def score_long_video_bench(meta: Mapping, text: str, ctx: Mapping) -> Record:
    letter, parsed = choice.long_video_bench_letter(text, len(meta["options"]), ctx["rng"])
    return {"letter": letter, "parsed": float(parsed), "correct": float(letter == meta["answer"])}


# --- video pointing / counting ---------------------------------------------------------------------

_TOTAL = re.compile(r"(?:a total of|the total number(?:\s+of\s+.+?)?\s+is:)\s*(\d+)\.?", re.IGNORECASE)


def video_count_value(text: str) -> int | None:
    """allenai VixMoPointCountEval's count: the answer as an integer, else "a total of N"; None if neither."""
    pred = text.strip().lower().rstrip(".").strip()
    try:
        return int(pred)
    except ValueError:
        match = _TOTAL.search(pred)
        return int(match.group(1)) if match else None


def score_video_count(meta: Mapping, text: str, ctx: Mapping) -> Record:
    pred, gt = video_count_value(text), int(meta["count"])
    close = pred is not None and abs(gt - pred) <= 1 + math.floor(0.05 * gt)
    return {"pred_count": pred, "count": gt, "correct": float(pred == gt), "close": float(close),
            "valid": float(pred is not None), "subset": meta.get("subset", "")}


def score_video_point(meta: Mapping, text: str, ctx: Mapping) -> Record:
    w, h = meta["width"], meta["height"]
    pred = [(float(p["group"]), p["x"], p["y"]) for p in parse_points(text, w, h)
            if isinstance(p["group"], float)]
    tubelets = [{float(t): decode_rle(rle) for t, rle in tube} for tube in meta["tubelets"]]
    p, r, f1 = video_point_prf(pred, [tuple(t) for t in meta["gt_triplets"]], tubelets, meta["duration"], w, h)
    return {"precision": p, "recall": r, "f1": f1, "num_pred": len(pred)}


def score_track(meta: Mapping, text: str, ctx: Mapping) -> Record:
    w, h, fps = meta["width"], meta["height"], meta["fps"]
    pred: dict[int, list[tuple[float, float]]] = {}
    for step in parse_tracks(text, w, h):
        pred.setdefault(round(step["time"] * fps), []).extend(step["points"].values())
    gt: dict[int, list[tuple[float, float]]] = {}
    objects: dict[int, list[int]] = {}
    for frame, pts in meta["gt_frames"]:
        gt[int(frame)] = [(x, y) for _, x, y in pts]
        objects[int(frame)] = [int(k) for k, _, _ in pts]
    masks = meta["masks"]
    empty = np.zeros((int(h), int(w)), bool)

    def frame_masks(frame: int) -> list[np.ndarray]:
        out = []
        for k in objects.get(frame, []):
            per_frame = masks[k] if k < len(masks) else []
            rle = per_frame[frame] if frame < len(per_frame) else None
            out.append(decode_rle(rle) if rle else empty)
        return out

    return track_in_mask_prf(pred, gt, frame_masks)


MetricFn = Callable[[Mapping, str, Mapping], Record]
METRICS: dict[str, tuple[MetricFn, Callable[[Sequence[Record]], dict[str, float]]]] = {
    "point_count": (score_point_count, agg_accuracy),
    "pointing_eval": (score_pointing_eval, agg_f1),
    "point_bench": (score_point_bench, agg_point_bench),
    "vqa_score": (score_vqa, agg_accuracy),
    "relaxed_correctness": (score_relaxed, agg_accuracy),
    "anls": (score_anls, agg_accuracy),
    "real_world_qa": (score_real_world_qa, agg_accuracy),
    "mc": (score_mc, agg_accuracy),
    "em_start": (score_em_start, agg_accuracy),
    "video_mme": (score_video_mme, agg_video_mme),
    "long_video_bench": (score_long_video_bench, agg_accuracy),
    "video_count": (score_video_count, agg_accuracy),
    "video_point": (score_video_point, agg_f1),
    "track_in_mask": (score_track, agg_f1),
}


def score_example(metric: str, example_id: str, meta: Mapping, text: str, ctx: Mapping | None = None) -> Record:
    """Per-example record of `metric` (see the table above)."""
    if metric not in METRICS:
        raise KeyError(f"unknown metric {metric!r}; metrics: {sorted(METRICS)}")
    ctx = {"rng": _rng(example_id), **(ctx or {})}
    return METRICS[metric][0](meta, text, ctx)


def aggregate(metric: str, records: Sequence[Record]) -> dict[str, float]:
    """Benchmark-level scores of `metric` (`score` is the headline) plus `n`."""
    return {**METRICS[metric][1](records), "n": len(records)}
