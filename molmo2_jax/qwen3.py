"""Qwen3 decoder (RMSNorm, GQA, QK-norm before RoPE, SwiGLU) with a KV cache for generation."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from molmo2_jax.attention import DEFAULT_BLOCK, MaskInfo, attend
from molmo2_jax.layers import RMSNorm, SwiGLU, dense
from molmo2_jax.model_config import TextConfig


# ----------------------------------------------------------------------------------------------
# RoPE


class Rope(NamedTuple):
    """One layer's RoPE: inverse frequencies [hd/2] and the cos/sin multiplier (YaRN's attention factor)."""

    inv_freq: jax.Array
    scale: jax.Array


def _yarn(inv: np.ndarray, dim: int, theta: float, p: dict) -> tuple[np.ndarray, float]:
    """YaRN (arXiv 2309.00071) as transformers computes it: ramp between interpolated and original freqs."""
    factor = float(p["factor"])
    original = p["original_max_position_embeddings"]
    attention = p.get("attention_factor")
    if attention is None:
        mscale = lambda s, m=1.0: 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0  # noqa: E731
        m, m_all = p.get("mscale"), p.get("mscale_all_dim")
        attention = mscale(factor, m) / mscale(factor, m_all) if m and m_all else mscale(factor)
    fast, slow = p.get("beta_fast") or 32, p.get("beta_slow") or 1

    def correction_dim(rotations):
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = correction_dim(fast), correction_dim(slow)
    if p.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    high = high + 0.001 if low == high else high
    ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - low) / (high - low), 0, 1)
    extrapolate = 1 - ramp
    return (inv / factor) * (1 - extrapolate) + inv * extrapolate, float(attention)


def _llama3(inv: np.ndarray, p: dict) -> np.ndarray:
    """Llama-3 RoPE scaling: long wavelengths divided by `factor`, a smooth band between."""
    factor, lo, hi = float(p["factor"]), float(p["low_freq_factor"]), float(p["high_freq_factor"])
    old = p["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    scaled = np.where(wavelen > old / lo, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    mid = (1 - smooth) * scaled / factor + smooth * scaled
    is_mid = (wavelen >= old / hi) & (wavelen <= old / lo)
    return np.where(is_mid, mid, scaled).astype(np.float32)


def rope_inv_freq(cfg: TextConfig, layer: int | None = None) -> Rope:
    """RoPE of one decoder layer (NeoX half-split layout): default, linear, llama3 or YaRN as in transformers.

    Layers outside `rope_scaling_layers` (Molmo2-O: YaRN on every 4th layer only) keep the theta, unscaled.
    """
    dim = cfg.head_dim
    inv = (1.0 / (cfg.rope_theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim))).astype(np.float32)
    scaling = dict(cfg.rope_scaling)
    scaling.setdefault("original_max_position_embeddings", cfg.max_position_embeddings)
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if layer is not None and cfg.rope_scaling_layers is not None and layer not in cfg.rope_scaling_layers:
        kind = "default"
    scale = 1.0
    if kind == "linear":
        inv = inv / float(scaling["factor"])
    elif kind == "yarn":
        inv, scale = _yarn(inv, dim, cfg.rope_theta, scaling)
    elif kind == "llama3":
        inv = _llama3(inv, scaling)
    elif kind != "default":
        raise NotImplementedError(f"RoPE type {kind!r} is not supported (default, linear, llama3, yarn); "
                                  "it depends on the sequence length (dynamic/longrope)")
    return Rope(jnp.asarray(inv, jnp.float32), jnp.asarray(scale, jnp.float32))


def rope_layers(cfg: TextConfig) -> Rope:
    """Every layer's RoPE stacked: inv_freq [layers, hd/2], scale [layers] (scan-friendly)."""
    ropes = [rope_inv_freq(cfg, i) for i in range(cfg.num_layers)]
    return Rope(jnp.stack([r.inv_freq for r in ropes]), jnp.stack([r.scale for r in ropes]))


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array | Rope) -> jax.Array:
    """Rotate x [B, T, heads, hd] by its positions [B, T] (cos/sin computed in fp32, applied in x's dtype)."""
    inv_freq, scale = (inv_freq.inv_freq, inv_freq.scale) if isinstance(inv_freq, Rope) else (inv_freq, 1.0)
    freqs = positions[..., None].astype(jnp.float32) * inv_freq  # [B, T, hd/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]
    cos, sin = (jnp.cos(emb) * scale).astype(x.dtype), (jnp.sin(emb) * scale).astype(x.dtype)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


