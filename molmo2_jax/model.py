"""Molmo2: ViT -> connector -> features ADDED at <im_patch> embeddings -> Qwen3 -> logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from molmo2_jax.attention import DEFAULT_BLOCK, MaskInfo
from molmo2_jax.connector import Connector
from molmo2_jax.model_config import Molmo2Config
from molmo2_jax.processing.images import stack_pooling
from molmo2_jax.qwen3 import KVCache, Qwen3, ResidualDropout
from molmo2_jax.ring_attention import context_parallel_layout
from molmo2_jax.sharding import constrain
from molmo2_jax.vit import VisionTransformer


def merge_visual_inputs(pixel_values=None, image_token_pooling=None, pixel_values_videos=None,
                        video_token_pooling=None):
    """transformers' inputs -> one crop group: crops [1, N, P, D], pooling [1, M, W] (images, then videos).

    The images-then-videos order is the token order of the processor's chat template (media prefix).
    """
    parts = [(p, t) for p, t in ((pixel_values, image_token_pooling), (pixel_values_videos, video_token_pooling))
             if p is not None]
    if not parts:
        return None, None
    for p, t in parts:
        if t is None:
            raise ValueError("pixel values were given without their token pooling indices")
    pixels = [p.reshape(-1, p.shape[-2], p.shape[-1]) for p, _ in parts]  # [crops, P, D]
    table = stack_pooling([t.reshape(-1, t.shape[-1]) for _, t in parts], [px.shape[0] * px.shape[1] for px in pixels],
                          xp=jnp)
    return jnp.concatenate(pixels, 0)[None], table[None]


def add_image_features(embeds: jax.Array, is_patch: jax.Array, vecs: jax.Array, valid: jax.Array) -> jax.Array:
    """Add the k-th valid pooled vector of a crop group to the k-th <im_patch> embedding of its rows.

    embeds [B, T, D], is_patch [B, T], vecs [G, N, D], valid [G, N]: group g owns rows g*B/G .. (g+1)*B/G - 1,
    filled row-major; nothing mixes groups (G sharded like B keeps this local to each device).
    """
    b, t, d = embeds.shape
    g = vecs.shape[0]
    if b % g:
        raise ValueError(f"{b} rows do not split into {g} crop groups")

    def one_group(e, p, v, ok):  # e [R*T, D], p [R*T], v [N, D], ok [N]
        v = v[jnp.argsort(~ok, stable=True)]  # valid vectors first, in their order
        ordinal = jnp.clip(jnp.cumsum(p) - 1, 0, v.shape[0] - 1)
        return e + jnp.where(p[:, None], v[ordinal].astype(e.dtype), 0)

    out = jax.vmap(one_group)(embeds.reshape(g, -1, d), is_patch.reshape(g, -1), vecs, valid)
    return out.reshape(b, t, d)


class Molmo2(nnx.Module):
    """The Molmo2 vision-language model; `__call__` takes transformers' Molmo2 input names."""

    def __init__(self, cfg: Molmo2Config, *, dtype=jnp.float32, rngs: nnx.Rngs, attention_impl: str = "xla",
                 remat: bool | str = False, attention_block_size: int = DEFAULT_BLOCK, scan_layers: bool = True):
        self.cfg = cfg
        self.dtype = dtype
        self.attention_impl = attention_impl
        self.vision_tower = VisionTransformer(cfg.vit, dtype=dtype, rngs=rngs)
        self.connector = Connector(cfg.connector, dtype=dtype, rngs=rngs)
        self.language_model = Qwen3(cfg.text, dtype=dtype, rngs=rngs, remat=remat,
                                    attention_block_size=attention_block_size, scan_layers=scan_layers)

    def image_features(self, crops: jax.Array, pooling: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Crop groups [G, C, patches, patch_dim] + pooling [G, N, W] -> (LLM-space vectors [G, N, D], valid [G, N]).

        Per group: the ViT runs crop by crop and the connector pools only that group's crops.
        """
        g, c = crops.shape[:2]
        crops = constrain(crops, ("batch", None, None, None))
        layers = self.vision_tower(crops.reshape(g * c, *crops.shape[2:]), self.cfg.connector.feature_layers,
                                   self.attention_impl)
        feats = jnp.concatenate(layers, axis=-1)
        feats = constrain(feats.reshape(g, c, *feats.shape[1:]), ("batch", None, None, None))  # [G, C, P, F]
        vecs, valid = self.connector(feats, constrain(pooling, ("batch", None, None)))
        return constrain(vecs, ("batch", None, None)), valid

    def embed(self, input_ids: jax.Array, crops: jax.Array | None = None,
              pooling: jax.Array | None = None) -> jax.Array:
        """Token embeddings with pooled image features added at the <im_patch> positions (crops [G, C, P, D])."""
        x = self.language_model.embed(input_ids)
        if crops is not None:
            vecs, valid = self.image_features(crops, pooling)
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
                 dropout: ResidualDropout | None = None, *, crops=None, crop_pooling=None,
                 image_grids=None, image_num_crops=None, video_grids=None):
        """Logits [B, T, vocab] (and the updated cache when one is given).

        Visual inputs come either as transformers' (`pixel_values` [N, P, D] + `image_token_pooling` [M, W],
        and/or the video pair: one crop group) or as the packer's crop groups: `crops` [G, C, P, D] and
        `crop_pooling` [G, N, W], group g's pooled vectors filling the `<im_patch>` tokens of rows
        g*B/G .. (g+1)*B/G - 1 in order (indices local to the group's crops).

        `image_grids`, `image_num_crops` and `video_grids` are accepted because the processor (like
        transformers') returns them; the layout they describe is already in the pooling tables. Any
        other keyword is a TypeError, so a misspelt input cannot be silently dropped. `dropout` is
        Molmo2's residual dropout during training (None at evaluation and generation).
        """
        if crops is None:
            crops, crop_pooling = merge_visual_inputs(pixel_values, image_token_pooling, pixel_values_videos,
                                                      video_token_pooling)
        elif pixel_values is not None or pixel_values_videos is not None:
            raise ValueError("pass either transformers' pixel_values / pixel_values_videos or the packer's crops, "
                             "not both")
        # FSDP: activations split by batch (and length), never along the hidden size the weights are split on
        x = constrain(self.embed(input_ids, crops, crop_pooling), ("batch", "length", None))
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
