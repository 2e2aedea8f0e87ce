"""One entry point from per-example predictions and targets to a dict of dataset-level scores (Molmo2 eval, §9)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from molmo2_jax.eval.pointing import pointing_metrics
from molmo2_jax.eval.tracking import point_tracking_metrics, region_tracking_metrics
from molmo2_jax.eval.vqa import anls, counting_accuracy, multiple_choice_accuracy, vqa_accuracy
from molmo2_jax.processing.formats import parse_count


def _mean(scores: Sequence[float]) -> float:
    """Mean of per-example scores, NaN for no examples."""
    return float(np.mean(scores)) if len(scores) else math.nan


def _vqa(predictions: Sequence[str], targets: Sequence[Sequence[str] | str], *,
         leave_one_out: bool = True) -> dict[str, float]:
    """Targets: the list of human answers (or one answer) per question."""
    scores = [vqa_accuracy(p, t, leave_one_out=leave_one_out) for p, t in zip(predictions, targets)]
    return {"vqa_accuracy": _mean(scores), "num_examples": float(len(scores))}


def _anls(predictions: Sequence[str], targets: Sequence[Sequence[str] | str], *,
          threshold: float = 0.5) -> dict[str, float]:
    """Targets: the accepted answers (or one answer) per question."""
    scores = [anls(p, t, threshold=threshold) for p, t in zip(predictions, targets)]
    return {"anls": _mean(scores), "num_examples": float(len(scores))}


def _multiple_choice(predictions: Sequence[str], targets: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Targets: {"options": [...], "answer": index, letter or option text}."""
    scores = [multiple_choice_accuracy(p, t["options"], t["answer"]) for p, t in zip(predictions, targets)]
    return {"mc_accuracy": _mean(scores), "num_examples": float(len(scores))}


def _counting(predictions: Sequence[str], targets: Sequence[int]) -> dict[str, float]:
    """Targets: the true count; also reports how often no number could be read from the answer."""
    scores = [counting_accuracy(p, t) for p, t in zip(predictions, targets)]
    unparsed = [float(parse_count(p) is None) for p in predictions]
    return {"counting_accuracy": _mean(scores), "unparsed_rate": _mean(unparsed), "num_examples": float(len(scores))}


# task -> prediction / target per example (options):
#   vqa: str / list of human answers (leave_one_out); anls: str / accepted answers (threshold);
#   multiple_choice: str / {"options", "answer"}; counting: str / int;
#   pointing: points [N, 2] in pixels / PointTarget or {"points", "boxes", "masks"} (dist_threshold);
#   point_tracking: tracks [T, K, 2] / tracks [T, K, 2], NaN = no point (threshold, match_ids);
#   region_tracking: masks [T, H, W] or [K, T, H, W] / same shape (bound_th).
_TASKS: dict[str, Callable[..., dict[str, float]]] = {
    "vqa": _vqa,
    "anls": _anls,
    "multiple_choice": _multiple_choice,
    "counting": _counting,
    "pointing": pointing_metrics,
    "point_tracking": point_tracking_metrics,
    "region_tracking": region_tracking_metrics,
}


def summarize(task: str, predictions: Sequence[Any], targets: Sequence[Any], **options: Any) -> dict[str, float]:
    """Dataset-level scores for one task (see the table above _TASKS) from per-example predictions and targets."""
    if task not in _TASKS:
        raise ValueError(f"unknown eval task {task!r}; choose one of {sorted(_TASKS)}")
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets; pass one of each per example")
    return _TASKS[task](predictions, targets, **options)
