"""Molmo2's attention: causal text, one bidirectional block of vision tokens, packed segments.

Every implementation computes the mask itself from the `MaskInfo` of the queries and the keys:
`xla` / `dot_product` / `cudnn` build the dense `[B, 1, T, S]` mask (the reference; `cudnn` runs only on
GPUs), `blockwise` (the training default) computes it per block inside a flash-style online softmax and
never holds `T x T`, and `ring` / `ulysses` (molmo2_jax/ring_attention.py) split the sequence over the mesh's
`sequence` axis and run the blockwise kernel per device.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

IMPLEMENTATIONS = ("xla", "dot_product", "cudnn", "blockwise", "ring", "ulysses")
DEFAULT_BLOCK = 512  # query and key block of the blockwise kernel
VIT_BLOCK = 256  # the ViT's 729 patches per crop: 3 blocks (padded to 768)
_NEG = -1e30  # masked logit (finite, so fully masked blocks give exp(...) = 0, never NaN)


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


# ----------------------------------------------------------------------------------------------
# Blockwise (flash-style) attention with the Molmo2 mask computed per block


def _varying_like(x: jax.Array, *refs: jax.Array) -> jax.Array:
    """Under shard_map, mark a fresh constant as varying over the mesh axes `refs` vary over (loop carries)."""
    axes = set()
    for ref in refs:
        mat = getattr(jax.typeof(ref), "mat", None)
        axes |= set(mat.varying) if mat is not None else set()
    return jax.lax.pcast(x, tuple(sorted(axes)), to="varying") if axes else x


def _blocks(x: jax.Array, n: int) -> jax.Array:
    """[B, T, ...] -> [n, B, T/n, ...] (block index first, for scan / dynamic indexing)."""
    return jnp.moveaxis(x.reshape(x.shape[0], n, x.shape[1] // n, *x.shape[2:]), 1, 0)


def _info_blocks(info: MaskInfo, n: int) -> MaskInfo:
    return jax.tree.map(lambda a: _blocks(a, n), info)


def _take(info: MaskInfo, i) -> MaskInfo:
    return jax.tree.map(lambda a: a[i], info)


def _pad_to(x: jax.Array, size: int, value=0) -> jax.Array:
    return jnp.pad(x, [(0, 0), (0, size - x.shape[1])] + [(0, 0)] * (x.ndim - 2), constant_values=value)


def _pad_info(info: MaskInfo, size: int) -> MaskInfo:
    """Extra slots are padding (segment 0): no query sees them, they see nothing."""
    return jax.tree.map(lambda a: _pad_to(a, size), info)


def block_sizes(tq: int, tk: int, block: int) -> tuple[int, int, int, int]:
    """(query block, key block, padded Tq, padded Tk) for lengths tq, tk and a target block size."""
    bq, bk = min(block, tq), min(block, tk)
    return bq, bk, -(-tq // bq) * bq, -(-tk // bk) * bk


def blockwise_forward(q, k, v, q_info: MaskInfo, kv_info: MaskInfo, block_q: int, block_k: int):
    """Online-softmax attention of one query range over one key range; fp32 (out [B,T,N,H], lse [B,K,G,T]).

    Key blocks whose mask is all false (other segment, the causal future) are skipped by `lax.cond`.
    Rows that see no key at all (padding) give out = 0 and lse = -inf. T and S must be multiples of the blocks.
    """
    b, t, n, h = q.shape
    s, kh = k.shape[1], k.shape[2]
    g, nq, nk = n // kh, t // block_q, s // block_k
    scale = h ** -0.5
    qb = _blocks(q.reshape(b, t, kh, g, h), nq)  # [nq, B, bq, K, G, H]
    kb, vb, kib = _blocks(k, nk), _blocks(v, nk), _info_blocks(kv_info, nk)  # [nk, B, bk, K, H]

    def q_step(_, xs):
        qblk, qinf = xs

        def k_step(j, carry):
            mask = molmo2_mask(qinf, _take(kib, j))[:, 0]  # [B, bq, bk]

            def compute(carry):
                o, m, den = carry  # o [B, K, G, bq, H], running max m / denominator den [B, K, G, bq]
                sc = jnp.einsum("bqkgh,bskh->bkgqs", qblk, kb[j], preferred_element_type=jnp.float32) * scale
                sc = jnp.where(mask[:, None, None], sc, _NEG)
                m_new = jnp.maximum(m, sc.max(-1))
                p = jnp.where(mask[:, None, None], jnp.exp(sc - m_new[..., None]), 0.0)
                corr = jnp.exp(m - m_new)
                o = o * corr[..., None] + jnp.einsum("bkgqs,bskh->bkgqh", p.astype(v.dtype), vb[j],
                                                     preferred_element_type=jnp.float32)
                return o, m_new, den * corr + p.sum(-1)

            return jax.lax.cond(mask.any(), compute, lambda c: c, carry)

        init = (jnp.zeros((b, kh, g, block_q, h), jnp.float32), jnp.full((b, kh, g, block_q), _NEG, jnp.float32),
                jnp.zeros((b, kh, g, block_q), jnp.float32))
        o, m, den = jax.lax.fori_loop(0, nk, k_step, jax.tree.map(lambda x: _varying_like(x, q, k, v), init))
        seen = den > 0
        den = jnp.where(seen, den, 1.0)
        return None, (o / den[..., None], jnp.where(seen, m + jnp.log(den), -jnp.inf))

    _, (out, lse) = jax.lax.scan(q_step, None, (qb, _info_blocks(q_info, nq)))
    out = jnp.moveaxis(out, 0, 3).reshape(b, kh, g, t, h)  # [nq, B, K, G, bq, H] -> [B, K, G, T, H]
    out = jnp.transpose(out, (0, 3, 1, 2, 4)).reshape(b, t, n, h)
    return out, jnp.moveaxis(lse, 0, 3).reshape(b, kh, g, t)


def blockwise_backward(q, k, v, q_info: MaskInfo, kv_info: MaskInfo, do, lse, delta, block_q: int, block_k: int):
    """Flash backward of one query range over one key range, recomputing each block's probabilities.

    `lse` [B,K,G,T] is the logsumexp over ALL keys the queries see (so p is exact even when this key range is
    one ring step), `delta` = rowsum(do * out) minus the lse cotangent. Returns fp32 (dq, dk, dv).
    """
    b, t, n, h = q.shape
    s, kh = k.shape[1], k.shape[2]
    g, nq, nk = n // kh, t // block_q, s // block_k
    scale = h ** -0.5
    qb = _blocks(q.reshape(b, t, kh, g, h), nq)  # [nq, B, bq, K, G, H]
    dob = _blocks(do.reshape(b, t, kh, g, h), nq)
    qib = _info_blocks(q_info, nq)
    lse = jnp.where(jnp.isfinite(lse), lse, 0.0)
    lseb = jnp.moveaxis(lse.reshape(b, kh, g, nq, block_q), 3, 0)  # [nq, B, K, G, bq]
    deltab = jnp.moveaxis(delta.reshape(b, kh, g, nq, block_q), 3, 0)

    def k_step(dq, xs):
        kblk, vblk, kinf = xs

        def q_step(i, carry):
            mask = molmo2_mask(_take(qib, i), kinf)[:, 0]  # [B, bq, bk]

            def compute(carry):
                dq, dk, dv = carry
                qi, doi = qb[i], dob[i]
                sc = jnp.einsum("bqkgh,bskh->bkgqs", qi, kblk, preferred_element_type=jnp.float32) * scale
                p = jnp.where(mask[:, None, None], jnp.exp(sc - lseb[i][..., None]), 0.0)  # [B, K, G, bq, bk]
                dv = dv + jnp.einsum("bkgqs,bqkgh->bskh", p.astype(do.dtype), doi, preferred_element_type=jnp.float32)
                dp = jnp.einsum("bqkgh,bskh->bkgqs", doi, vblk, preferred_element_type=jnp.float32)
                ds = p * (dp - deltab[i][..., None]) * scale
                dq = dq.at[i].add(jnp.einsum("bkgqs,bskh->bqkgh", ds, kblk.astype(jnp.float32)))
                dk = dk + jnp.einsum("bkgqs,bqkgh->bskh", ds, qi.astype(jnp.float32))
                return dq, dk, dv

            return jax.lax.cond(mask.any(), compute, lambda c: c, carry)

        zeros = _varying_like(jnp.zeros((b, block_k, kh, h), jnp.float32), q, k, v, do)
        dq, dk, dv = jax.lax.fori_loop(0, nq, q_step, (dq, zeros, zeros))
        return dq, (dk, dv)

    dq0 = _varying_like(jnp.zeros((nq, b, block_q, kh, g, h), jnp.float32), q, k, v, do)
    dq, (dk, dv) = jax.lax.scan(k_step, dq0, (_blocks(k, nk), _blocks(v, nk), _info_blocks(kv_info, nk)))
    dq = jnp.moveaxis(dq, 0, 1).reshape(b, t, n, h)
    dk, dv = (jnp.moveaxis(x, 0, 1).reshape(b, s, kh, h) for x in (dk, dv))
    return dq, dk, dv


def attention_delta(out: jax.Array, do: jax.Array) -> jax.Array:
    """rowsum(do * out) in the kernel's [B, K, G, T] layout (out/do [B, T, N, H], K from the caller)."""
    return jnp.einsum("btnh,btnh->bnt", do.astype(jnp.float32), out.astype(jnp.float32))


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _blockwise(q, k, v, q_info, kv_info, block_q, block_k):
    out, _ = blockwise_forward(q, k, v, q_info, kv_info, block_q, block_k)
    return out.astype(q.dtype)


