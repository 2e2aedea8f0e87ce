"""Pointing precision / recall / F1 with one-to-one matching, on hand-worked examples."""

import numpy as np
import pytest

from molmo2_jax.eval.pointing import PointTarget, point_hits, pointing_counts, pointing_metrics, precision_recall_f1


def _two_masks() -> np.ndarray:
    masks = np.zeros((2, 10, 10), dtype=bool)  # [objects, H, W]
    masks[0, 0:5, 0:5] = True  # top-left quadrant
    masks[1, 5:10, 5:10] = True  # bottom-right quadrant
    return masks


# Example A: two masks; points (1,1) and (2,3) both on mask 0 (a duplicate), (7,7) on mask 1,
# (9.5,0.5) on nothing. TP = 2 of 4 predictions and 2 objects: P = 1/2, R = 1, F1 = 2/3.
EXAMPLE_A = ([[1, 1], [2, 3], [7, 7], [9.5, 0.5]], PointTarget(masks=_two_masks()))
# Example B: three boxes, one point in the first. TP = 1 of 1 prediction, 3 objects: P = 1, R = 1/3, F1 = 1/2.
EXAMPLE_B = ([[5, 5]], PointTarget(boxes=np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])))
# Example C: nothing to point at and nothing predicted: P = R = F1 = 1.
EXAMPLE_C = (np.zeros((0, 2)), PointTarget())


def test_duplicates_count_once_and_misses_lower_recall():
    assert pointing_counts(*EXAMPLE_A) == (2, 4, 2)
    assert precision_recall_f1(*pointing_counts(*EXAMPLE_A)) == pytest.approx((0.5, 1.0, 2 / 3))
    assert precision_recall_f1(*pointing_counts(*EXAMPLE_B)) == pytest.approx((1.0, 1 / 3, 0.5))


def test_empty_conventions():
    assert precision_recall_f1(0, 0, 0) == (1.0, 1.0, 1.0)  # nothing to find, nothing predicted
    assert precision_recall_f1(0, 3, 0) == (0.0, 1.0, 0.0)  # points on an empty target
    assert precision_recall_f1(0, 0, 2) == (1.0, 0.0, 0.0)  # no points for a non-empty target


def test_micro_and_macro_aggregation():
    metrics = pointing_metrics([EXAMPLE_A[0], EXAMPLE_B[0], EXAMPLE_C[0]], [EXAMPLE_A[1], EXAMPLE_B[1], EXAMPLE_C[1]])
    # Micro: TP = 2 + 1 + 0 = 3, predictions 4 + 1 + 0 = 5, objects 2 + 3 + 0 = 5 -> P = R = F1 = 3/5.
    assert metrics["precision_micro"] == pytest.approx(0.6)
    assert metrics["recall_micro"] == pytest.approx(0.6)
    assert metrics["f1_micro"] == pytest.approx(0.6)
    # Macro: P = (1/2 + 1 + 1) / 3 = 5/6, R = (1 + 1/3 + 1) / 3 = 7/9, F1 = (2/3 + 1/2 + 1) / 3 = 13/18.
    assert metrics["precision_macro"] == pytest.approx(5 / 6)
    assert metrics["recall_macro"] == pytest.approx(7 / 9)
    assert metrics["f1_macro"] == pytest.approx(13 / 18)
    assert (metrics["true_positives"], metrics["num_pred"], metrics["num_gt"]) == (3, 5, 5)


def test_matching_is_optimal_not_greedy():
    # (2,2) lies in both boxes, (8,8) only in the big one: the optimal matching pairs both points.
    target = PointTarget(boxes=np.array([[0, 0, 10, 10], [0, 0, 4, 4]]))
    assert pointing_counts([[2, 2], [8, 8]], target) == (2, 2, 2)


def test_ground_truth_points_use_distance_threshold():
    target = PointTarget(points=np.array([[10.0, 10.0]]))
    assert pointing_counts([[13, 14]], target, dist_threshold=5.0) == (1, 1, 1)  # distance 5 <= 5
    assert pointing_counts([[13, 14]], target, dist_threshold=4.9) == (0, 1, 1)
    with pytest.raises(ValueError, match="dist_threshold"):
        pointing_counts([[13, 14]], target)


def test_mask_lookup_edges_and_nan():
    mask = np.zeros((1, 4, 6), dtype=bool)  # [1, H=4, W=6]
    mask[0, 3, 5] = True  # bottom-right pixel
    hits = point_hits([[6.0, 4.0], [5.5, 3.5], [6.1, 3.5], [np.nan, 1.0], [-0.1, 0.0]], PointTarget(masks=mask))
    assert hits[:, 0].tolist() == [True, True, False, False, False]


def test_mixed_target_kinds_are_objects_in_order():
    target = PointTarget(points=np.array([[0.0, 0.0]]), boxes=np.array([[10, 10, 20, 20]]), masks=_two_masks())
    assert target.num_objects == 4
    assert point_hits([[15, 15]], target, dist_threshold=1.0).tolist() == [[False, True, False, False]]


def test_pointing_metrics_accepts_mappings():
    metrics = pointing_metrics([[[5, 5]]], [{"boxes": np.array([[0, 0, 10, 10]])}])
    assert metrics["f1_macro"] == 1.0
