"""Training step: weighted loss, per-component optimizer, frozen ViT, non-finite skipping, accumulation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from molmo2_jax import model_config as mc
from molmo2_jax import train
from molmo2_jax.model import Molmo2


def make_batch(cfg, rng, b=4, t=16):
    ids = rng.integers(3, 500, (b, t)).astype(np.int32)
    ids[:, 3] = cfg.token_ids.image_patch
    ids[:, 2] = cfg.token_ids.low_res_image_start
    target = np.concatenate([ids[:, 1:], np.full((b, 1), -1)], 1).astype(np.int32)
    weights = np.zeros((b, t), np.float32)
    weights[:, 6:] = rng.uniform(0.5, 2.0, (b, t - 6))
    return {
        "input_ids": ids, "target_ids": target, "loss_weights": weights,
        "mm_token_type_ids": np.isin(ids, cfg.token_ids.vision_ids).astype(np.int32),
        "segment_ids": np.ones((b, t), np.int32), "positions": np.tile(np.arange(t, dtype=np.int32), (b, 1)),
        "crops": rng.uniform(-1, 1, (b, 1, cfg.vit.num_patches, cfg.vit.patch_dim)).astype(np.float32),
        "crop_pooling": np.tile(np.asarray([[[0, 1, 2, 3], [-1, -1, -1, -1]]], np.int32), (b, 1, 1)),
    }


def build(freeze_vit=False, lr=1e-3):
    cfg = mc.tiny()
    model = Molmo2(cfg, rngs=nnx.Rngs(0))
    sched = train.learning_rate_schedules({"vit": lr, "connector": lr, "llm": lr}, 1, 100)
    opt = nnx.Optimizer(model, train.make_optimizer(sched, weight_decay=0.01, clip=1.0),
                        wrt=train.trainable_filter(freeze_vit))
    return cfg, model, opt


def test_loss_is_normalised_by_the_weight_sum():
    logits = jnp.log(jnp.asarray([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]]))
    batch = {"target_ids": jnp.asarray([[0, 0, -1]]), "loss_weights": jnp.asarray([[1.0, 3.0, 5.0]])}
    loss, aux = train.weighted_cross_entropy(logits, batch)
    expected = (1 * -np.log(0.5) + 3 * -np.log(0.9)) / 4
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    assert int(aux["loss_tokens"]) == 2


def test_a_batch_without_target_ids_is_an_error_naming_the_encoder():
    logits = jnp.zeros((1, 3, 5), jnp.float32)
    with pytest.raises(KeyError, match="training_example"):
        train.weighted_cross_entropy(logits, {"input_ids": jnp.zeros((1, 3), jnp.int32),
                                              "loss_weights": jnp.ones((1, 3))})


def test_loss_falls_and_frozen_vit_gets_no_state_or_update():
    cfg, model, opt = build(freeze_vit=True)
    vit_before = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model.vision_tower, nnx.Param)))
    opt_paths = [".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(opt, nnx.OptState))]
    assert opt_paths and not any("vision_tower" in p for p in opt_paths)
    step = train.make_train_step()
    batch = jax.tree.map(jnp.asarray, make_batch(cfg, np.random.default_rng(1)))
    losses = [float(step(model, opt, batch)["loss"]) for _ in range(8)]
    assert losses[-1] < losses[0] - 0.1
    vit_after = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model.vision_tower, nnx.Param)))
    jax.tree.map(np.testing.assert_array_equal, vit_before, vit_after)


def test_non_finite_step_is_skipped_and_counted():
    cfg, model, opt = build()
    batch = make_batch(cfg, np.random.default_rng(2))
    batch["crops"][0, 0, 0, 0] = np.nan
    before = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    out = train.make_train_step()(model, opt, jax.tree.map(jnp.asarray, batch))
    assert not bool(out["finite"])
    after = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    jax.tree.map(np.testing.assert_array_equal, before, after)
    assert train.nonfinite_count(opt) == 1


def test_gradient_accumulation_matches_one_big_batch():
    # uneven loss weights per row: each micro-batch must be divided by the whole batch's weight, not its own
    cfg = mc.tiny()
    batch = make_batch(cfg, np.random.default_rng(3), b=8)
    batch["loss_weights"][1, :] = 0.0
    batch["loss_weights"][4, 6:12] = 0.0
    batch = jax.tree.map(jnp.asarray, batch)
    outs, params = [], []
    for accum in (1, 4):
        _, model, opt = build()
        out = train.make_train_step(z_loss=1e-2, accum_steps=accum)(model, opt, batch)
        outs.append({k: float(out[k]) for k in ("loss", "ce", "accuracy", "loss_tokens", "grad_norm")})
        params.append(jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param))))
    for other, p in zip(outs[1:], params[1:]):
        for k, v in outs[0].items():
            np.testing.assert_allclose(other[k], v, rtol=1e-5, err_msg=k)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), params[0], p)


def test_micro_batches_split_each_devices_rows_locally():
    x = jnp.arange(8)
    micro = train.micro_batches({"input_ids": x[:, None]}, 4)["input_ids"][..., 0]
    np.testing.assert_array_equal(micro, [[0, 4], [1, 5], [2, 6], [3, 7]])
    with pytest.raises(ValueError, match="not divisible by grad_accum_steps"):
        train.micro_batches({"input_ids": x[:, None]}, 3)


def test_accumulation_compiles_one_micro_step_however_many():
    cfg = mc.tiny()
    batch = jax.tree.map(jnp.asarray, make_batch(cfg, np.random.default_rng(6), b=8))
    sizes = {}
    for accum in (2, 8):
        _, model, opt = build()
        sizes[accum] = len(train.make_train_step(accum_steps=accum).lower(model, opt, batch).as_text())
    assert sizes[8] < 1.05 * sizes[2], sizes  # a Python loop would be ~4x


@pytest.mark.parametrize("path, leaf_ndim, expected", [
    (("language_model", "layers", 0, "mlp", "up_proj", "kernel"), 2, True),
    (("language_model", "layers", 0, "input_layernorm", "scale"), 1, False),
    (("language_model", "embed_tokens", "embedding"), 2, False),
    (("vision_tower", "layers", 0, "mlp", "fc1", "bias"), 1, False),
])
def test_weight_decay_skips_norms_biases_and_embeddings(path, leaf_ndim, expected):
    assert train.decays(path, np.zeros((2,) * leaf_ndim)) is expected


def test_block_remat_gives_the_same_step():
    cfg = mc.tiny()
    batch = jax.tree.map(jnp.asarray, make_batch(cfg, np.random.default_rng(4)))
    outs = []
    for remat in (False, True):
        model = Molmo2(cfg, rngs=nnx.Rngs(0), remat=remat)
        sched = train.learning_rate_schedules({"vit": 1e-3, "connector": 1e-3, "llm": 1e-3}, 1, 100)
        opt = nnx.Optimizer(model, train.make_optimizer(sched, weight_decay=0.0, clip=1.0), wrt=nnx.Param)
        out = train.make_train_step()(model, opt, batch)
        outs.append((float(out["loss"]), float(out["grad_norm"])))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5)


def test_per_dataset_loss_sums_split_the_batch_loss():
    rng = np.random.default_rng(5)
    logits = jnp.asarray(rng.normal(size=(2, 6, 9)), jnp.float32)
    batch = {"target_ids": jnp.asarray(rng.integers(0, 9, (2, 6))), "loss_weights": jnp.ones((2, 6)),
             "source_ids": jnp.asarray([[0, 0, 0, 1, 1, -1], [1, 1, 1, 1, 0, 0]])}
    loss, aux = train.weighted_cross_entropy(logits, batch, num_sources=2)
    sums, weights = np.asarray(aux["source_ce_sum"]), np.asarray(aux["source_weight"])
    np.testing.assert_array_equal(weights, [5, 6])  # the padded token (-1) belongs to no dataset
    one = {k: v for k, v in batch.items() if k != "source_ids"}
    one["loss_weights"] = (batch["source_ids"] == 0).astype(jnp.float32)
    np.testing.assert_allclose(sums[0] / weights[0], float(train.weighted_cross_entropy(logits, one)[0]), rtol=1e-6)


@pytest.mark.parametrize("rows", [1, 2])
def test_packed_rows_mixing_image_and_video_examples_match_separate_forwards(our_molmo2, rows):
    """Rows packed by the packer (image then video, and video then image) give each example its own logits:
    the packer's one crop stack and table per row (rows=1) or per crop group of two rows (rows=2) is the
    model's input as it is."""
    from data_pipelines.packing import MediaField, PackSpec, assemble, default_token_fields
    from hf_reference import image_inputs, jax_logits, video_inputs

    rng = np.random.default_rng(8)
    img, vid = image_inputs(rng, hi_grid=(1, 2)), video_inputs(rng, n_frames=3)
    want = {"img": jax_logits(our_molmo2, img), "vid": jax_logits(our_molmo2, vid)}

    def example(inputs):  # the processor's per-example layout (token fields 1-D)
        a = {k: np.asarray(v) for k, v in inputs.arrays.items()}
        ids = a.pop("input_ids")[0].astype(np.int32)
        n = len(ids)
        ex = dict(input_ids=ids, target_ids=ids, loss_weights=np.ones(n, np.float32),
                  branch_ids=np.full(n, -1, np.int32), mm_token_type_ids=a.pop("mm_token_type_ids")[0].astype(np.int32))
        ex.update({k: v.astype(np.int32) if v.dtype == np.int64 else v for k, v in a.items()})
        if "image_grids" in ex:
            ex["image_num_crops"] = np.asarray([len(ex["pixel_values"])], np.int32)
        return ex

    crop = (our_molmo2.cfg.vit.num_patches, our_molmo2.cfg.vit.patch_dim)
    lengths = {"img": img.arrays["input_ids"].shape[1], "vid": vid.arrays["input_ids"].shape[1]}
    spec = PackSpec(sum(lengths.values()) + 3, (MediaField.image(4, crop), MediaField.video(4, crop)),
                    default_token_fields(pad_id=0))  # a pad id inside the tiny vocabulary
    orders = [("img", "vid"), ("vid", "img")]
    exs = {"img": example(img), "vid": example(vid)}
    if rows == 1:
        packs = [assemble([exs[n] for n in order], spec) for order in orders]
        batch = {k: jnp.asarray(np.stack([p[k] for p in packs])) for k in packs[0]}
    else:  # one group: both rows share one crop stack of 2 x 4 + 2 x 4 slots
        spec = dataclasses.replace(spec, rows=2, media=(MediaField.image(8, crop), MediaField.video(8, crop)))
        group = assemble([], spec, rows=[[exs[n] for n in order] for order in orders])
        batch = {k: jnp.asarray(v[None] if k.startswith("crop") else v) for k, v in group.items()}  # G = 1
        assert batch["crops"].shape[0] == 1 and batch["input_ids"].shape[0] == 2
    out = np.asarray(our_molmo2(**train.model_inputs(batch)))
    for row, order in enumerate(orders):
        start = 0
        for name in order:
            np.testing.assert_allclose(out[row, start:start + lengths[name]], want[name][0], atol=1e-5)
            start += lengths[name]


