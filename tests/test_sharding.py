"""Mesh construction, the logical rules table, and sharded == single-device training on fake devices."""

import os
import subprocess
import sys
import textwrap

import jax
import pytest
from jax.sharding import PartitionSpec as P

from molmo2_jax.sharding import LOGICAL_RULES, batch_axes, batch_sharding, logical_to_spec, make_mesh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mesh_fills_minus_one_and_rejects_bad_sizes():
    mesh = make_mesh(1, -1, 1)
    assert mesh.shape == {"data": 1, "fsdp": jax.device_count(), "sequence": 1}
    with pytest.raises(ValueError, match="at most one"):
        make_mesh(-1, -1, 1)
    with pytest.raises(ValueError, match="needs"):
        make_mesh(3, 5, 7)


def test_logical_rules_shard_model_dims_and_leave_indivisible_dims_replicated():
    class FakeMesh:
        shape = {"data": 2, "fsdp": 4, "sequence": 1}

    assert logical_to_spec(("embed", "mlp")) == P("fsdp", None)
    assert logical_to_spec(("batch", "length")) == P(("data", "fsdp"), "sequence")
    assert logical_to_spec(("embed", "mlp"), (8, 6), FakeMesh()) == P("fsdp", None)
    assert logical_to_spec(("embed", "mlp"), (6, 6), FakeMesh()) == P(None, None)


def test_batches_are_sharded_through_the_rules_table():
    """`batch_sharding` reads the `batch` and `length` rows: changing the table changes the batch layout."""
    mesh = make_mesh(1, -1, 1)
    assert batch_axes(2) == ("batch", "length") and batch_axes(4, None) == ("batch", None, None, None)
    assert batch_sharding(mesh, 2).spec == P(("data", "fsdp"), "sequence")
    assert batch_sharding(mesh, 4, None).spec == P(("data", "fsdp"), None, None, None)
    no_sequence = tuple((k, None if k == "length" else v) for k, v in LOGICAL_RULES)
    assert batch_sharding(mesh, 2, rules=no_sequence).spec == P(("data", "fsdp"), None)
    data_only = tuple((k, "data" if k == "batch" else v) for k, v in LOGICAL_RULES)
    assert batch_sharding(mesh, 3, rules=data_only).spec == P("data", "sequence", None)


SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, "tests")
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from molmo2_jax import model_config as mc, train
    from molmo2_jax.model import Molmo2
    from molmo2_jax.sharding import batch_sharding, create_sharded, make_mesh
    from test_train import make_batch

    def one_step(mesh):
        cfg = mc.tiny()
        with jax.set_mesh(mesh):
            model = create_sharded(lambda: Molmo2(cfg, rngs=nnx.Rngs(0)), mesh)
            sched = train.learning_rate_schedules({"vit": 1e-3, "connector": 1e-3, "llm": 1e-3}, 1, 10)
            opt = nnx.Optimizer(model, train.make_optimizer(sched, weight_decay=0.01, clip=1.0), wrt=nnx.Param)
            batch = make_batch(cfg, np.random.default_rng(0), b=8, t=16)
            batch = {k: jax.device_put(v, batch_sharding(mesh, v.ndim, 1 if v.ndim == 2 else None))
                     for k, v in batch.items()}
            out = train.make_train_step()(model, opt, batch)
        params = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
        spec = model.language_model.layers[0].mlp.up_proj.kernel[...].sharding.spec
        return float(out["loss"]), params, str(spec)

    loss1, p1, _ = one_step(make_mesh(1, 1, 1, devices=jax.devices()[:1]))
    loss8, p8, spec = one_step(make_mesh(2, 2, 2))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8)))
    print(json.dumps({"loss1": loss1, "loss8": loss8, "param_diff": diff, "spec": spec}))
""")


@pytest.mark.slow
def test_one_step_on_8_fake_devices_equals_one_device():
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert abs(out["loss1"] - out["loss8"]) <= 1e-5
    assert out["param_diff"] <= 1e-5
    assert "fsdp" in out["spec"]  # parameters really are FSDP-sharded


RESTORE_SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, numpy as np
    from flax import nnx
    from molmo2_jax import model_config as mc
    from molmo2_jax.checkpoints.orbax_io import load_params, save_params
    from molmo2_jax.model import Molmo2
    from molmo2_jax.sharding import create_sharded, make_mesh

    path = sys.argv[1]
    saved_mesh = make_mesh(1, 8, 1)
    with jax.set_mesh(saved_mesh):
        model = create_sharded(lambda: Molmo2(mc.tiny(), rngs=nnx.Rngs(3)), saved_mesh)
    save_params(path, model)
    restored = load_params(path, make_mesh(2, 2, 2))
    a = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    b = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(restored, nnx.Param)))
    same = all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    k = restored.language_model.layers[0].mlp.up_proj.kernel[...]
    print(json.dumps({"same": same, "mesh": dict(k.sharding.mesh.shape), "spec": str(k.sharding.spec)}))
""")


@pytest.mark.slow
def test_checkpoint_restores_onto_a_different_mesh(tmp_path):
    """Saved FSDP-8, restored onto data 2 x fsdp 2 x sequence 2: same values, new layout."""
    import json

    run = subprocess.run([sys.executable, "-c", RESTORE_SCRIPT, str(tmp_path / "ckpt")], cwd=ROOT,
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["same"] and out["mesh"] == {"data": 2, "fsdp": 2, "sequence": 2} and "fsdp" in out["spec"]
