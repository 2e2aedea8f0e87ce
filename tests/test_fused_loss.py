"""The chunked LM head + cross-entropy equals the plain one (loss, metrics and gradients)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from molmo2_jax import train


def _case(rng, b=2, t=37, d=16, v=301):
    hidden = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
    head = jnp.asarray(rng.normal(size=(d, v)) * 0.3, jnp.float32)
    targets = rng.integers(0, v + 5, (b, t))  # some extra-vocab ids: never targets
    targets[:, :9] = -1  # a prompt without targets (whole chunks carry no weight)
    weights = rng.uniform(0.2, 2.0, (b, t)).astype(np.float32)
    batch = {"target_ids": jnp.asarray(targets, jnp.int32), "loss_weights": jnp.asarray(weights),
             "source_ids": jnp.asarray(rng.integers(-1, 3, (b, t)), jnp.int32)}
    return hidden, head, batch


@pytest.mark.parametrize("z_loss,chunk", [(0.0, 8), (1e-3, 5), (1e-2, 512)])
def test_chunked_loss_metrics_and_grads_equal_the_plain_cross_entropy(z_loss, chunk):
    hidden, head, batch = _case(np.random.default_rng(0))

    def plain(h, w):
        return train.weighted_cross_entropy(jnp.einsum("btd,dv->btv", h, w), batch, z_loss, num_sources=3)

    def chunked(h, w):
        return train.head_cross_entropy(h, w, batch, z_loss, num_sources=3, chunk=chunk)

    (l0, a0), g0 = jax.value_and_grad(plain, argnums=(0, 1), has_aux=True)(hidden, head)
    (l1, a1), g1 = jax.jit(jax.value_and_grad(chunked, argnums=(0, 1), has_aux=True))(hidden, head)
    np.testing.assert_allclose(float(l1), float(l0), atol=1e-5, rtol=1e-6)
    for k in ("ce", "accuracy", "loss_tokens", "source_ce_sum", "source_weight"):
        np.testing.assert_allclose(np.asarray(a1[k]), np.asarray(a0[k]), atol=1e-5, rtol=1e-6, err_msg=k)
    for x, y in zip(g1, g0):
        assert float(jnp.max(jnp.abs(y))) > 1e-3  # gradients really flow
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5, rtol=1e-5)
    # without differentiation the same value comes from the gradient-free scan
    np.testing.assert_allclose(float(jax.jit(chunked)(hidden, head)[0]), float(l0), atol=1e-5, rtol=1e-6)


def test_chunked_loss_never_materialises_the_logits():
    hidden, head, batch = _case(np.random.default_rng(1), b=2, t=64, d=8, v=20_000)
    grad = jax.jit(jax.grad(lambda h, w: train.head_cross_entropy(h, w, batch, chunk=16)[0], argnums=(0, 1)))
    temp = grad.lower(hidden, head).compile().memory_analysis().temp_size_in_bytes
    full_logits = 2 * 64 * 20_000 * 4
    assert temp < full_logits / 2, temp  # chunks of 16 rows (plus dW), never [128, V]
