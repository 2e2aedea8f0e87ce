"""The training loop's prefetcher: batches in order, each with the iterator state after it; errors re-raised."""

import time

import numpy as np
import pytest

from molmo2_jax.main import Prefetcher


class Counting:
    def __init__(self, n, fail_at=None):
        self.i, self.n, self.fail_at = 0, n, fail_at

    def __next__(self):
        if self.i == self.fail_at:
            raise ValueError("bad sample 3 in shard x: fix the data")
        if self.i >= self.n:
            raise StopIteration
        self.i += 1
        return {"x": np.full((2,), self.i)}

    def get_state(self):
        return {"next": self.i}


def test_prefetcher_yields_batches_in_order_with_the_state_after_each():
    puts = []
    got = list(Prefetcher(Counting(5), lambda b: puts.append(b) or b["x"] * 10))
    assert [int(h["x"][0]) for h, _, _ in got] == [1, 2, 3, 4, 5]
    assert [int(d[0]) for _, d, _ in got] == [10, 20, 30, 40, 50]
    assert [s["next"] for _, _, s in got] == [1, 2, 3, 4, 5]  # resuming there continues after this batch
    assert len(puts) == 5


def test_prefetcher_reraises_data_errors_in_the_training_thread():
    it = Prefetcher(Counting(10, fail_at=3), lambda b: b)
    for _ in range(3):
        next(it)
    with pytest.raises(ValueError, match="bad sample 3"):
        next(it)


def test_prefetcher_close_stops_the_reading_thread_with_a_full_queue():
    # a thread left reading ahead (inside JAX) at interpreter exit aborts the process: close() must end it
    source = Counting(10**9)
    it = Prefetcher(source, lambda b: b, depth=2)
    next(it)
    it.close(timeout_s=10)
    assert not it._thread.is_alive()
    read = source.i
    assert read <= 1 + 2 + 2  # the batch taken, the 2 queued, the one blocked on the full queue (+1 slack)
    time.sleep(0.2)
    assert source.i == read  # nothing read after close
