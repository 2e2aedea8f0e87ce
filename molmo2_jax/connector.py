"""Molmo2 connector: pool ViT patches per window with attention, then project into the LLM's space."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from molmo2_jax.layers import SwiGLU, dense
from molmo2_jax.model_config import ConnectorConfig
from molmo2_jax.sharding import constrain


def gather_windows(features: jax.Array, pooling: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Group patches into pooling windows: features [..., crops, patches, C], pooling [..., tokens, W] (-1 = pad).

    Leading dims (crop groups) are batch dims: a window only reads its own group's crops.
    """
    lead, (t, w), c = features.shape[:-3], pooling.shape[-2:], features.shape[-1]
    flat = features.reshape(*lead, -1, c)  # [..., crops * patches, C]
    valid = pooling >= 0  # [..., tokens, W]
    idx = jnp.maximum(pooling, 0).reshape(*lead, t * w, 1)
    windows = jnp.take_along_axis(flat, idx, axis=-2).reshape(*lead, t, w, c)  # [..., tokens, W, C]
    return windows * valid[..., None].astype(windows.dtype), valid


def masked_mean_query(windows: jax.Array, valid: jax.Array) -> jax.Array:
    """The pooling query of each window: the mean of its valid patches -> [..., tokens, 1, C]."""
    count = jnp.maximum(valid.sum(-1), 1).astype(windows.dtype)
    return windows.sum(-2, keepdims=True) / count[..., None, None]


class AttentionPooling(nnx.Module):
    """Multi-head attention of the window query over the window's patches (biased q/k/v/o)."""

    def __init__(self, cfg: ConnectorConfig, in_features: int, dtype, rngs: nnx.Rngs):
        inner = cfg.num_heads * cfg.head_dim
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        b = cfg.attention_bias
        self.q_proj = dense(in_features, inner, ("vit_feat", "pool_heads"), use_bias=b, dtype=dtype, rngs=rngs)
        self.k_proj = dense(in_features, inner, ("vit_feat", "pool_heads"), use_bias=b, dtype=dtype, rngs=rngs)
        self.v_proj = dense(in_features, inner, ("vit_feat", "pool_heads"), use_bias=b, dtype=dtype, rngs=rngs)
        self.o_proj = dense(inner, cfg.hidden_size, ("pool_heads", "vit_embed"), use_bias=b, dtype=dtype, rngs=rngs)

    def __call__(self, query: jax.Array, windows: jax.Array, valid: jax.Array) -> jax.Array:
        *lead, w, _ = windows.shape  # lead = [..., tokens]
        q = self.q_proj(query).reshape(*lead, self.num_heads, self.head_dim)  # [..., tokens, heads, hd]
        k = self.k_proj(windows).reshape(*lead, w, self.num_heads, self.head_dim)  # [..., tokens, W, heads, hd]
        v = self.v_proj(windows).reshape(*lead, w, self.num_heads, self.head_dim)
        logits = jnp.einsum("...hd,...whd->...hw", q, k, preferred_element_type=jnp.float32) * self.head_dim ** -0.5
        logits = jnp.where(valid[..., None, :], logits, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        out = jnp.einsum("...hw,...whd->...hd", probs, v).reshape(*lead, -1)
        return self.o_proj(out)  # [..., tokens, hidden]


class Connector(nnx.Module):
    """ViT features of the selected layers -> one LLM-space vector per pooled image token."""

    def __init__(self, cfg: ConnectorConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.image_pooling_2d = AttentionPooling(cfg, cfg.hidden_size * len(cfg.feature_layers), dtype, rngs)
        # SwiGLU projector: connector width -> LLM intermediate -> LLM hidden
        self.image_projector = SwiGLU(cfg.hidden_size, cfg.intermediate_size, cfg.text_hidden_size, "vit_embed",
                                      "embed", dtype, rngs)

    def __call__(self, features: jax.Array, pooling: jax.Array) -> tuple[jax.Array, jax.Array]:
        """features [..., crops, patches, C], pooling [..., tokens, W] -> (vectors [..., tokens, D], valid).

        Leading dims are crop groups (each pools only its own crops); valid [..., tokens]: the token has patches.
        """
        windows, valid = gather_windows(features, pooling)
        windows = constrain(windows, ("batch", None, None))  # [tokens, W, C]: rows split like the batch they pool for
        query = masked_mean_query(windows, valid)
        pooled = self.image_pooling_2d(query, windows, valid)
        return self.image_projector(pooled), valid.any(-1)
