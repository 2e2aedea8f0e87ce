"""Context parallelism for Molmo2 attention over the mesh's `sequence` axis: ring and Ulysses.

Both run under `jax.shard_map` with q/k/v sharded [batch over data x fsdp, sequence over `sequence`] and
compute the exact Molmo2 mask from per-token `MaskInfo` (segment, position, vision flag, branch), so any
token order works: the mask never assumes that index order is causal order.

- ring: each device keeps its queries; keys/values and their MaskInfo travel the ring with `ppermute`
  (the next transfer is issued before the current block's compute so the two can overlap). Partial results
  merge by logsumexp; the backward (`custom_vjp`) sends dK/dV around with K/V and recomputes per block, so
  nothing holds T x T or a per-step copy of the outputs.
- ulysses: all-to-all from sequence-sharded to head-sharded, local blockwise attention over the whole
  sequence for N/n of the heads, all-to-all back (the CP degree may not exceed the KV heads).

Load balance (ring): causal attention makes a contiguous split unfair (the last device sees every key).
`zigzag_order` gives device i the chunks i and 2n-1-i of 2n (dual-chunk swap). We apply it to the token
EMBEDDINGS and MaskInfo inside `Molmo2.__call__`, after image features are added and before the decoder,
and undo it on the final hidden states before the LM head. Not in the data iterator, because
`add_image_features` fills `<im_patch>` tokens in order of appearance (a token permutation before the embed
step would pair crops with the wrong tokens), and so the logits keep their meaning for every caller. RoPE
reads each token's own position from MaskInfo, so permuted tokens rotate and mask exactly as before.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from molmo2_jax.attention import (MaskInfo, _pad_info, _pad_to, _varying_like, attention_delta, block_sizes,
                                  blockwise_attention, blockwise_backward, blockwise_forward)

AXIS = "sequence"


def sequence_axis_size() -> int:
    """Size of the current mesh's `sequence` axis (1 without a mesh or without that axis)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or AXIS not in mesh.axis_names:
        return 1
    return int(mesh.shape[AXIS])


