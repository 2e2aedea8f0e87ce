"""The trainer CLI: the demo learns (short CI version), --inspect, two processes (resume after SIGKILL: test_faults)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import TEST_XLA_FLAGS, production_env, with_devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cmd(workdir, overrides, extra_args=()):
    return [sys.executable, "-m", "molmo2_jax.main", "--config", "configs/demo.py", "--workdir", str(workdir),
            *[f"--config.{o}" for o in overrides], *extra_args]


def _main(workdir, *overrides, extra_args=(), timeout=900, optimized=False, extra_env=None):
    """The demo command; `optimized`: compiled as users compile it (for runs long enough that execution dominates)."""
    env = dict(os.environ, PYTHONPATH=ROOT, **(extra_env or {}))
    return subprocess.run(_cmd(workdir, overrides, extra_args), cwd=ROOT, env=production_env(env) if optimized else env,
                          capture_output=True, text=True, timeout=timeout)


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_short_demo_loss_falls_and_writes_model_and_png(tmp_path):
    run = _main(tmp_path, "total_steps=40", "log_every=10", "data.eval_examples=4", "checkpoint_every=40",
                optimized=True, extra_env={"MOLMO2_PEAK_FLOPS": "1e12"})  # a CPU has no known peak: MFU from it
    assert run.returncode == 0, run.stderr[-3000:]
    if os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled") and "GLIBC_TUNABLES" not in os.environ:
        assert "host: 2 JAX CPU devices, GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in run.stdout  # restarted once
    rows = [r for r in _metrics(tmp_path) if "loss" in r]
    assert rows[-1]["loss"] < rows[0]["loss"] - 1.0
    assert rows[0]["eta_s"] == pytest.approx(30 * rows[0]["step_time_s"]) and rows[-1]["eta_s"] == 0
    assert all(0 < r["mfu"] < 1 for r in rows)
    assert any("eval_pointing_f1" in r for r in _metrics(tmp_path))
    assert os.path.exists(tmp_path / "predictions_40.png")
    assert os.path.exists(tmp_path / "model" / "processor.json")
    summary = json.load(open(tmp_path / "eval" / "40" / "summary.json"))
    assert {"pointing_f1", "counting_accuracy", "chance_pointing_f1", "chance_counting_accuracy"} <= set(summary)
    _readme_generate_command_runs(tmp_path)


def test_hugepages_restart_only_when_asked_on_linux_and_once():
    import ml_collections

    from molmo2_jax.main import HUGEPAGES_TUNABLE, hugepages_restart_env

    on = ml_collections.ConfigDict({"cpu_hugepages": True})
    env = hugepages_restart_env(on, {"PATH": "/bin"}, "linux")
    if os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled"):
        assert env == {"PATH": "/bin", "GLIBC_TUNABLES": HUGEPAGES_TUNABLE}
        assert hugepages_restart_env(on, env, "linux") is None  # the restarted process does not restart again
    assert hugepages_restart_env(on, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}, "linux") is None  # user's wins
    assert hugepages_restart_env(on, {}, "darwin") is None
    assert hugepages_restart_env(ml_collections.ConfigDict({"cpu_hugepages": False}), {}, "linux") is None


def test_cpu_devices_give_way_to_an_explicit_device_count_and_multi_process_runs():
    import ml_collections

    from molmo2_jax.main import configure_host

    two = ml_collections.ConfigDict({"cpu_devices": 2})
    assert configure_host(two, {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}) == 0
    assert configure_host(two, {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234"}) == 0
    assert configure_host(two, {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}) == 0
    assert configure_host(ml_collections.ConfigDict({"cpu_devices": 0}), {}) == 0


def _readme_generate_command_runs(workdir):
    """README's `generate` command, exactly as written but with runs/demo -> workdir: exit 0 and a PNG."""
    import re
    import shlex

    readme = open(os.path.join(ROOT, "README.md")).read()
    blocks = [b.replace("\\\n", " ") for b in re.findall(r"```bash\n(.*?)```", readme, re.S)]
    cmd = next(shlex.split(line) for b in blocks for line in b.splitlines() if "molmo2_jax.generate" in line)
    image = cmd[cmd.index("--image") + 1]
    assert image.startswith("runs/demo/examples/"), image
    examples = json.load(open(workdir / "examples" / "examples.json"))
    written = {e["image"]: e["prompt"] for e in examples}
    assert written[os.path.basename(image)] == cmd[cmd.index("--prompt") + 1]  # the scene's own question
    cmd = [sys.executable if c.endswith("bin/python") else c.replace("runs/demo", str(workdir)) for c in cmd]
    out = cmd[cmd.index("--out") + 1]
    cmd[cmd.index("--out") + 1] = str(workdir / out)
    run = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert open(workdir / out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_inspect_prints_params_mesh_and_memory(tmp_path):
    run = _main(tmp_path, "total_steps=2", extra_args=["--inspect"])
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "params[language_model]" in out and "mesh:" in out and "GiB" in out
    assert "input_ids" in out  # one batch was built and shown


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3"])
def test_stage_configs_inspect_nano_on_fake_devices(tmp_path, stage):
    """Abstract shapes only: the nano model's shardings and per-device memory on 8 fake CPU devices."""
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", XLA_FLAGS=with_devices(8))
    compile_flag = "--inspect_compile" if stage == "stage1" else "--noinspect_compile"  # one nano compile only
    run = subprocess.run([sys.executable, "-m", "molmo2_jax.main", "--config", f"configs/{stage}.py", "--workdir",
                          str(tmp_path), "--inspect", compile_flag], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "over 8 devices" in run.stdout and "memory per device" in run.stdout
    assert "language_model.embed_tokens.embedding" in run.stdout and "'fsdp'" in run.stdout
    assert ("compiled train step" in run.stdout) == (stage == "stage1")
    assert "schedule:" in run.stdout and "lr[llm]: peak" in run.stdout and "mixture" in run.stdout
    assert not os.path.exists(tmp_path / "checkpoints")  # nothing was trained or written


@pytest.mark.slow
def test_two_processes_with_jax_distributed_train_together(tmp_path):
    """Two real processes on localhost (one CPU device each) run 3 steps over one 2-device mesh."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for pid in range(2):
        env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                   JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(pid))
        env["XLA_FLAGS"] = TEST_XLA_FLAGS  # one device each (no fake-device count)
        env.pop("JAX_COMPILATION_CACHE_DIR", None)  # both processes compile at once: no shared cache entries
        procs.append(subprocess.Popen(_cmd(tmp_path, ("total_steps=3", "log_every=1", "checkpoint_every=3",
                                                      "data.eval_examples=0", "data.window=16")),
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    rows = [r for r in _metrics(tmp_path) if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]  # written once, by process 0
    assert os.path.exists(tmp_path / "checkpoints" / "3" / "data" / "process_1-of-2.json")  # one step dir holds all
