"""Molmo2: ViT -> connector -> features ADDED at <im_patch> embeddings -> Qwen3 -> logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from molmo2_jax.attention import DEFAULT_BLOCK, MaskInfo
from molmo2_jax.connector import Connector
from molmo2_jax.model_config import Molmo2Config
from molmo2_jax.qwen3 import KVCache, Qwen3, ResidualDropout
from molmo2_jax.ring_attention import context_parallel_layout
from molmo2_jax.sharding import constrain
from molmo2_jax.vit import VisionTransformer


def merge_visual_inputs(pixel_values=None, image_token_pooling=None, pixel_values_videos=None,
                        video_token_pooling=None):
    """Images then videos as one crop stack and one pooling table (narrower windows padded with -1)."""
    parts = [(p, t) for p, t in ((pixel_values, image_token_pooling), (pixel_values_videos, video_token_pooling))
             if p is not None]
    if not parts:
        return None, None
    for p, t in parts:
        if t is None:
            raise ValueError("pixel values were given without their token pooling indices")
    pixels = [p.reshape(-1, p.shape[-2], p.shape[-1]) for p, _ in parts]
    width = max(t.shape[-1] for _, t in parts)
    tables, offset = [], 0
    for px, (_, t) in zip(pixels, parts):
        t = t.reshape(-1, t.shape[-1])
        shifted = jnp.where(t >= 0, t + offset, -1)
        tables.append(jnp.pad(shifted, ((0, 0), (0, width - t.shape[-1])), constant_values=-1))
        offset += px.shape[0] * px.shape[1]
    return jnp.concatenate(pixels, 0), jnp.concatenate(tables, 0)


def add_image_features(embeds: jax.Array, is_patch: jax.Array, vecs: jax.Array, valid: jax.Array) -> jax.Array:
    """Add the k-th valid pooled vector to the k-th <im_patch> embedding (batch-major order)."""
    b, t, d = embeds.shape
    order = jnp.argsort(~valid, stable=True)  # valid tokens first, in their original order
    vecs = vecs[order]
    flat = is_patch.reshape(-1)
    ordinal = jnp.clip(jnp.cumsum(flat) - 1, 0, vecs.shape[0] - 1)
    added = jnp.where(flat[:, None], vecs[ordinal].astype(embeds.dtype), 0)
    return embeds + added.reshape(b, t, d)


class Molmo2(nnx.Module):
    """The Molmo2 vision-language model; `__call__` takes transformers' Molmo2 input names."""

    def __init__(self, cfg: Molmo2Config, *, dtype=jnp.float32, rngs: nnx.Rngs, attention_impl: str = "xla",
                 remat: bool | str = False, attention_block_size: int = DEFAULT_BLOCK):
        self.cfg = cfg
        self.dtype = dtype
        self.attention_impl = attention_impl
        self.vision_tower = VisionTransformer(cfg.vit, dtype=dtype, rngs=rngs)
        self.connector = Connector(cfg.connector, dtype=dtype, rngs=rngs)
        self.language_model = Qwen3(cfg.text, dtype=dtype, rngs=rngs, remat=remat,
                                    attention_block_size=attention_block_size)

    def image_features(self, pixels: jax.Array, pooling: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Crops [N, patches, patch_dim] + pooling [tokens, W] -> (LLM-space vectors, token-valid flags)."""
        layers = self.vision_tower(pixels, self.cfg.connector.feature_layers, self.attention_impl)
        return self.connector(jnp.concatenate(layers, axis=-1), pooling)

    def embed(self, input_ids: jax.Array, pixels: jax.Array | None = None,
              pooling: jax.Array | None = None) -> jax.Array:
        """Token embeddings with pooled image features added at the <im_patch> positions."""
        x = self.language_model.embed(input_ids)
        if pixels is not None:
            vecs, valid = self.image_features(pixels, pooling)
            x = add_image_features(x, input_ids == self.cfg.token_ids.image_patch, vecs, valid)
        return x

    def mask_info(self, input_ids, mm_token_type_ids=None, attention_mask=None, position_ids=None,
                  segment_ids=None, branch_ids=None) -> MaskInfo:
        """Segment ids (packing / padding), positions and vision flags, with transformers' defaults."""
        b, t = input_ids.shape
        if segment_ids is None:
            segment_ids = jnp.ones((b, t), jnp.int32) if attention_mask is None else attention_mask.astype(jnp.int32)
        if position_ids is None:
            position_ids = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        if mm_token_type_ids is None:
            vision = jnp.isin(input_ids, jnp.asarray(self.cfg.token_ids.vision_ids))
        else:
            vision = mm_token_type_ids == 1
        branch = None if branch_ids is None else branch_ids.astype(jnp.int32)
        return MaskInfo(segment_ids.astype(jnp.int32), position_ids.astype(jnp.int32), vision, branch)

    def __call__(self, input_ids: jax.Array, pixel_values=None, image_token_pooling=None,
                 pixel_values_videos=None, video_token_pooling=None, mm_token_type_ids=None,
                 attention_mask=None, position_ids=None, segment_ids=None, branch_ids=None,
                 cache: KVCache | None = None, return_hidden: bool = False,
                 dropout: ResidualDropout | None = None, *,
                 image_grids=None, image_num_crops=None, video_grids=None):
        """Logits [B, T, vocab] (and the updated cache when one is given).

        `image_grids`, `image_num_crops` and `video_grids` are accepted because the processor (like
        transformers') returns them; the layout they describe is already in the pooling tables. Any
        other keyword is a TypeError, so a misspelt input cannot be silently dropped. `dropout` is
        Molmo2's residual dropout during training (None at evaluation and generation).
        """
        pixels, pooling = merge_visual_inputs(pixel_values, image_token_pooling, pixel_values_videos,
                                              video_token_pooling)
        # FSDP: activations split by batch (and length), never along the hidden size the weights are split on
        x = constrain(self.embed(input_ids, pixels, pooling), ("batch", "length", None))
        info = self.mask_info(input_ids, mm_token_type_ids, attention_mask, position_ids, segment_ids, branch_ids)
        order = context_parallel_layout(self.attention_impl, input_ids.shape[1], cache is not None)
        if order is not None:  # ring's zig-zag token layout, undone below (ring_attention.py says why here)
            x, info = x[:, order], jax.tree.map(lambda a: a[:, order], info)
            x = constrain(x, ("batch", "length", None))
            if dropout is not None and dropout.response_mask is not None:
                dropout = dropout._replace(response_mask=dropout.response_mask[:, order])
        hidden, cache = self.language_model(x, info, self.attention_impl, cache, dropout)
        if order is not None:
            hidden = hidden[:, np.argsort(order)]
        hidden = constrain(hidden, ("batch", "length", None))
        out = hidden if return_hidden else self.language_model.logits(hidden)
        return out if cache is None else (out, cache)


def count_params(module: nnx.Module) -> int:
    """Number of parameters of a module (works on abstract modules too)."""
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(module, nnx.Param))))