def zigzag_order(t: int, n: int) -> np.ndarray:
    """Token order giving device i chunks i and 2n-1-i of 2n equal chunks (dual-chunk swap); t % 2n == 0."""
    if t % (2 * n):
        raise ValueError(f"ring attention's zig-zag layout needs seq_len divisible by 2 x mesh.sequence = {2 * n}, "
                         f"got {t}; set --config.seq_len to a multiple of {2 * n}")
    chunks = np.arange(t).reshape(2 * n, t // (2 * n))
    return np.concatenate([np.concatenate([chunks[i], chunks[2 * n - 1 - i]]) for i in range(n)])


def context_parallel_layout(impl: str, t: int, has_cache: bool) -> np.ndarray | None:
    """The token order a decoder pass over t tokens runs in: zig-zag for `ring` on a sequence mesh, else None.

    `ulysses` needs none (each device attends over the whole sequence for its heads), nor does a KV-cache pass.
    """
    n = sequence_axis_size()
    if impl != "ring" or has_cache or n == 1:
        return None
    return zigzag_order(t, n)


def _merge(o1, lse1, o2, lse2):
    """Combine two partial softmax results over disjoint key sets (o [B,T,N,H], lse [B,K,G,T])."""
    lse = jnp.logaddexp(lse1, lse2)
    safe = jnp.where(jnp.isfinite(lse), lse, 0.0)
    b, kh, g, t = lse.shape
    w = lambda x: jnp.transpose(jnp.exp(x - safe), (0, 3, 1, 2)).reshape(b, t, kh * g, 1)  # noqa: E731
    return o1 * w(lse1) + o2 * w(lse2), lse


def _ring_perm(n: int):
    return [(j, (j + 1) % n) for j in range(n)]


def _ring_forward(q, k, v, qi, ki, n, bq, bk):
    """n ring steps: attend to the visiting K/V block, pass it on; returns fp32 (out, lse)."""
    send = functools.partial(jax.lax.ppermute, axis_name=AXIS, perm=_ring_perm(n))
    out, lse = blockwise_forward(q, k, v, qi, ki, bq, bk)

    def step(_, carry):
        out, lse, k, v, ki = carry
        k, v, ki = send((k, v, ki))
        o2, l2 = blockwise_forward(q, k, v, qi, ki, bq, bk)
        out, lse = _merge(out, lse, o2, l2)
        return out, lse, k, v, ki

    out, lse, *_ = jax.lax.fori_loop(0, n - 1, step, (out, lse, k, v, ki))
    return out, lse


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _ring(q, k, v, qi, ki, n, bq, bk):
    return _ring_forward(q, k, v, qi, ki, n, bq, bk)[0].astype(q.dtype)


def _ring_fwd(q, k, v, qi, ki, n, bq, bk):
    out, lse = _ring_forward(q, k, v, qi, ki, n, bq, bk)
    out = out.astype(q.dtype)
    return out, (q, k, v, qi, ki, out, lse)


def _ring_bwd(n, bq, bk, res, do):
    q, k, v, qi, ki, out, lse = res
    send = functools.partial(jax.lax.ppermute, axis_name=AXIS, perm=_ring_perm(n))
    delta = attention_delta(out, do).reshape(lse.shape)

    def step(_, carry):
        dq, k, v, ki, dk, dv = carry
        dq_j, dk_j, dv_j = blockwise_backward(q, k, v, qi, ki, do, lse, delta, bq, bk)
        # dK/dV ride with their K/V: after n hops both are back on the device that owns them.
        k, v, ki, dk, dv = send((k, v, ki, dk + dk_j, dv + dv_j))
        return dq + dq_j, k, v, ki, dk, dv

    zeros = lambda x: _varying_like(jnp.zeros(x.shape, jnp.float32), x)  # noqa: E731
    dq, _, _, _, dk, dv = jax.lax.fori_loop(0, n, step, (zeros(q), k, v, ki, zeros(k), zeros(v)))
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None, None


_ring.defvjp(_ring_fwd, _ring_bwd)


def _ulysses(q, k, v, qi, n, block_size):
    """Sequence-sharded -> head-sharded (all-to-all), blockwise attention over all T, and back."""
    to_heads = functools.partial(jax.lax.all_to_all, axis_name=AXIS, split_axis=2, concat_axis=1, tiled=True)
    q, k, v = to_heads(q), to_heads(k), to_heads(v)  # [B, T, N/n, H], [B, T, K/n, H]
    info = jax.tree.map(lambda a: jax.lax.all_gather(a, AXIS, axis=1, tiled=True), qi)  # [B, T]
    out = blockwise_attention(q, k, v, info, info, block_size)
    return jax.lax.all_to_all(out, AXIS, split_axis=1, concat_axis=2, tiled=True)  # [B, T/n, N, H]


def sequence_parallel_attention(q: jax.Array, k: jax.Array, v: jax.Array, info: MaskInfo, impl: str,
                                block_size: int) -> jax.Array:
    """Molmo2 self-attention with the sequence split over the mesh's `sequence` axis (`ring` or `ulysses`).

    q [B, T, N, H], k/v [B, T, K, H] (global shapes); without a `sequence` axis > 1 this is blockwise attention.
    """
    n = sequence_axis_size()
    if n == 1:
        return blockwise_attention(q, k, v, info, info, block_size)
    b, t = q.shape[:2]
    kv_heads = k.shape[2]
    if t % n:
        raise ValueError(f"{impl} attention splits seq_len over mesh.sequence = {n}, but seq_len {t} is not a "
                         f"multiple; set --config.seq_len to a multiple of {n}")
    if impl == "ulysses" and kv_heads % n:
        raise ValueError(f"ulysses attention splits the {kv_heads} KV heads over mesh.sequence = {n}; the "
                         f"sequence degree must divide the KV-head count (use attention_impl='ring' instead)")
    mesh = jax.sharding.get_abstract_mesh()
    batch_axes = tuple(a for a in ("data", "fsdp") if a in mesh.axis_names)
    if b % int(np.prod([mesh.shape[a] for a in batch_axes])):
        batch_axes = ()
    spec4 = P(batch_axes or None, AXIS, None, None)
    spec2 = P(batch_axes or None, AXIS)
    info_spec = jax.tree.map(lambda _: spec2, info)
    if impl == "ring":
        bq, bk, tp, _ = block_sizes(t // n, t // n, block_size)

        def body(q, k, v, i):  # local [B, T/n, ...]; padded slots (segment 0) are invisible to everyone
            pad4 = lambda x: _pad_to(x, tp)  # noqa: E731
            return _ring(pad4(q), pad4(k), pad4(v), _pad_info(i, tp), _pad_info(i, tp), n, bq, bk)[:, :t // n]
    else:
        body = lambda q, k, v, i: _ulysses(q, k, v, i, n, block_size)  # noqa: E731
    return jax.shard_map(body, mesh=mesh, in_specs=(spec4, spec4, spec4, info_spec), out_specs=spec4)(q, k, v, info)