# ----------------------------------------------------------------------------------------------
# Residual dropout


class ResidualDropout(NamedTuple):
    """Molmo2's residual dropout (olmo/nn/llm.py `Dropout(residual_dropout, mask_p=response_residual_dropout)`).

    Each sublayer output is dropped with `rate`, or `response_rate` where `response_mask` [B, T] is set
    (tokens predicting a response token). Training only: pass None at evaluation and generation.
    """

    key: jax.Array
    rate: float
    response_rate: float = 0.0
    response_mask: jax.Array | None = None


def residual_dropout(x: jax.Array, drop: ResidualDropout | None, layer: int, sublayer: int) -> jax.Array:
    """Inverted dropout of a sublayer output x [B, T, D] with a per-token keep probability."""
    if drop is None or (drop.rate == 0.0 and drop.response_rate == 0.0):
        return x
    keep = jnp.full(x.shape[:2], 1.0 - drop.rate, jnp.float32)
    if drop.response_mask is not None:
        keep = jnp.where(drop.response_mask, 1.0 - drop.response_rate, keep)
    key = jax.random.fold_in(jax.random.fold_in(drop.key, layer), sublayer)
    kept = jax.random.bernoulli(key, keep[..., None], x.shape)
    return jnp.where(kept, x / keep[..., None].astype(x.dtype), 0).astype(x.dtype)


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

    def __init__(self, cfg: TextConfig, dtype, rngs: nnx.Rngs, block_size: int = DEFAULT_BLOCK):
        d, hd = cfg.hidden_size, cfg.head_dim
        self.cfg = cfg
        self.block_size = block_size  # query/key block of the blockwise, ring and Ulysses kernels
        bias = cfg.attention_bias
        self.q_proj = dense(d, cfg.num_heads * hd, ("embed", "q_heads"), use_bias=bias, dtype=dtype, rngs=rngs)
        self.k_proj = dense(d, cfg.num_kv_heads * hd, ("embed", "kv_heads"), use_bias=bias, dtype=dtype, rngs=rngs)
        self.v_proj = dense(d, cfg.num_kv_heads * hd, ("embed", "kv_heads"), use_bias=bias, dtype=dtype, rngs=rngs)
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
        out = attend(q, k, v, info, impl, kv_info=None if cache is None else kv_info,  # each impl builds its mask
                     block_size=self.block_size)
        return self.o_proj(out.reshape(b, t, -1)), new_kv


