"""Point-tracking accuracy and DAVIS J&F on small hand-worked cases."""

import math

import numpy as np
import pytest

from molmo2_jax.eval.tracking import (
    average_point_tracking_accuracy,
    boundary_f_measure,
    boundary_map,
    dilate,
    j_and_f,
    jaccard,
    point_tracking_accuracy,
    point_tracking_metrics,
    region_tracking_metrics,
)

NAN = np.nan
# Ground truth, 3 frames x 2 objects: object 0 moves right along y = 0; object 1 is occluded in frame 1.
GT = np.array([
    [[0, 0], [10, 10]],
    [[1, 0], [NAN, NAN]],
    [[2, 0], [10, 12]],
])  # [T=3, K=2, 2]; 5 visible points
# The model numbered the objects the other way round (ids by first appearance).
PRED = np.array([
    [[10, 11], [0, 0.5]],  # id 0 ~ object 1 (distance 1); id 1 ~ object 0 (distance 0.5)
    [[50, 50], [1, 3]],  # object 1 occluded -> not scored; object 0 at distance 3
    [[10, 12], [NAN, NAN]],  # object 1 exact; object 0 not output -> miss
])


def test_point_tracking_matches_ids_then_counts_points_within_threshold():
    # Threshold 2 (strict <): object 1 tracked in frames 0 and 2, object 0 in frame 0 -> 3 / 5.
    assert point_tracking_accuracy(PRED, GT, 2.0) == pytest.approx(0.6)
    # Threshold 1: frame 0 of object 1 is at distance 1, not < 1 -> 2 / 5.
    assert point_tracking_accuracy(PRED, GT, 1.0) == pytest.approx(0.4)
    assert average_point_tracking_accuracy(PRED, GT, thresholds=(1, 2)) == pytest.approx(0.5)


def test_point_tracking_without_id_matching_compares_same_ids():
    assert point_tracking_accuracy(PRED, GT, 2.0, match_ids=False) == 0.0
    assert point_tracking_accuracy(PRED[:, ::-1], GT, 2.0, match_ids=False) == pytest.approx(0.6)


def test_point_tracking_metrics_micro_and_macro():
    perfect = np.array([[[0.0, 0.0]]])  # one frame, one object, exact
    metrics = point_tracking_metrics([PRED, perfect], [GT, perfect], threshold=2.0)
    assert metrics["accuracy_micro"] == pytest.approx(4 / 6)  # (3 + 1) / (5 + 1)
    assert metrics["accuracy_macro"] == pytest.approx((0.6 + 1.0) / 2)


def test_point_tracking_rejects_mismatched_frames():
    with pytest.raises(ValueError, match="align timestamps"):
        point_tracking_accuracy(PRED[:2], GT, 2.0)


def _square(top: int, left: int) -> np.ndarray:
    mask = np.zeros((6, 6), dtype=bool)
    mask[top:top + 2, left:left + 2] = True
    return mask


GT_MASK = _square(2, 2)  # rows 2-3, cols 2-3
SHIFT_1 = _square(2, 3)  # one column to the right
SHIFT_2 = _square(2, 4)  # two columns to the right, touching the right border


def test_boundary_map_follows_davis_seg2bmap():
    # A pixel is boundary when it differs from its E, S or SE neighbour: the square's right column
    # and bottom row, plus the background pixels just above and left of it.
    expected = np.zeros((6, 6), dtype=bool)
    expected[[1, 1, 1, 2, 3, 2, 3, 3], [1, 2, 3, 1, 1, 3, 2, 3]] = True
    np.testing.assert_array_equal(boundary_map(GT_MASK), expected)
    # On the last column only the south neighbour is compared: (2,5) equals (3,5) -> not boundary.
    shifted = np.zeros((6, 6), dtype=bool)
    shifted[[1, 1, 1, 2, 3, 3, 3], [3, 4, 5, 3, 3, 4, 5]] = True
    np.testing.assert_array_equal(boundary_map(SHIFT_2), shifted)


def test_dilate_uses_a_disk():
    point = np.zeros((7, 7), dtype=bool)
    point[3, 3] = True
    yy, xx = np.mgrid[:7, :7]
    np.testing.assert_array_equal(dilate(point, 2), (yy - 3) ** 2 + (xx - 3) ** 2 <= 4)  # 13 pixels
    np.testing.assert_array_equal(dilate(point, 0), point)


def test_dilate_agrees_with_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for radius in (1, 2, 5):
        mask = rng.random((23, 31)) < 0.05
        yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
        expected = ndimage.binary_dilation(mask, structure=yy**2 + xx**2 <= radius**2)
        np.testing.assert_array_equal(dilate(mask, radius), expected)


def test_j_and_f_on_shifted_squares():
    # 6x6 image: tolerance radius = ceil(0.008 * sqrt(72)) = ceil(0.068) = 1 pixel (a plus-shaped disk).
    # Shift by 1: overlap 2 px, union 6 px -> J = 1/3; every boundary pixel of either mask is within
    # 1 px of the other's boundary -> P = R = F = 1.
    assert jaccard(SHIFT_1, GT_MASK) == pytest.approx(1 / 3)
    assert boundary_f_measure(SHIFT_1, GT_MASK) == pytest.approx(1.0)
    # Shift by 2: no overlap -> J = 0. Prediction boundary (7 px): (1,5) and (3,5) are 2 px from any GT
    # boundary pixel -> P = 5/7. GT boundary (8 px): (1,1), (2,1), (3,1) are 2 px away -> R = 5/8.
    # F = 2 * (5/7) * (5/8) / (5/7 + 5/8) = 2/3.
    assert jaccard(SHIFT_2, GT_MASK) == 0.0
    assert boundary_f_measure(SHIFT_2, GT_MASK) == pytest.approx(2 / 3)
    # With a 2-pixel tolerance (bound_th >= 1 means pixels) every pixel matches -> F = 1.
    assert boundary_f_measure(SHIFT_2, GT_MASK, bound_th=2) == pytest.approx(1.0)
    # Over a two-frame track: J = (1/3 + 0) / 2 = 1/6, F = (1 + 2/3) / 2 = 5/6, J&F = 1/2.
    scores = j_and_f(np.stack([SHIFT_1, SHIFT_2]), np.stack([GT_MASK, GT_MASK]))
    assert scores == pytest.approx({"j": 1 / 6, "f": 5 / 6, "j_and_f": 0.5})


def test_j_and_f_empty_mask_conventions():
    empty = np.zeros((6, 6), dtype=bool)
    assert jaccard(empty, empty) == 1.0 and boundary_f_measure(empty, empty) == 1.0
    assert jaccard(empty, GT_MASK) == 0.0 and boundary_f_measure(empty, GT_MASK) == 0.0


def test_region_tracking_metrics_average_over_objects():
    video_two_objects = np.stack([np.stack([GT_MASK]), np.stack([SHIFT_2])])  # [K=2, T=1, 6, 6]
    pred_two_objects = np.stack([np.stack([SHIFT_1]), np.stack([SHIFT_2])])
    metrics = region_tracking_metrics([pred_two_objects], [video_two_objects])
    # Object 0: J = 1/3, F = 1; object 1 exact: J = F = 1 -> J = 2/3, F = 1, J&F = 5/6.
    assert metrics["j"] == pytest.approx(2 / 3)
    assert metrics["f"] == pytest.approx(1.0)
    assert metrics["j_and_f"] == pytest.approx(5 / 6)
    assert metrics["num_objects"] == 2
    assert math.isnan(region_tracking_metrics([], [])["j"])
