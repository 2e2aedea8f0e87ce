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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from molmo2_jax.eval.assignment import linear_sum_assignment, max_matching


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


# ------------------------------------------------------------------------------------------------
# allenai/molmo2's pointing evaluators (olmo/eval/evaluators.py): what its benchmark table reports.
# Unlike `pointing_counts` above, predictions are matched to ground-truth *points* by minimum total
# distance (Hungarian on Euclidean distance), and a matched pair counts only if the predicted point,
# rounded to the nearest pixel, lies inside that object's mask. P, R and F1 are per example and
# averaged over examples (macro).


def point_in_mask(x: float, y: float, mask: np.ndarray) -> bool:
    """allenai `is_point_in_region`: round to the nearest pixel; outside the image is a miss."""
    height, width = mask.shape
    xi, yi = int(round(x)), int(round(y))
    return 0 <= xi < width and 0 <= yi < height and bool(mask[yi, xi])


def _f1(precision: float, recall: float, eps: float = 1e-10) -> float:
    """allenai `f1_score`: 0 if either is 0, else 2PR / (P + R + eps)."""
    return 0.0 if precision == 0 or recall == 0 else 2 * precision * recall / (precision + recall + eps)


def matched_in_mask_prf(pred: np.ndarray | Sequence, gt: np.ndarray | Sequence,
                        inside: Callable[[int, int], bool]) -> tuple[float, float, float]:
    """Distance-matched P/R/F1 over points [N, D] / [G, D]; `inside(i, j)`: prediction i is in object j's mask."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if len(gt) == 0:
        v = float(len(pred) == 0)
        return v, v, v
    if len(pred) == 0:
        return 0.0, 0.0, 0.0
    dists = np.linalg.norm(pred[:, None, :] - gt[None, :, :], axis=-1)  # [N, G]
    rows, cols = linear_sum_assignment(dists)
    hits = sum(bool(inside(int(i), int(j))) for i, j in zip(rows, cols))
    precision, recall = hits / len(pred), hits / len(gt)
    return precision, recall, _f1(precision, recall)


def pointing_eval_prf(pred_points: np.ndarray | Sequence, gt_points: np.ndarray | Sequence,
                      masks: Sequence[np.ndarray]) -> tuple[float, float, float]:
    """allenai `PointingEval` for one image (pointing_eval_v2): pixels in, P/R/F1 out."""
    pred = np.asarray(pred_points, dtype=np.float64).reshape(-1, 2)
    return matched_in_mask_prf(pred, np.asarray(gt_points, np.float64).reshape(-1, 2),
                               lambda i, j: point_in_mask(pred[i, 0], pred[i, 1], masks[j]))


def video_point_prf(pred: Sequence[tuple[float, float, float]], gt: Sequence[tuple[float, float, float]],
                    masks: Sequence[Mapping[float, np.ndarray]], duration: float, width: float,
                    height: float) -> tuple[float, float, float]:
    """allenai `VixMoPointEval` (Molmo2-VideoPointEval): (t, x, y) points matched on (t, x, y) scaled to 0-100.

    Matching uses time as a fraction of the duration and x, y of the frame (each x100, rounded to 0.1);
    a matched prediction hits when the ground truth's tubelet has a mask at exactly that time and the
    point is inside it.
    """
    def norm(points):
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        scale = np.array([duration, width, height], np.float64)
        return np.round(np.minimum(p / scale * 100, 100), 1)

    pred_abs = np.asarray(pred, dtype=np.float64).reshape(-1, 3)

    def inside(i: int, j: int) -> bool:
        t, x, y = pred_abs[i]
        return t in masks[j] and point_in_mask(x, y, masks[j][t])

    return matched_in_mask_prf(norm(pred_abs), norm(gt), inside)


def point_bench_correct(points: Sequence[tuple[float, float]], mask: np.ndarray, width: int, height: int) -> bool:
    """allenai `PointBenchEval`: at least one point and every point (truncated to a pixel) inside the mask."""
    if len(points) == 0:
        return False
    for x, y in points:
        px, py = int(x), int(y)
        if not (0 <= px < width and 0 <= py < height) or py >= mask.shape[0] or px >= mask.shape[1]:
            return False
        if not mask[py, px]:
            return False
    return True
