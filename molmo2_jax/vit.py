"""SigLIP2-style ViT encoder of image crops, returning the hidden states Molmo2's connector reads."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from molmo2_jax.attention import attend
from molmo2_jax.layers import dense, layer_norm
from molmo2_jax.model_config import VitConfig


class VitAttention(nnx.Module):
    """Full (bidirectional) multi-head self-attention over the patches of one crop."""

    def __init__(self, cfg: VitConfig, dtype, rngs: nnx.Rngs):
        d, inner = cfg.hidden_size, cfg.num_heads * cfg.head_dim
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.q_proj = dense(d, inner, ("vit_embed", "vit_heads"), use_bias=cfg.attention_bias, dtype=dtype, rngs=rngs)
        self.k_proj = dense(d, inner, ("vit_embed", "vit_heads"), use_bias=cfg.attention_bias, dtype=dtype, rngs=rngs)
        self.v_proj = dense(d, inner, ("vit_embed", "vit_heads"), use_bias=cfg.attention_bias, dtype=dtype, rngs=rngs)
        self.o_proj = dense(inner, d, ("vit_heads", "vit_embed"), use_bias=cfg.attention_bias, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, impl: str) -> jax.Array:
        shape = (*x.shape[:-1], self.num_heads, self.head_dim)  # [crops, patches, heads, head_dim]
        q, k, v = (p(x).reshape(shape) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = attend(q, k, v, None, impl)
        return self.o_proj(out.reshape(*x.shape[:-1], -1))


class VitMlp(nnx.Module):
    """Two-layer GELU(tanh) MLP with biases."""

    def __init__(self, cfg: VitConfig, dtype, rngs: nnx.Rngs):
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.fc1 = dense(d, f, ("vit_embed", "vit_mlp"), use_bias=True, dtype=dtype, rngs=rngs)
        self.fc2 = dense(f, d, ("vit_mlp", "vit_embed"), use_bias=True, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=True))


class VitBlock(nnx.Module):
    """Pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, cfg: VitConfig, dtype, rngs: nnx.Rngs):
        self.layer_norm1 = layer_norm(cfg.hidden_size, cfg.layer_norm_eps, dtype, rngs)
        self.self_attn = VitAttention(cfg, dtype, rngs)
        self.layer_norm2 = layer_norm(cfg.hidden_size, cfg.layer_norm_eps, dtype, rngs)
        self.mlp = VitMlp(cfg, dtype, rngs)

    def __call__(self, x: jax.Array, impl: str) -> jax.Array:
        x = x + self.self_attn(self.layer_norm1(x), impl)
        return x + self.mlp(self.layer_norm2(x))


def sincos_2d(rows: int, cols: int, width: int, temperature: float = 10_000.0) -> jax.Array:
    """2-D sin-cos position table [rows * cols, width] (row-major patches): the learned positions' initial value.

    A ViT trained from scratch then sees each patch's (row, col) at unit scale from step 0, instead of 0.02-scale
    noise it must first learn to decode (big_vision's from-scratch ViTs use the same table); converted SigLIP2
    weights replace it. Quarters of `width`: sin(col), cos(col), sin(row), cos(row) over geometric frequencies.
    """
    quarter = width // 4
    freqs = 1.0 / temperature ** (jnp.arange(quarter, dtype=jnp.float32) / max(quarter - 1, 1))  # [width/4]
    r, c = jnp.meshgrid(jnp.arange(rows, dtype=jnp.float32), jnp.arange(cols, dtype=jnp.float32), indexing="ij")
    c, r = c.reshape(-1, 1) * freqs, r.reshape(-1, 1) * freqs  # [rows * cols, width/4]
    table = jnp.concatenate([jnp.sin(c), jnp.cos(c), jnp.sin(r), jnp.cos(r)], axis=1)
    return jnp.pad(table, ((0, 0), (0, width - 4 * quarter)))


class VisionTransformer(nnx.Module):
    """Patch embedding (Linear over flattened patches) + learned positions + the blocks Molmo2 needs."""

    def __init__(self, cfg: VitConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        self.patch_embedding = dense(cfg.patch_dim, cfg.hidden_size, ("vit_patch", "vit_embed"), use_bias=True,
                                     dtype=dtype, rngs=rngs)
        self.positional_embedding = nnx.Param(sincos_2d(*cfg.patch_grid, cfg.hidden_size),
                                              logical_axes=("vit_pos", "vit_embed"))
        self.layers = nnx.List([VitBlock(cfg, dtype, rngs) for _ in range(cfg.num_layers)])
        self.dtype = dtype

    def __call__(self, pixels: jax.Array, feature_layers: Sequence[int], impl: str = "xla") -> list[jax.Array]:
        """pixels [crops, patches, patch_dim] in [-1, 1] -> hidden states after each block in `feature_layers`."""
        if pixels.shape[-2] != self.cfg.num_patches:
            raise ValueError(f"ViT expects {self.cfg.num_patches} patches per crop, got {pixels.shape[-2]}")
        x = self.patch_embedding(pixels.astype(self.dtype))
        x = x + self.positional_embedding[...].astype(x.dtype)
        wanted = {layer: None for layer in feature_layers}
        for i, block in enumerate(self.layers[: max(feature_layers) + 1]):
            x = block(x, impl)
            if i in wanted:
                wanted[i] = x
        return [wanted[layer] for layer in feature_layers]
