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
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
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
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
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


LOCAL_VISION_SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from data_pipelines.packing import MediaField, PackSpec, assemble, default_token_fields
    from molmo2_jax import model_config as mc, train
    from molmo2_jax.main import _MODEL_KEYS
    from molmo2_jax.model import Molmo2
    from molmo2_jax.sharding import field_sharding, make_mesh

    cfg = mc.tiny()
    p, d, patch = cfg.vit.num_patches, cfg.vit.patch_dim, cfg.token_ids.image_patch
    rng = np.random.default_rng(0)

    def example(kind, n):  # n crops of one image (2x2 windows) or n frames (3x3), one pooled token per crop
        ids = np.concatenate([[5, 6], np.full(n, patch), [7]]).astype(np.int32)
        window = 4 if kind == "img" else 9
        pool = (np.arange(n)[:, None] * p + np.arange(window)[None]).astype(np.int32)
        pix, pk = ("pixel_values", "image_token_pooling") if kind == "img" else ("pixel_values_videos",
                                                                                 "video_token_pooling")
        ex = dict(input_ids=ids, target_ids=ids, loss_weights=np.ones(len(ids), np.float32),
                  branch_ids=np.full(len(ids), -1, np.int32), mm_token_type_ids=(ids == patch).astype(np.int32))
        ex[pix], ex[pk] = rng.uniform(-1, 1, (n, p, d)).astype(np.float32), pool
        if kind == "img":
            ex.update(image_grids=np.ones((1, 4), np.int32), image_num_crops=np.asarray([n], np.int32))
        else:
            ex["video_grids"] = np.ones((1, 3), np.int32)
        return ex

    spec = PackSpec(24, (MediaField.image(3, (p, d)), MediaField.video(3, (p, d))), default_token_fields(0))
    rows = [assemble([example("img", 1 + r % 3), example("vid", 1 + (r + 1) % 3)], spec) for r in range(8)]
    host = {k: np.stack([r[k] for r in rows]) for k in rows[0] if k in _MODEL_KEYS}
    mesh = make_mesh(1, 8, 1)
    model = Molmo2(cfg, rngs=nnx.Rngs(0))  # weights replicated: any collective comes from the input layout
    graphdef, state = nnx.split(model)
    with jax.set_mesh(mesh):
        batch = {k: jax.device_put(v, field_sharding(mesh, k, v.ndim)) for k, v in host.items()}
        fwd = jax.jit(lambda st, b: nnx.merge(graphdef, st)(**train.model_inputs(b), return_hidden=True))
        hlo = fwd.lower(state, batch).compile().as_text()
        out = np.asarray(fwd(state, batch))
    ref = np.asarray(jax.jit(lambda st, b: nnx.merge(graphdef, st)(**train.model_inputs(b), return_hidden=True))(
        state, host))
    ops = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")
    print(json.dumps({"collectives": {op: hlo.count(op + "(") + hlo.count(op + "-start(") for op in ops},
                      "diff": float(np.max(np.abs(out - ref)))}))
""")


@pytest.mark.slow
def test_vision_path_is_local_to_each_devices_rows():
    """Batch over 8 fake devices, weights replicated: the packed forward (ViT, connector, features added at
    <im_patch>) compiles with no collective at all, i.e. no device gathers another's crops or pooled vectors."""
    run = subprocess.run([sys.executable, "-c", LOCAL_VISION_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert sum(out["collectives"].values()) == 0, out
    assert out["diff"] <= 1e-5  # the same hidden states as unsharded
