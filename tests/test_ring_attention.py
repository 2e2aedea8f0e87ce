"""Ring and Ulysses attention over the mesh's `sequence` axis equal dense attention (8 fake CPU devices)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import with_devices

from molmo2_jax.ring_attention import zigzag_order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script: str, timeout: int = 900) -> dict:
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_zigzag_gives_each_device_an_early_and_a_late_chunk():
    order = zigzag_order(16, 4)  # 8 chunks of 2; device i holds chunks i and 7 - i
    assert sorted(order.tolist()) == list(range(16))
    np.testing.assert_array_equal(order.reshape(4, 4), [[0, 1, 14, 15], [2, 3, 12, 13], [4, 5, 10, 11],
                                                        [6, 7, 8, 9]])
    with pytest.raises(ValueError, match="multiple of 8"):
        zigzag_order(12, 4)


KERNELS = textwrap.dedent("""
    import os, sys, json
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, "tests")
    import jax, jax.numpy as jnp, numpy as np
    from molmo2_jax.attention import attend
    from molmo2_jax.ring_attention import zigzag_order
    from molmo2_jax.sharding import make_mesh
    from test_attention import LAYOUTS, make_case, out_and_grads

    layouts = sorted(LAYOUTS)  # one batch row per layout; 8 tokens per device, so every block spans devices
    errors, report = {}, {}

    def check(name, mesh, impl, heads, kv_heads, order=None):
        q, k, v, info, do = make_case(layouts, 64, heads, kv_heads)
        if order is not None:  # the model's zig-zag layout: tokens permuted, MaskInfo travels with them
            q, k, v, do = (x[:, order] for x in (q, k, v, do))
            info = jax.tree.map(lambda a: a[:, order], info)
        want = jax.jit(lambda *a: out_and_grads(lambda q, k, v: attend(q, k, v, info, "xla"), *a))(q, k, v, do)
        with jax.set_mesh(mesh):
            got = jax.jit(lambda *a: out_and_grads(
                lambda q, k, v: attend(q, k, v, info, impl, block_size=4), *a))(q, k, v, do)
        errors[name] = {layout: max(float(jnp.abs(a[r] - b[r]).max()) for a, b in zip(want, got))
                        for r, layout in enumerate(layouts)}

    seq8 = make_mesh(1, 1, 8)
    check("ring_16_8", seq8, "ring", 16, 8)
    check("ring_8_1", seq8, "ring", 8, 1)
    check("ring_zigzag_16_8", seq8, "ring", 16, 8, zigzag_order(64, 8))
    check("ulysses_16_8", seq8, "ulysses", 16, 8)
    check("ring_batch_and_sequence_8_1", make_mesh(1, 2, 4), "ring", 8, 1, zigzag_order(64, 4))
    check("ulysses_sequence_1_8_1", make_mesh(1, 8, 1), "ulysses", 8, 1)  # sequence 1: local blockwise
    try:
        check("ulysses_8_1", seq8, "ulysses", 8, 1)
    except ValueError as e:
        report["ulysses_8_1_error"] = str(e)
    print(json.dumps(dict(report, errors=errors)))
""")


def test_ring_and_ulysses_equal_dense_forward_and_gradients():
    out = _run(KERNELS)
    for name, per_layout in out["errors"].items():
        for layout, err in per_layout.items():
            assert err <= 1e-5, (name, layout, err)
    assert len(out["errors"]) == 6 and all(len(v) == 5 for v in out["errors"].values())
    assert "must divide the KV-head count" in out["ulysses_8_1_error"]  # 1 KV head cannot split over 8


TRAIN_STEP = textwrap.dedent("""
    import os, sys, json, dataclasses
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, "tests")
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from molmo2_jax import model_config as mc, train
    from molmo2_jax.model import Molmo2
    from molmo2_jax.sharding import batch_sharding, create_sharded, make_mesh
    from test_train import make_batch

    base = mc.tiny()
    cfg = dataclasses.replace(base, text=dataclasses.replace(base.text, num_heads=8, num_kv_heads=4))
    batch = make_batch(cfg, np.random.default_rng(0), b=2, t=32)
    batch["segment_ids"][1, 20:] = 2  # the second row packs a second example ...
    batch["positions"][1, 20:] = np.arange(12)  # ... whose positions restart
    batch["target_ids"][1, 19] = -1

    def one_step(mesh, impl):
        with jax.set_mesh(mesh):
            model = create_sharded(lambda: Molmo2(cfg, rngs=nnx.Rngs(0), attention_impl=impl, remat=True), mesh)
            sched = train.learning_rate_schedules({"vit": 1e-3, "connector": 1e-3, "llm": 1e-3}, 1, 10)
            opt = nnx.Optimizer(model, train.make_optimizer(sched, weight_decay=0.01, clip=1.0), wrt=nnx.Param)
            b = {k: jax.device_put(v, batch_sharding(mesh, v.ndim, 1 if v.ndim == 2 else None))
                 for k, v in batch.items()}
            out = train.make_train_step()(model, opt, b)
        return float(out["loss"]), jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))

    loss1, p1 = one_step(make_mesh(1, 1, 1, devices=jax.devices()[:1]), "xla")
    res = {"loss1": loss1}
    for impl in ("ring", "ulysses"):
        loss, p = one_step(make_mesh(1, 2, 4), impl)
        res[impl] = {"loss": loss, "param_diff": max(float(np.max(np.abs(a - b)))
                                                     for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p)))}
    print(json.dumps(res))
""")


@pytest.mark.slow
def test_train_step_with_ring_and_ulysses_over_sequence_4_equals_one_device():
    out = _run(TRAIN_STEP)
    for impl in ("ring", "ulysses"):
        assert abs(out[impl]["loss"] - out["loss1"]) <= 1e-5, out
        assert out[impl]["param_diff"] <= 1e-5, out


STAGE3_TINY = textwrap.dedent("""
    from configs.demo import get_config as demo


    def get_config():  # stage 3's context parallelism (configs/stage3.py) on the tiny demo model
        c = demo()
        c.total_steps, c.log_every, c.checkpoint_every, c.data.eval_examples = 3, 1, 3, 0
        c.mesh.sequence, c.mesh.fsdp, c.attention_impl, c.remat = 8, 1, "ring", "block"
        c.batch_size, c.seq_len = 2, 384
        return c
""")


def _main(args, timeout=900):
    env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS=with_devices(8), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "molmo2_jax.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_stage3_shaped_ring_training_runs_on_8_fake_devices(tmp_path):
    """A few real steps of the tiny model with packed image examples split over sequence = 8 (ring)."""
    (tmp_path / "stage3_tiny.py").write_text(STAGE3_TINY)
    run = _main(["--config", str(tmp_path / "stage3_tiny.py"), "--workdir", str(tmp_path / "run")])
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 3 and all(np.isfinite(losses)), rows


@pytest.mark.slow
def test_stage3_inspect_reports_compiled_memory_on_a_sequence_mesh(tmp_path):
    run = _main(["--config", "configs/stage3.py", "--workdir", str(tmp_path), "--inspect", "--config.model.name=tiny",
                 "--config.seq_len=2048", "--config.batch_size=1", "--config.data.max_frames=16"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "compiled train step" in run.stdout and "'sequence': 8" in run.stdout
    assert "peak" in run.stdout
