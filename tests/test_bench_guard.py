"""Guard: the tiny train-step benchmark keeps at least half its recorded speed ratio over PyTorch (one run)."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_jax_step_keeps_half_its_recorded_ratio_to_pytorch():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import bench_train_step

    with open(os.path.join(ROOT, "benchmarks", "reference_ratio.json")) as f:
        recorded = json.load(f)
    rows = bench_train_step.main(recorded["command"].split()[2:])
    jax_row, torch_row, ratio = rows
    # the same weights and batch on both sides: the first losses agree, so the ratio compares like with like
    assert abs(jax_row["losses"][0] - torch_row["losses"][0]) < 1e-3
    got = ratio["jax_over_torch_tokens_per_s"]
    assert got >= recorded["jax_over_torch_tokens_per_s"] / 2, (
        f"JAX/PyTorch tokens/s fell to {got:.2f}x (recorded {recorded['jax_over_torch_tokens_per_s']:.2f}x): "
        "a change slowed the train step; run the command in benchmarks/reference_ratio.json to see the figures")
