"""Molmo2's attention: causal text, one bidirectional block of vision tokens, packed segments."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

IMPLEMENTATIONS = ("xla", "dot_product", "cudnn")


@dataclasses.dataclass(frozen=True)
class MaskInfo:
    """What decides who attends to whom: per-token segment ids (0 = padding), positions, vision flags."""

    segment_ids: jax.Array  # [B, T] int32, 0 marks padding
    positions: jax.Array  # [B, T] int32, restart at 0 for each packed example
    vision: jax.Array  # [B, T] bool, True for image/frame tokens (mm_token_type_ids == 1)
    branch: jax.Array | None = None  # [B, T] int32 message-tree branch, -1 = shared prefix (processing's ids)


jax.tree_util.register_dataclass(MaskInfo, data_fields=["segment_ids", "positions", "vision", "branch"],
                                 meta_fields=[])


def molmo2_mask(q: MaskInfo, kv: MaskInfo, bidirectional_vision: bool = True) -> jax.Array:
    """Causal ∧ same-segment, ∨ (both vision ∧ same segment); returns bool [B, 1, Tq, Tk].

    With message trees, a token also sees only the shared prefix (branch -1) and its own branch.
    """
    same = (q.segment_ids[:, :, None] == kv.segment_ids[:, None, :]) & (q.segment_ids[:, :, None] > 0)
    if q.branch is not None and kv.branch is not None:
        same = same & ((kv.branch[:, None, :] < 0) | (kv.branch[:, None, :] == q.branch[:, :, None]))
    allowed = kv.positions[:, None, :] <= q.positions[:, :, None]
    if bidirectional_vision:
        allowed = allowed | (q.vision[:, :, None] & kv.vision[:, None, :])
    return (same & allowed)[:, None]


def reference_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Plain XLA attention with GQA and an fp32 softmax; q [B,T,N,H], k/v [B,S,K,H] -> [B,T,N,H]."""
    b, t, n, h = q.shape
    kh = k.shape[2]
    q = q.reshape(b, t, kh, n // kh, h)  # [B, T, K, G, H]
    logits = jnp.einsum("btkgh,bskh->bkgts", q, k, preferred_element_type=jnp.float32)
    logits = logits * (h ** -0.5)
    if mask is not None:  # mask [B, 1, T, S]
        logits = jnp.where(mask[:, :, None], logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgts,bskh->btkgh", probs, v, preferred_element_type=jnp.float32)
    return out.reshape(b, t, n, h).astype(q.dtype)


def attend(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None, impl: str = "xla") -> jax.Array:
    """The one attention entry point; `impl` picks the reference XLA path or jax.nn's kernels (cuDNN)."""
    if impl == "xla":
        return reference_attention(q, k, v, mask)
    if impl in ("dot_product", "cudnn"):
        return jax.nn.dot_product_attention(
            q, k, v, mask=mask, implementation=None if impl == "dot_product" else "cudnn"
        )
    raise ValueError(f"unknown attention implementation {impl!r}; choose one of {IMPLEMENTATIONS}")
