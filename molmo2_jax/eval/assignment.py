"""Optimal one-to-one assignment (Hungarian method), used to match predicted to ground-truth points and tracks."""

from __future__ import annotations

import numpy as np


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost one-to-one assignment of min(n, m) pairs (same result as scipy's)."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    if not np.all(np.isfinite(cost)):
        raise ValueError("cost must be finite; use a large finite value for forbidden pairs")
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    n, m = cost.shape  # n <= m: every row gets a column
    # Shortest augmenting paths with potentials u (rows) and v (columns); index 0 is a virtual column.
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    row_of_col = np.zeros(m + 1, dtype=np.int64)  # 1-based row matched to each column, 0 = free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        row_of_col[0] = i
        col = 0
        min_slack = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[col] = True
            row = row_of_col[col]
            slack = cost[row - 1] - u[row] - v[1:]  # [m]
            free = ~used[1:]
            better = free & (slack < min_slack[1:])
            min_slack[1:][better] = slack[better]
            way[1:][better] = col
            candidates = np.where(free, min_slack[1:], np.inf)
            next_col = int(np.argmin(candidates)) + 1
            delta = candidates[next_col - 1]
            u[row_of_col[used]] += delta
            v[used] -= delta
            min_slack[1:][free] -= delta
            col = next_col
            if row_of_col[col] == 0:
                break
        while col:  # flip the augmenting path
            previous = way[col]
            row_of_col[col] = row_of_col[previous]
            col = previous
    cols = np.nonzero(row_of_col[1:])[0]
    rows = row_of_col[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def max_matching(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest one-to-one set of (row, col) pairs with allowed[row, col] True."""
    allowed = np.asarray(allowed, dtype=bool)
    if allowed.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, cols = linear_sum_assignment(~allowed)  # cost 0 for allowed pairs, 1 otherwise
    keep = allowed[rows, cols]
    return rows[keep], cols[keep]