class Qwen3Block(nnx.Module):
    """Decoder block: pre-norm (Qwen3) or post-norm (OLMo `norm_after`) attention and MLP sublayers."""

    def __init__(self, cfg: TextConfig, dtype, rngs: nnx.Rngs, layer: int = 0, block_size: int = DEFAULT_BLOCK):
        self.norm_after = cfg.norm_after
        self.layer = layer
        self.self_attn = Qwen3Attention(cfg, dtype, rngs, block_size)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_size, "embed", "embed", dtype, rngs)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def __call__(self, x, info, inv_freq, impl, cache=None, dropout: ResidualDropout | None = None):
        h = x if self.norm_after else self.input_layernorm(x)
        h, new_kv = self.self_attn(h, info, inv_freq, impl, cache)
        x = x + residual_dropout(self.input_layernorm(h) if self.norm_after else h, dropout, self.layer, 0)
        h = self.mlp(x if self.norm_after else self.post_attention_layernorm(x))
        x = x + residual_dropout(self.post_attention_layernorm(h) if self.norm_after else h, dropout, self.layer, 1)
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
                 scan_layers: bool = True, attention_block_size: int = DEFAULT_BLOCK):
        self.cfg = cfg
        self.dtype = dtype
        self.remat = remat_policy_name(remat)
        self.scan_layers = scan_layers  # one compiled block for all layers (False: a Python loop, same math)
        self.embed_tokens = nnx.Embed(
            cfg.embedding_rows, cfg.hidden_size, dtype=dtype, param_dtype=jnp.float32,
            embedding_init=nnx.initializers.normal(0.02), rngs=rngs,
            embedding_metadata={"logical_axes": ("vocab", "embed")},
        )
        self.layers = nnx.List([Qwen3Block(cfg, dtype, rngs, i, attention_block_size) for i in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        if not cfg.tie_word_embeddings:
            self.lm_head = dense(cfg.hidden_size, cfg.vocab_size, ("embed", "vocab"), use_bias=False,
                                 dtype=dtype, rngs=rngs)

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
                 cache: KVCache | None = None, dropout: ResidualDropout | None = None
                 ) -> tuple[jax.Array, KVCache | None]:
        """embeds [B, T, D] -> final hidden states [B, T, D] (and the updated cache); `dropout`: training only."""
        cfg = self.cfg
        ropes = rope_layers(cfg)
        x = embeds.astype(self.dtype)
        kv_info = None
        if cache is not None:
            kv_info = MaskInfo(_write(cache.info.segment_ids, info.segment_ids, cache.index),
                               _write(cache.info.positions, info.positions, cache.index),
                               _write(cache.info.vision, info.vision, cache.index))
            info = dataclasses.replace(info, branch=None)  # generation has no message trees
        if cache is None:
            x = self._run_layers(x, info, ropes, impl, dropout)
        keys, values = [], []
        for i, block in enumerate(self.layers if cache is not None else ()):
            layer_cache = (cache.keys[i], cache.values[i], kv_info, cache.index)
            x, new_kv = block(x, info, Rope(ropes.inv_freq[i], ropes.scale[i]), impl, layer_cache, dropout)
            keys.append(new_kv[0])
            values.append(new_kv[1])
        x = self.norm(x)
        if cache is None:
            return x, None
        return x, KVCache(keys, values, kv_info, cache.index + embeds.shape[1])

    def _run_layers(self, x: jax.Array, info: MaskInfo, ropes: Rope, impl: str,
                    dropout: ResidualDropout | None) -> jax.Array:
        """The decoder blocks without a cache: one `lax.scan` over the stacked per-layer states (remat per block).

        Parameters stay per layer (HF conversion, checkpoints, KV-cache decoding, LoRA see one module per
        block); the forward stacks their states [L, ...] and compiles the block once, so compile time does not
        grow with depth. Gradients flow back through the stack to each layer's parameters. Per-layer inputs
        (RoPE, the dropout key folded with the layer index) are scanned alongside; both paths run layer 0's
        graph with layer i's state, so scanned and unrolled draw the same dropout masks. The mask metadata is
        scanned too (one copy per layer, [L, B, T]): closed over, it is loop-invariant, and JAX's scan autodiff
        hoists the invariant parts of the blockwise kernel's per-block masks out of the loop, stacked over all
        query x key blocks (O(T^2) memory again: 12x the temporaries of 2,048-token blockwise attention).
        """
        policy = REMAT_POLICIES[self.remat]
        n = len(self.layers)
        keys = (jnp.zeros((n,), jnp.uint32) if dropout is None
                else jax.vmap(lambda i: jax.random.fold_in(dropout.key, i))(jnp.arange(n)))

        def block_fn(graphdef, state, x, rope, key, info):
            drop = None if dropout is None else dropout._replace(key=key)
            x, _ = nnx.merge(graphdef, state)(x, info, rope, impl, None, drop)
            return x

        if policy is not None:
            block_fn = jax.checkpoint(block_fn, policy=policy, static_argnums=(0,))
        graphdef = nnx.graphdef(self.layers[0])
        if not self.scan_layers:
            for i, block in enumerate(self.layers):
                x = block_fn(graphdef, nnx.state(block), x, Rope(ropes.inv_freq[i], ropes.scale[i]), keys[i], info)
            return x
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[nnx.state(block) for block in self.layers])  # [L, ...]

        infos = jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *a.shape)), info)  # [L, B, T]

        def body(x, xs):
            state, rope, key, layer_info = xs
            return block_fn(graphdef, state, x, rope, key, layer_info), None

        x, _ = jax.lax.scan(body, x, (stacked, ropes, keys, infos))
        return x