def _blockwise_fwd(q, k, v, q_info, kv_info, block_q, block_k):
    out, lse = blockwise_forward(q, k, v, q_info, kv_info, block_q, block_k)
    out = out.astype(q.dtype)
    return out, (q, k, v, q_info, kv_info, out, lse)


def _blockwise_bwd(block_q, block_k, res, do):
    q, k, v, q_info, kv_info, out, lse = res
    kh = k.shape[2]
    delta = attention_delta(out, do).reshape(lse.shape[0], kh, -1, lse.shape[-1])
    dq, dk, dv = blockwise_backward(q, k, v, q_info, kv_info, do, lse, delta, block_q, block_k)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None, None


_blockwise.defvjp(_blockwise_fwd, _blockwise_bwd)


def blockwise_attention(q: jax.Array, k: jax.Array, v: jax.Array, q_info: MaskInfo, kv_info: MaskInfo | None = None,
                        block_size: int = DEFAULT_BLOCK) -> jax.Array:
    """Flash-style Molmo2 attention: memory O(T x block) per layer in forward and backward, GQA without repeats."""
    kv_info = q_info if kv_info is None else kv_info
    t, s = q.shape[1], k.shape[1]
    bq, bk, tp, sp = block_sizes(t, s, block_size)
    if (tp, sp) != (t, s):
        out = _blockwise(_pad_to(q, tp), _pad_to(k, sp), _pad_to(v, sp), _pad_info(q_info, tp),
                         _pad_info(kv_info, sp), bq, bk)
        return out[:, :t]
    return _blockwise(q, k, v, q_info, kv_info, bq, bk)


