"""Pointing precision / recall / F1 with one-to-one matching of predicted points to ground-truth objects.

A predicted point (x, y), in pixels of the image, hits a ground-truth object when it lies inside
its mask (pixel mask[floor(y), floor(x)]; x == W or y == H count as the last pixel), inside its
box (x0 <= x <= x1 and y0 <= y <= y1) or within `dist_threshold` pixels of its point (<=). Points
with NaN coordinates hit nothing. Predictions and objects are matched one-to-one by an optimal
(Hungarian) assignment, so two points on one object count once: one true positive, one false
positive; objects left unmatched are misses.

Conventions for empty sets: precision = TP / #predictions and recall = TP / #objects, each 1.0
when its denominator is 0 (nothing was wrongly predicted / nothing was missed); F1 =
2PR / (P + R), 0 when P + R = 0. So an example with no objects and no predictions scores
P = R = F1 = 1; predictions on an empty target give P = 0, R = 1, F1 = 0; no predictions on a
non-empty target give P = 1, R = 0, F1 = 0. Micro scores apply these to the TP / prediction /
object counts summed over examples; macro scores average the per-example P, R and F1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from molmo2_jax.eval.assignment import max_matching


@dataclass(frozen=True, eq=False)
class PointTarget:
    """Ground-truth objects of one pointing example: points [P, 2], boxes [B, 4] (x0, y0, x1, y1), masks [M, H, W]."""

    points: np.ndarray | None = None
    boxes: np.ndarray | None = None
    masks: np.ndarray | None = None

    @property
    def num_objects(self) -> int:
        """Number of ground-truth objects (points, then boxes, then masks)."""
        return sum(0 if a is None else len(a) for a in (self.points, self.boxes, self.masks))


def _as_points(points: np.ndarray | Sequence) -> np.ndarray:
    """Points as a float array [N, 2] of (x, y)."""
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def point_hits(pred_points: np.ndarray | Sequence, target: PointTarget, *,
               dist_threshold: float | None = None) -> np.ndarray:
    """Bool matrix [num_pred, num_objects]: does predicted point i hit ground-truth object j."""
    pred = _as_points(pred_points)  # [N, 2]
    x, y = pred[:, 0], pred[:, 1]
    columns = []
    if target.points is not None and len(target.points):
        if dist_threshold is None:
            raise ValueError("ground-truth points need dist_threshold (pixels) to decide when a prediction hits them")
        gt = _as_points(target.points)  # [P, 2]
        dist = np.linalg.norm(pred[:, None, :] - gt[None, :, :], axis=-1)  # [N, P]
        columns.append(dist <= dist_threshold)
    if target.boxes is not None and len(target.boxes):
        boxes = np.asarray(target.boxes, dtype=np.float64).reshape(-1, 4)  # [B, 4]
        columns.append((x[:, None] >= boxes[None, :, 0]) & (x[:, None] <= boxes[None, :, 2])
                       & (y[:, None] >= boxes[None, :, 1]) & (y[:, None] <= boxes[None, :, 3]))
    if target.masks is not None and len(target.masks):
        masks = np.asarray(target.masks, dtype=bool)  # [M, H, W]
        if masks.ndim != 3:
            raise ValueError(f"masks must be [num_objects, H, W], got shape {masks.shape}")
        height, width = masks.shape[1:]
        inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)  # NaN compares False
        col = np.minimum(np.floor(np.where(inside, x, 0)), width - 1).astype(np.int64)
        row = np.minimum(np.floor(np.where(inside, y, 0)), height - 1).astype(np.int64)
        columns.append(masks[:, row, col].T & inside[:, None])  # [N, M]
    if not columns:
        return np.zeros((len(pred), 0), dtype=bool)
    return np.concatenate(columns, axis=1)


def match_points(pred_points: np.ndarray | Sequence, target: PointTarget, *,
                 dist_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (pred, object) of the largest one-to-one set of hits."""
    return max_matching(point_hits(pred_points, target, dist_threshold=dist_threshold))


def precision_recall_f1(true_positives: int, num_pred: int, num_gt: int) -> tuple[float, float, float]:
    """P, R, F1 from counts; an empty denominator gives 1.0 (see the module docstring)."""
    precision = true_positives / num_pred if num_pred else 1.0
    recall = true_positives / num_gt if num_gt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pointing_counts(pred_points: np.ndarray | Sequence, target: PointTarget, *,
                    dist_threshold: float | None = None) -> tuple[int, int, int]:
    """(true positives, #predicted points, #ground-truth objects) of one example."""
    pred_idx, _ = match_points(pred_points, target, dist_threshold=dist_threshold)
    return len(pred_idx), len(_as_points(pred_points)), target.num_objects


def _as_target(target: PointTarget | Mapping) -> PointTarget:
    """Accept a PointTarget or a mapping with keys points / boxes / masks."""
    return target if isinstance(target, PointTarget) else PointTarget(**target)


def pointing_metrics(predictions: Sequence[np.ndarray | Sequence], targets: Sequence[PointTarget | Mapping], *,
                     dist_threshold: float | None = None) -> dict[str, float]:
    """Micro and macro pointing precision / recall / F1 over examples."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets; pass one of each per example")
    counts = np.array([pointing_counts(p, _as_target(t), dist_threshold=dist_threshold)
                       for p, t in zip(predictions, targets)], dtype=np.int64).reshape(-1, 3)
    per_example = np.array([precision_recall_f1(*c) for c in counts]).reshape(-1, 3)
    tp, num_pred, num_gt = (int(v) for v in counts.sum(axis=0))
    micro = precision_recall_f1(tp, num_pred, num_gt) if len(counts) else (np.nan,) * 3
    macro = per_example.mean(axis=0) if len(counts) else (np.nan,) * 3
    return {
        "precision_micro": float(micro[0]), "recall_micro": float(micro[1]), "f1_micro": float(micro[2]),
        "precision_macro": float(macro[0]), "recall_macro": float(macro[1]), "f1_macro": float(macro[2]),
        "true_positives": float(tp), "num_pred": float(num_pred), "num_gt": float(num_gt),
        "num_examples": float(len(counts)),
    }
