"""Video tracking metrics: point-tracking accuracy (TAP-Vid style) and DAVIS region J&F.

Point tracks are arrays [T, K, 2] of (x, y) per frame and object, NaN where the object has no point
(occluded, or not output by the model). A ground-truth point counts as tracked when the prediction
for its object has a point in that frame strictly closer than the threshold (TAP-Vid's `<`); only
frames where the ground truth is visible are scored. Model track ids are numbered by first
appearance, so by default prediction ids are matched to ground-truth ids by an optimal one-to-one
assignment that maximises the number of tracked points. TAP-Vid measures distances at 256x256;
scale coordinates before calling to reproduce it.

J&F follows the DAVIS 2017 evaluation: J is mask IoU (1 when both masks are empty), F the
F-measure of boundary pixels (the DAVIS `seg2bmap` boundary, matched within a disk of radius
ceil(bound_th * image diagonal), or bound_th pixels when bound_th >= 1). DAVIS's semi-supervised
protocol also drops the first and last frame; slice them off before calling if you want that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from molmo2_jax.eval.assignment import linear_sum_assignment


def _as_tracks(tracks: np.ndarray | Sequence) -> np.ndarray:
    """Tracks as float [T, K, 2]."""
    tracks = np.asarray(tracks, dtype=np.float64)
    if tracks.ndim != 3 or tracks.shape[-1] != 2:
        raise ValueError(f"tracks must be [frames, objects, 2] with NaN for missing points, got shape {tracks.shape}")
    return tracks


def point_tracking_counts(pred_tracks: np.ndarray, gt_tracks: np.ndarray, threshold: float, *,
                          match_ids: bool = True) -> tuple[int, int]:
    """(tracked ground-truth points, visible ground-truth points) of one video."""
    pred, gt = _as_tracks(pred_tracks), _as_tracks(gt_tracks)
    if pred.shape[0] != gt.shape[0]:
        raise ValueError(f"prediction has {pred.shape[0]} frames, ground truth {gt.shape[0]}; align timestamps first")
    visible = ~np.isnan(gt).any(axis=-1)  # [T, Kg]
    dist = np.linalg.norm(pred[:, :, None, :] - gt[:, None, :, :], axis=-1)  # [T, Kp, Kg], NaN if either missing
    tracked = (dist < threshold).sum(axis=0)  # [Kp, Kg] frames where pred id kp tracks gt id kg
    if match_ids:
        rows, cols = linear_sum_assignment(-tracked)
    else:
        rows = cols = np.arange(min(tracked.shape))
    return int(tracked[rows, cols].sum()), int(visible.sum())


def point_tracking_accuracy(pred_tracks: np.ndarray, gt_tracks: np.ndarray, threshold: float, *,
                            match_ids: bool = True) -> float:
    """Fraction of visible ground-truth (frame, object) points tracked within threshold; 1.0 if none visible."""
    correct, total = point_tracking_counts(pred_tracks, gt_tracks, threshold, match_ids=match_ids)
    return correct / total if total else 1.0


def average_point_tracking_accuracy(pred_tracks: np.ndarray, gt_tracks: np.ndarray,
                                    thresholds: Sequence[float] = (1, 2, 4, 8, 16), *,
                                    match_ids: bool = True) -> float:
    """TAP-Vid's <delta^x_avg: point-tracking accuracy averaged over several pixel thresholds."""
    return float(np.mean([point_tracking_accuracy(pred_tracks, gt_tracks, t, match_ids=match_ids)
                          for t in thresholds]))


