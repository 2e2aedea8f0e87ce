"""Small building blocks shared by the ViT, connector and decoder, each parameter tagged with logical axes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

Dtype = jnp.dtype | type


def dense(in_features: int, out_features: int, axes: tuple[str, str], *, use_bias: bool, dtype: Dtype,
          rngs: nnx.Rngs) -> nnx.Linear:
    """A Linear layer (kernel [in, out]) whose kernel/bias carry logical axis names for sharding.

    Kernels start fan-in scaled (LeCun normal) so activations keep their scale through the connector's
    SwiGLU: a fixed small std there multiplies two tiny factors and a fresh connector passes no signal.
    """
    return nnx.Linear(
        in_features, out_features, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
        kernel_init=nnx.initializers.lecun_normal(), rngs=rngs,
        kernel_metadata={"logical_axes": axes}, bias_metadata={"logical_axes": (axes[1],)},
    )


def layer_norm(features: int, eps: float, dtype: Dtype, rngs: nnx.Rngs, axis: str = "norm") -> nnx.LayerNorm:
    """LayerNorm with bias (ViT), parameters tagged with a replicated logical axis."""
    return nnx.LayerNorm(
        features, epsilon=eps, dtype=dtype, param_dtype=jnp.float32, rngs=rngs,
        use_fast_variance=False,
        scale_metadata={"logical_axes": (axis,)}, bias_metadata={"logical_axes": (axis,)},
    )


class RMSNorm(nnx.Module):
    """RMSNorm as Qwen3 computes it: normalise in fp32, cast back, then scale."""

    def __init__(self, features: int, eps: float = 1e-6):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((features,), jnp.float32), logical_axes=("norm",))

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = x.dtype
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return self.scale[...].astype(dtype) * x32.astype(dtype)


class SwiGLU(nnx.Module):
    """SwiGLU MLP without bias: down(silu(gate(x)) * up(x)) (Qwen3's MLP and Molmo2's image projector)."""

    def __init__(self, in_features: int, hidden: int, out_features: int, in_axis: str, out_axis: str, dtype,
                 rngs: nnx.Rngs):
        self.gate_proj = dense(in_features, hidden, (in_axis, "mlp"), use_bias=False, dtype=dtype, rngs=rngs)
        self.up_proj = dense(in_features, hidden, (in_axis, "mlp"), use_bias=False, dtype=dtype, rngs=rngs)
        self.down_proj = dense(hidden, out_features, ("mlp", out_axis), use_bias=False, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))
