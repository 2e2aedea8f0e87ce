"""Molmo2's schedule and regularisation: per-component warmup, z-loss over the loss mask, residual dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_train import make_batch

from configs import stage1, stage2, stage3
from molmo2_jax import model_config as mc
from molmo2_jax import train
from molmo2_jax.model import Molmo2
from molmo2_jax.qwen3 import ResidualDropout, residual_dropout


def test_stage1_warms_up_connector_200_vit_and_llm_2000_steps():
    c = stage1.get_config()
    lrs = {k: c.learning_rate[k] for k in train.COMPONENTS}
    sched = train.learning_rate_schedules(lrs, dict(c.component_warmup_steps), c.total_steps)
    assert float(sched["connector"](200)) == pytest.approx(2e-4)
    assert float(sched["vit"](200)) == pytest.approx(6e-6 * 200 / 2000)
    assert float(sched["llm"](1000)) == pytest.approx(2e-5 / 2)
    assert float(sched["llm"](2000)) == pytest.approx(2e-5)
    assert float(sched["llm"](c.total_steps)) == pytest.approx(2e-6)


def test_every_stage_has_z_loss_and_its_dropout():
    for mod, rates in ((stage1, (0.0, 0.1)), (stage2, (0.1, 0.0)), (stage3, (0.1, 0.0))):
        c = mod.get_config()
        assert c.z_loss == 1e-4 and (c.residual_dropout, c.response_residual_dropout) == rates
    c = stage3.get_config()
    assert (c.batch_size, c.warmup_steps, c.total_steps) == (128, 200, 2000)


def test_z_loss_counts_only_loss_mask_tokens():
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(1, 4, 7)) * 3, jnp.float32)
    batch = {"target_ids": jnp.asarray([[1, 2, -1, 3]]), "loss_weights": jnp.asarray([[1.0, 0.0, 1.0, 2.0]])}
    plain, _ = train.weighted_cross_entropy(logits, batch)
    with_z, _ = train.weighted_cross_entropy(logits, batch, z_loss=1e-4)
    log_z = jax.nn.logsumexp(logits, -1)[0]
    expected = 1e-4 * (log_z[0] ** 2 + 2 * log_z[3] ** 2) / 3
    np.testing.assert_allclose(float(with_z - plain), float(expected), rtol=1e-4)


def test_response_dropout_touches_only_response_tokens():
    x = jnp.ones((2, 50, 64))
    response = jnp.arange(50)[None, :].repeat(2, 0) >= 25
    out = residual_dropout(x, ResidualDropout(jax.random.key(0), 0.0, 0.5, response), 0, 0)
    assert np.all(np.asarray(out[:, :25]) == 1.0)
    dropped = np.asarray(out[:, 25:]) == 0
    assert 0.4 < dropped.mean() < 0.6 and np.allclose(np.asarray(out[:, 25:])[~dropped], 2.0)
    everywhere = residual_dropout(x, ResidualDropout(jax.random.key(0), 0.1, 0.0, None), 0, 0)
    assert 0.05 < float((everywhere == 0).mean()) < 0.15


def test_dropout_changes_training_step_only_and_eval_forward_is_deterministic():
    cfg = mc.tiny()
    batch = jax.tree.map(jnp.asarray, make_batch(cfg, np.random.default_rng(1)))
    model = Molmo2(cfg, rngs=nnx.Rngs(0))
    plain, _ = train.loss_fn(model, batch)
    again, _ = train.loss_fn(model, batch, dropout=(0.1, 0.0))  # no key: evaluation, dropout off
    assert float(plain) == float(again)
    dropped, _ = train.loss_fn(model, batch, dropout=(0.1, 0.0), key=jax.random.key(3))
    same_key, _ = train.loss_fn(model, batch, dropout=(0.1, 0.0), key=jax.random.key(3))
    assert float(dropped) != float(plain) and float(dropped) == float(same_key)
    step = train.make_train_step(dropout=(0.1, 0.0), seed=0)
    sched = train.learning_rate_schedules({"vit": 1e-3, "connector": 1e-3, "llm": 1e-3}, 1, 10)
    opt = nnx.Optimizer(model, train.make_optimizer(sched, weight_decay=0.0, clip=1.0), wrt=nnx.Param)
    assert np.isfinite(float(step(model, opt, batch)["loss"]))