def jaccard(pred_mask: np.ndarray, gt_mask: np.ndarray) -> float:
    """Region similarity J: IoU of two boolean masks [H, W], 1.0 when both are empty."""
    pred, gt = np.asarray(pred_mask, dtype=bool), np.asarray(gt_mask, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: prediction {pred.shape}, ground truth {gt.shape}")
    union = np.count_nonzero(pred | gt)
    return np.count_nonzero(pred & gt) / union if union else 1.0


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """DAVIS seg2bmap: pixels that differ from their east, south or south-east neighbour [H, W]."""
    seg = np.asarray(mask, dtype=bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]  # the image border itself is not a boundary
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation [H, W] by a disk {dx^2 + dy^2 <= radius^2} (skimage's disk), zero outside the image."""
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    # Row by row the disk is an interval |dx| <= w(dy); an interval test is a difference of cumulative sums.
    cumsum = np.pad(np.cumsum(mask, axis=1, dtype=np.int64), ((0, 0), (1, 0)))  # [H, W + 1]
    x = np.arange(width)
    out = np.zeros_like(mask)
    for dy in range(-radius, radius + 1):
        if abs(dy) >= height:
            continue
        half = math.isqrt(radius * radius - dy * dy)
        lo, hi = np.clip(x - half, 0, width), np.clip(x + half + 1, 0, width)
        row_hit = cumsum[:, hi] > cumsum[:, lo]  # [H, W]: any mask pixel in [x - half, x + half]
        out[max(0, -dy):height - max(0, dy)] |= row_hit[max(0, dy):height - max(0, -dy)]
    return out


def boundary_f_measure(pred_mask: np.ndarray, gt_mask: np.ndarray, *, bound_th: float = 0.008) -> float:
    """Contour accuracy F: F-measure of boundary pixels matched within a tolerance disk (DAVIS f_measure)."""
    pred, gt = np.asarray(pred_mask, dtype=bool), np.asarray(gt_mask, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: prediction {pred.shape}, ground truth {gt.shape}")
    radius = int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*gt.shape)))
    pred_boundary, gt_boundary = boundary_map(pred), boundary_map(gt)
    num_pred, num_gt = np.count_nonzero(pred_boundary), np.count_nonzero(gt_boundary)
    if num_pred == 0 and num_gt == 0:
        return 1.0
    if num_pred == 0 or num_gt == 0:
        return 0.0  # DAVIS: precision 1, recall 0 (or the reverse) -> F = 0
    precision = np.count_nonzero(pred_boundary & dilate(gt_boundary, radius)) / num_pred
    recall = np.count_nonzero(gt_boundary & dilate(pred_boundary, radius)) / num_gt
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def j_and_f(pred_masks: np.ndarray, gt_masks: np.ndarray, *, bound_th: float = 0.008) -> dict[str, float]:
    """DAVIS J, F and their mean for one object's mask track [T, H, W] (per-frame scores averaged over frames)."""
    pred, gt = np.asarray(pred_masks, dtype=bool), np.asarray(gt_masks, dtype=bool)
    if pred.shape != gt.shape or gt.ndim != 3:
        raise ValueError(f"mask tracks must both be [T, H, W], got {pred.shape} and {gt.shape}")
    j = float(np.mean([jaccard(p, g) for p, g in zip(pred, gt)]))
    f = float(np.mean([boundary_f_measure(p, g, bound_th=bound_th) for p, g in zip(pred, gt)]))
    return {"j": j, "f": f, "j_and_f": (j + f) / 2}


def region_tracking_metrics(predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray], *,
                            bound_th: float = 0.008) -> dict[str, float]:
    """DAVIS summary: J, F and J&F averaged over all object tracks ([T, H, W] or [K, T, H, W] per video)."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets; pass one of each per video")
    scores = []
    for pred, gt in zip(predictions, targets):
        pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
        if pred.shape != gt.shape:
            raise ValueError(f"mask shapes differ: prediction {pred.shape}, ground truth {gt.shape}")
        for p, g in zip(pred.reshape(-1, *gt.shape[-3:]), gt.reshape(-1, *gt.shape[-3:])):
            scores.append(j_and_f(p, g, bound_th=bound_th))
    j = float(np.mean([s["j"] for s in scores])) if scores else math.nan
    f = float(np.mean([s["f"] for s in scores])) if scores else math.nan
    return {"j": j, "f": f, "j_and_f": (j + f) / 2, "num_objects": float(len(scores))}


def point_tracking_metrics(predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray], *, threshold: float,
                           match_ids: bool = True) -> dict[str, float]:
    """Point-tracking accuracy over videos: micro (over all visible points) and macro (mean over videos)."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets; pass one of each per video")
    counts = np.array([point_tracking_counts(p, t, threshold, match_ids=match_ids)
                       for p, t in zip(predictions, targets)], dtype=np.int64).reshape(-1, 2)
    correct, total = (int(v) for v in counts.sum(axis=0))
    per_video = [c / t if t else 1.0 for c, t in counts]
    return {
        "accuracy_micro": correct / total if total else (1.0 if len(counts) else math.nan),
        "accuracy_macro": float(np.mean(per_video)) if per_video else math.nan,
        "tracked_points": float(correct), "visible_points": float(total), "num_videos": float(len(counts)),
    }


def track_in_mask_prf(pred_frames: Mapping[int, Sequence[tuple[float, float]]],
                      gt_frames: Mapping[int, Sequence[tuple[float, float]]],
                      masks: Callable[[int], Sequence[np.ndarray]]) -> dict[str, float]:
    """allenai `evaluate_video_tracks_with_masks` (MeViS / Ref-YT-VOS / Ref-DAVIS / Molmo2-VideoTrackEval).

    Per frame that has predicted or ground-truth points: predictions are matched to ground-truth points by
    distance and hit when inside that object's mask (`masks(frame)`, one per ground-truth point) -> P/R/F1;
    the video's scores are the means over those frames (1.0 each when neither has any frame).
    """
    from molmo2_jax.eval.pointing import matched_in_mask_prf, point_in_mask

    frames = sorted(set(pred_frames) | set(gt_frames))
    if not frames:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "num_frames": 0}
    scores = []
    for f in frames:
        pred = np.asarray(pred_frames.get(f, ()), np.float64).reshape(-1, 2)
        gt = np.asarray(gt_frames.get(f, ()), np.float64).reshape(-1, 2)
        frame_masks = masks(f) if len(gt) else []
        scores.append(matched_in_mask_prf(
            pred, gt, lambda i, j: j < len(frame_masks) and point_in_mask(pred[i, 0], pred[i, 1], frame_masks[j])))
    p, r, f1 = (float(np.mean(v)) for v in zip(*scores))
    return {"precision": p, "recall": r, "f1": f1, "num_frames": len(frames)}