def full_attention_info(x: jax.Array) -> MaskInfo:
    """MaskInfo under which every token of x [B, T, ...] sees every other (one segment, one position)."""
    zeros = jnp.zeros(x.shape[:2], jnp.int32)
    return MaskInfo(zeros + 1, zeros, jnp.zeros(x.shape[:2], bool))


# ----------------------------------------------------------------------------------------------
# The entry point


def attend(q: jax.Array, k: jax.Array, v: jax.Array, info: MaskInfo | None, impl: str = "xla",
           kv_info: MaskInfo | None = None, block_size: int = DEFAULT_BLOCK) -> jax.Array:
    """The one attention entry point: q [B,T,N,H], k/v [B,S,K,H]; the mask comes from `info` / `kv_info`.

    `kv_info` defaults to `info` (self-attention); a KV-cache decode passes the cache's. `info=None` means
    no mask (the ViT's full attention over one crop): `xla` / `dot_product` run it densely, the blockwise family
    through the blockwise kernel with an all-visible mask (so 729-patch crops never hold heads x 729 x 729).
    `ring` / `ulysses` shard over the current mesh's `sequence` axis (self-attention without a cache only;
    otherwise, or on a mesh without that axis, they run `blockwise` locally).
    """
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown attention implementation {impl!r}; choose one of {IMPLEMENTATIONS}")
    if info is None and impl in ("blockwise", "ring", "ulysses"):  # full attention (ViT crops), kept local
        return blockwise_attention(q, k, v, full_attention_info(q), full_attention_info(k), VIT_BLOCK)
    if info is None and impl != "cudnn":
        return reference_attention(q, k, v, None)
    if impl in ("xla", "dot_product", "cudnn"):
        mask = None if info is None else molmo2_mask(info, info if kv_info is None else kv_info)
        if impl == "xla":
            return reference_attention(q, k, v, mask)
        return jax.nn.dot_product_attention(q, k, v, mask=mask,
                                            implementation=None if impl == "dot_product" else "cudnn")
    if impl in ("ring", "ulysses") and (kv_info is None or kv_info is info):
        from molmo2_jax.ring_attention import sequence_parallel_attention

        return sequence_parallel_attention(q, k, v, info, impl, block_size)
    return blockwise_attention(q, k, v, info, kv_info, block_size)
