"""Qwen3 decoder (RMSNorm, GQA, QK-norm before RoPE, SwiGLU) with a KV cache for generation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from molmo2_jax.attention import MaskInfo, attend, molmo2_mask
from molmo2_jax.layers import RMSNorm, SwiGLU, dense
from molmo2_jax.model_config import TextConfig


# ----------------------------------------------------------------------------------------------
# RoPE


def rope_inv_freq(cfg: TextConfig) -> jax.Array:
    """RoPE inverse frequencies (1-D, NeoX half-split layout) with optional linear scaling."""
    dim = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
    scaling = dict(cfg.rope_scaling)
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "linear":
        inv = inv / float(scaling["factor"])
    elif kind != "default":
        raise NotImplementedError(f"RoPE type {kind!r} is not supported (only default and linear)")
    return inv


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """Rotate x [B, T, heads, hd] by its positions [B, T] (cos/sin computed in fp32, applied in x's dtype)."""
    freqs = positions[..., None].astype(jnp.float32) * inv_freq  # [B, T, hd/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]
    cos, sin = jnp.cos(emb).astype(x.dtype), jnp.sin(emb).astype(x.dtype)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


# ----------------------------------------------------------------------------------------------
# KV cache


@dataclasses.dataclass
class KVCache:
    """Per-layer keys/values [B, S, kv_heads, hd] plus the mask info of every cached slot."""

    keys: list[jax.Array]
    values: list[jax.Array]
    info: MaskInfo  # segment_ids 0 for empty slots
    index: jax.Array  # scalar int32: next slot to write

    @classmethod
    def init(cls, cfg: TextConfig, batch: int, length: int, dtype=jnp.float32) -> "KVCache":
        shape = (batch, length, cfg.num_kv_heads, cfg.head_dim)
        zeros = lambda: jnp.zeros(shape, dtype)  # noqa: E731
        info = MaskInfo(jnp.zeros((batch, length), jnp.int32), jnp.zeros((batch, length), jnp.int32),
                        jnp.zeros((batch, length), bool))
        return cls([zeros() for _ in range(cfg.num_layers)], [zeros() for _ in range(cfg.num_layers)],
                   info, jnp.zeros((), jnp.int32))


jax.tree_util.register_dataclass(KVCache, data_fields=["keys", "values", "info", "index"], meta_fields=[])


def _write(buf: jax.Array, new: jax.Array, index: jax.Array) -> jax.Array:
    starts = (0, index) + (0,) * (buf.ndim - 2)
    return jax.lax.dynamic_update_slice(buf, new.astype(buf.dtype), starts)


# ----------------------------------------------------------------------------------------------
# Blocks


class Qwen3Attention(nnx.Module):
    """GQA self-attention with RMSNorm on q/k (per head for Qwen3, whole projection for OLMo)."""

    def __init__(self, cfg: TextConfig, dtype, rngs: nnx.Rngs):
        d, hd = cfg.hidden_size, cfg.head_dim
        self.cfg = cfg
        self.q_proj = dense(d, cfg.num_heads * hd, ("embed", "q_heads"), use_bias=cfg.attention_bias, dtype=dtype, rngs=rngs)
        self.k_proj = dense(d, cfg.num_kv_heads * hd, ("embed", "kv_heads"), use_bias=cfg.attention_bias, dtype=dtype, rngs=rngs)
        self.v_proj = dense(d, cfg.num_kv_heads * hd, ("embed", "kv_heads"), use_bias=cfg.attention_bias, dtype=dtype, rngs=rngs)
        self.o_proj = dense(cfg.num_heads * hd, d, ("q_heads", "embed"), use_bias=False, dtype=dtype, rngs=rngs)
        per_head = cfg.qk_norm_type == "qwen3"
        self.q_norm = RMSNorm(hd if per_head else cfg.num_heads * hd, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(hd if per_head else cfg.num_kv_heads * hd, cfg.rms_norm_eps)

    def __call__(self, x: jax.Array, info: MaskInfo, inv_freq: jax.Array, impl: str,
                 cache: tuple[jax.Array, jax.Array, MaskInfo, jax.Array] | None = None):
        cfg = self.cfg
        b, t, _ = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if cfg.qk_norm_type == "olmo":
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.reshape(b, t, cfg.num_heads, cfg.head_dim)
        k = k.reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        v = v.reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        if cfg.qk_norm_type == "qwen3":
            q, k = self.q_norm(q), self.k_norm(k)
        q = apply_rope(q, info.positions, inv_freq)
        k = apply_rope(k, info.positions, inv_freq)
        new_kv = None
        kv_info = info
        if cache is not None:
            ck, cv, kv_info, index = cache
            k, v = _write(ck, k, index), _write(cv, v, index)
            new_kv = (k, v)
            k, v = k.astype(q.dtype), v.astype(q.dtype)
        mask = molmo2_mask(info, kv_info)
        out = attend(q, k, v, mask, impl)
        return self.o_proj(out.reshape(b, t, -1)), new_kv


class Qwen3Block(nnx.Module):
    """Decoder block: pre-norm (Qwen3) or post-norm (OLMo `norm_after`) attention and MLP sublayers."""

    def __init__(self, cfg: TextConfig, dtype, rngs: nnx.Rngs):
        self.norm_after = cfg.norm_after
        self.self_attn = Qwen3Attention(cfg, dtype, rngs)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_size, "embed", "embed", dtype, rngs)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def __call__(self, x, info, inv_freq, impl, cache=None):
        h = x if self.norm_after else self.input_layernorm(x)
        h, new_kv = self.self_attn(h, info, inv_freq, impl, cache)
        x = x + (self.input_layernorm(h) if self.norm_after else h)
        h = self.mlp(x if self.norm_after else self.post_attention_layernorm(x))
        x = x + (self.post_attention_layernorm(h) if self.norm_after else h)
        return x, new_kv


REMAT_POLICIES = {
    "none": None,  # keep every activation
    "block": jax.checkpoint_policies.nothing_saveable,  # keep block inputs only, recompute the block
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # keep matmul outputs, recompute the rest
}


def remat_policy_name(remat: bool | str) -> str:
    """Config `remat` (a name from REMAT_POLICIES, or a bool: True = "block") -> the policy name."""
    name = {True: "block", False: "none"}.get(remat, remat) if isinstance(remat, bool) else remat
    if name not in REMAT_POLICIES:
        raise ValueError(f"unknown remat policy {remat!r}; choose one of {sorted(REMAT_POLICIES)}")
    return name


class Qwen3(nnx.Module):
    """Token embedding (+ Molmo2's extra rows), decoder blocks, final norm and LM head."""

    def __init__(self, cfg: TextConfig, *, dtype=jnp.float32, rngs: nnx.Rngs, remat: bool | str = False,
                 scan_layers: bool = True):
        self.cfg = cfg
        self.dtype = dtype
        self.remat = remat_policy_name(remat)
        self.scan_layers = scan_layers  # one compiled block for all layers (False: a Python loop, same math)
        self.embed_tokens = nnx.Embed(
            cfg.embedding_rows, cfg.hidden_size, dtype=dtype, param_dtype=jnp.float32,
            embedding_init=nnx.initializers.normal(0.02), rngs=rngs,
            embedding_metadata={"logical_axes": ("vocab", "embed")},
        )
        self.layers = nnx.List([Qwen3Block(cfg, dtype, rngs) for _ in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        if not cfg.tie_word_embeddings:
            self.lm_head = dense(cfg.hidden_size, cfg.vocab_size, ("embed", "vocab"), use_bias=False, dtype=dtype,
                                 rngs=rngs)

    def embed(self, input_ids: jax.Array) -> jax.Array:
        return self.embed_tokens(input_ids)

    def head_weight(self) -> jax.Array:
        """The LM head [D, vocab] in the compute dtype, over the base vocabulary only (extra rows are input-only)."""
        if self.cfg.tie_word_embeddings:
            return self.embed_tokens.embedding[...][: self.cfg.vocab_size].astype(self.dtype).T
        return self.lm_head.kernel[...].astype(self.dtype)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """LM head logits [B, T, vocab]."""
        return jnp.einsum("btd,dv->btv", hidden.astype(self.dtype), self.head_weight())

    def __call__(self, embeds: jax.Array, info: MaskInfo, impl: str = "xla",
                 cache: KVCache | None = None) -> tuple[jax.Array, KVCache | None]:
        """embeds [B, T, D] -> final hidden states [B, T, D] (and the updated cache)."""
        cfg = self.cfg
        scaled = rope_inv_freq(cfg)
        unscaled = rope_inv_freq(dataclasses.replace(cfg, rope_scaling=()))
        x = embeds.astype(self.dtype)
        kv_info = None
        if cache is not None:
            kv_info = MaskInfo(_write(cache.info.segment_ids, info.segment_ids, cache.index),
                               _write(cache.info.positions, info.positions, cache.index),
                               _write(cache.info.vision, info.vision, cache.index))
            info = dataclasses.replace(info, branch=None)  # generation has no message trees
        invs = jnp.stack([scaled if cfg.rope_scaling_layers is None or i in cfg.rope_scaling_layers else unscaled
                          for i in range(cfg.num_layers)])  # [L, hd/2]: per-layer RoPE, a scanned input
        if cache is None:
            x = self._run_layers(x, info, invs, impl)
        keys, values = [], []
        for i, block in enumerate(self.layers if cache is not None else ()):
            x, new_kv = block(x, info, invs[i], impl, (cache.keys[i], cache.values[i], kv_info, cache.index))
            keys.append(new_kv[0])
            values.append(new_kv[1])
        x = self.norm(x)
        if cache is None:
            return x, None
        return x, KVCache(keys, values, kv_info, cache.index + embeds.shape[1])

    def _run_layers(self, x: jax.Array, info: MaskInfo, invs: jax.Array, impl: str) -> jax.Array:
        """The decoder blocks without a cache: one `lax.scan` over the stacked per-layer states (remat per block).

        Parameters stay per layer (HF conversion, checkpoints, KV-cache decoding, LoRA see one module per
        block); the forward stacks their states [L, ...] and compiles the block once, so compile time does not
        grow with depth. Gradients flow back through the stack to each layer's parameters.
        """
        policy = REMAT_POLICIES[self.remat]

        def block_fn(graphdef, state, x, inv):
            x, _ = nnx.merge(graphdef, state)(x, info, inv, impl)
            return x

        if policy is not None:
            block_fn = jax.checkpoint(block_fn, policy=policy, static_argnums=(0,))
        if not self.scan_layers:
            for i, block in enumerate(self.layers):
                x = block_fn(*nnx.split(block), x, invs[i])
            return x
        graphdef = nnx.graphdef(self.layers[0])
        states = [nnx.state(block) for block in self.layers]
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)  # every leaf [L, ...]

        def body(x, xs):
            state, inv = xs
            return block_fn(graphdef, state, x, inv), None

        x, _ = jax.lax.scan(body, x, (stacked, invs))
        return x
