"""bench_train_step: several rows (JAX micro-batches vs one PyTorch batch) train the same model to the same first
loss, and --isolate runs each side in its own process whose out-of-memory failure is reported, not fatal."""

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks", "bench_train_step.py")
TINY = ["--model", "tiny", "--seq-len", "256", "--crops", "3", "--steps", "1"]


def run(*argv):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, BENCH, *TINY, *argv], capture_output=True, text=True, env=env, timeout=300)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, {r["side"]: r for r in rows}


def test_rows_are_laid_out_per_image_on_both_sides():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import bench_train_step
    import torch_reference

    config = torch_reference.hf_config("tiny", 1000)
    one = bench_train_step.hf_batch(config, 256, 3)
    two = bench_train_step.hf_batch(config, 256, 3, rows=2)
    np.testing.assert_array_equal(two["input_ids"][:1], one["input_ids"])  # row 0 = the one-row batch
    assert (two["input_ids"][0] != two["input_ids"][1]).any()
    assert not np.array_equal(two["pixel_values"][:3], two["pixel_values"][3:])
    jb = bench_train_step.jax_batch(two, crop_slots=4)
    assert jb["crops"].shape[:2] == (2, 4) and jb["crop_segment_ids"].tolist() == [[1, 1, 1, 0]] * 2
    # transformers indexes row 1's patches after row 0's; the packer's group-local indices see the same patches
    patches = two["pixel_values"].shape[1]
    flat = two["pixel_values"].reshape(-1, two["pixel_values"].shape[-1])
    n = len(one["image_token_pooling"])
    hf_row1 = two["image_token_pooling"][n:]
    jax_row1 = jb["crop_pooling"][1, :n]
    ok = hf_row1 >= 0
    np.testing.assert_array_equal(ok, jax_row1 >= 0)
    np.testing.assert_array_equal(flat[hf_row1[ok]], jb["crops"][1].reshape(-1, flat.shape[-1])[jax_row1[ok]])
    assert patches * 3 <= hf_row1.max() < patches * 6


def test_rows_with_grad_accum_give_the_same_first_loss_in_isolated_children():
    proc, rows = run("--rows", "2", "--grad-accum", "2", "--isolate", "--torch")
    assert proc.returncode == 0, proc.stderr[-2000:]
    jax_row, torch_row = rows["jax"], rows["torch"]
    assert jax_row["status"] == torch_row["status"] == "ok"
    assert jax_row["rows"] == torch_row["rows"] == 2 and jax_row["grad_accum"] == 2
    assert abs(jax_row["losses"][0] - torch_row["losses"][0]) < 1e-4
    assert jax_row["peak_rss_bytes"] > 0 and torch_row["peak_rss_bytes"] > 0
    assert "ratio" in rows


def test_tiny_memory_limit_makes_the_torch_child_report_out_of_memory():
    proc, rows = run("--rows", "2", "--memory-limit-gb", "1.5", "--sides", "torch")
    assert proc.returncode == 0, proc.stderr[-2000:]
    torch_row = rows["torch"]
    assert torch_row["status"] == "out_of_memory" and torch_row["memory_limit_gb"] == 1.5
    # torch loads the model under the limit and fails allocating in the step: a clean RuntimeError, no OOM kill
    assert "allocate" in torch_row["error"] and 0 < torch_row["peak_rss_bytes"] < 1.5 * 2 ** 30
    assert "ratio" not in rows


def test_step_meter_counts_the_kernel_time_and_page_faults_of_fresh_memory():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from torch_reference import StepMeter

    fresh, idle = StepMeter(), StepMeter()
    for _ in range(3):
        with fresh:
            a = np.ones(1 << 24, np.float32)  # 64 MiB, mapped fresh each time (above glibc's mmap threshold)
            del a
        with idle:
            pass
    m = fresh.medians()
    # numpy asks for 2 MiB pages on large arrays: at least one fault per 2 MiB, none when nothing is touched
    assert m["page_faults"] >= 32 > idle.medians()["page_faults"]
    assert 0 <= m["sys_s"] <= m["cpu_s"] <= m["step_s"] * os.cpu_count() + 0.05


def test_bf16_autocast_reference_and_profile_trace(tmp_path):
    """--dtype bfloat16 trains PyTorch under bf16 autocast (JAX in bf16) to about the same first loss, and
    --profile writes a trace of the steps after the first that trace_summary reads."""
    proc, rows = run("--steps", "2", "--dtype", "bfloat16", "--torch", "--profile", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    jax_row, torch_row = rows["jax"], rows["torch"]
    assert jax_row["device"] == torch_row["device"] == "cpu" and "mfu" not in jax_row  # no CPU peak: no MFU
    # bf16 on both sides: the same loss to bf16's precision, not fp32's
    assert abs(jax_row["losses"][0] - torch_row["losses"][0]) < 0.05
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import trace_summary

    text = trace_summary.main([str(tmp_path), "--top", "5"])
    assert "summed op time" in text and "fusion" in text