def test_frozen_vit_is_not_differentiated():
    # freeze_vit: the ViT's ops run forward only; the lowered step has exactly the matmuls it has when the
    # ViT's outputs are wrapped in stop_gradient, and fewer than when the ViT trains.
    from molmo2_jax.vit import VisionTransformer

    cfg = mc.tiny()
    batch = jax.tree.map(jnp.asarray, make_batch(cfg, np.random.default_rng(7)))

    def matmuls(freeze_vit):
        _, model, opt = build(freeze_vit=freeze_vit)
        return train.make_train_step().lower(model, opt, batch).as_text().count("dot_general")

    frozen, trained = matmuls(True), matmuls(False)
    call = VisionTransformer.__call__
    try:
        VisionTransformer.__call__ = lambda self, *a, **k: [jax.lax.stop_gradient(x) for x in call(self, *a, **k)]
        stopped = matmuls(True)
    finally:
        VisionTransformer.__call__ = call
    assert frozen == stopped < trained, (frozen, stopped, trained)


@pytest.mark.parametrize("kind, peak", [("NVIDIA A100-SXM4-40GB", 312e12), ("NVIDIA H100 PCIe", 756e12),
                                        ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H200", 989e12),
                                        ("NVIDIA L40S", 362e12), ("NVIDIA L4", 121e12), ("cpu", 0.0)])
def test_peak_flops_follow_the_device_kind_unless_the_environment_says(kind, peak, monkeypatch):
    device = type("Device", (), {"device_kind": kind})()
    monkeypatch.delenv("MOLMO2_PEAK_FLOPS", raising=False)
    assert train.peak_flops_per_device(device) == peak
    monkeypatch.setenv("MOLMO2_PEAK_FLOPS", "2.5e14")
    assert train.peak_flops_per_device(device) == 2.5e14
