"""Scanned decoder layers: the same train step as the unrolled loop, and a program that does not grow with depth."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from molmo2_jax import model_config as mc
from molmo2_jax import train
from molmo2_jax.model import Molmo2
from test_train import make_batch


def _step(cfg, batch, scan: bool, remat: str):
    model = Molmo2(cfg, rngs=nnx.Rngs(0), remat=remat)
    model.language_model.scan_layers = scan
    sched = train.learning_rate_schedules({"vit": 1e-3, "connector": 1e-3, "llm": 1e-3}, 1, 10)
    opt = nnx.Optimizer(model, train.make_optimizer(sched, weight_decay=0.01, clip=1.0), wrt=nnx.Param)
    step = train.make_train_step()
    step(model, opt, batch)  # the first step's learning rate is 0 (warmup from 0)
    out = step(model, opt, batch)
    return float(out["loss"]), float(out["grad_norm"]), nnx.to_pure_dict(nnx.state(model, nnx.Param))


@pytest.mark.parametrize("remat", ["block", pytest.param("dots", marks=pytest.mark.slow)])
def test_scanned_and_unrolled_layers_give_the_same_step(remat):
    cfg = mc.tiny()
    # per-layer RoPE scaling is a scanned input: layer 1 differs from the others
    text = dataclasses.replace(cfg.text, rope_scaling=(("rope_type", "linear"), ("factor", 4.0)),
                               rope_scaling_layers=(1,))
    cfg = cfg.replace(text=text)
    batch = jax.tree.map(jnp.asarray, make_batch(cfg, np.random.default_rng(0)))
    init = nnx.to_pure_dict(nnx.state(Molmo2(cfg, rngs=nnx.Rngs(0)), nnx.Param))
    loss_s, norm_s, p_s = _step(cfg, batch, True, remat)
    loss_u, norm_u, p_u = _step(cfg, batch, False, "none")
    assert abs(loss_s - loss_u) <= 1e-5 and abs(norm_s - norm_u) <= 1e-5 * max(norm_u, 1)
    moved = [float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(p_s), jax.tree.leaves(init))]
    assert min(moved) > 0  # every parameter was updated (each layer got its own gradient)
    for a, b in zip(jax.tree.leaves(p_s), jax.tree.leaves(p_u)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_scanned_program_does_not_grow_with_depth():
    def hlo_size(layers: int, scan: bool) -> int:
        cfg = mc.tiny()
        cfg = cfg.replace(text=dataclasses.replace(cfg.text, num_layers=layers))
        model = Molmo2(cfg, rngs=nnx.Rngs(0), remat="block")
        model.language_model.scan_layers = scan
        batch = jax.tree.map(jnp.asarray, make_batch(cfg, np.random.default_rng(0), b=1, t=8))

        @nnx.jit
        def grads(model, batch):
            return nnx.grad(lambda m: train.loss_fn(m, batch)[0])(model)

        return len(grads.lower(model, batch).as_text())

    scanned = hlo_size(8, True) / hlo_size(2, True)
    unrolled = hlo_size(8, False) / hlo_size(2, False)
    # 4x the layers: the unrolled program more than doubles; the scanned one only lists more stacked params
    assert unrolled > 2 and scanned - 1 < (unrolled - 1) / 4, (scanned, unrolled)


def test_unknown_remat_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="remat policy"):
        Molmo2(mc.tiny(), rngs=nnx.Rngs(0), remat="everything")


def test_scanned_blockwise_layers_keep_blockwise_memory():
    # closed-over mask metadata is loop-invariant: JAX's scan autodiff hoisted the kernel's per-block masks out
    # of the layer loop, stacked over all query x key blocks (12x the temporaries at 2,048 tokens)
    from molmo2_jax.attention import MaskInfo
    from molmo2_jax.qwen3 import Qwen3

    cfg = mc.tiny().text
    b, t = 1, 2048
    info = MaskInfo(jnp.ones((b, t), jnp.int32), jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t)),
                    jnp.zeros((b, t), bool))

    def temp_mib(scan: bool) -> float:
        model = Qwen3(cfg, rngs=nnx.Rngs(0), remat="block", attention_block_size=256)
        model.scan_layers = scan

        @jax.jit
        def grad(x):
            return jax.grad(lambda x: model(x, info, "blockwise")[0].astype(jnp.float32).sum())(x)

        x = jax.ShapeDtypeStruct((b, t, cfg.hidden_size), jnp.float32)
        return grad.lower(x).compile().memory_analysis().temp_size_in_bytes / 2 ** 20

    scanned, unrolled = temp_mib(True), temp_mib(False)
    assert scanned < 2 * unrolled, (scanned, unrolled)
