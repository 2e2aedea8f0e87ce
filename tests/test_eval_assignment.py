"""Hungarian assignment against brute force (and scipy when installed)."""

import itertools

import numpy as np
import pytest

from molmo2_jax.eval.assignment import linear_sum_assignment, max_matching


def _brute_force_cost(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n > m:
        return _brute_force_cost(cost.T)
    return min((sum(cost[i, j] for i, j in zip(range(n), cols)) for cols in itertools.permutations(range(m), n)),
               default=0.0)


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (3, 0), (1, 1), (3, 3), (2, 5), (5, 2), (4, 4)])
def test_linear_sum_assignment_is_optimal_and_one_to_one(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.integers(0, 4, shape).astype(float)  # small integers: many ties
        rows, cols = linear_sum_assignment(cost)
        assert len(rows) == min(shape)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(_brute_force_cost(cost))


def test_linear_sum_assignment_agrees_with_scipy():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    for n, m in [(7, 7), (6, 9), (9, 6), (20, 30)]:
        cost = rng.normal(size=(n, m))
        rows, cols = linear_sum_assignment(cost)
        ref_rows, ref_cols = scipy_optimize.linear_sum_assignment(cost)
        assert cost[rows, cols].sum() == pytest.approx(cost[ref_rows, ref_cols].sum())


def test_max_matching_beats_greedy():
    # Row 0 may take either column, row 1 only column 0: greedy (0->0) matches one pair, optimal two.
    rows, cols = max_matching(np.array([[True, True], [True, False]]))
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]


def test_linear_sum_assignment_rejects_infinite_cost():
    with pytest.raises(ValueError, match="finite"):
        linear_sum_assignment(np.array([[0.0, np.inf]]))
