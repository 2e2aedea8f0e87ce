"""Molmo2 training step: weighted token cross-entropy, per-component AdamW, frozen ViT, skip non-finite steps."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from molmo2_jax.model import Molmo2
from molmo2_jax.qwen3 import ResidualDropout
from molmo2_jax.sharding import batch_axes, constrain

COMPONENTS = ("vit", "connector", "llm")
_PREFIX = {"vision_tower": "vit", "connector": "connector", "language_model": "llm"}


def component_of(path: tuple) -> str:
    """Which Molmo2 component ('vit', 'connector', 'llm') a parameter path belongs to."""
    return _PREFIX[str(path[0])]


def decays(path: tuple, value: Any) -> bool:
    """Weight decay applies to matrices only: not to norms, biases, embeddings or position tables."""
    leaf = str(path[-1])
    return value.ndim >= 2 and leaf not in ("embedding", "positional_embedding")


def trainable_filter(freeze_vit: bool):
    """nnx filter of the parameters that get gradients and optimizer state."""
    if freeze_vit:
        return nnx.All(nnx.Param, nnx.Not(nnx.PathContains("vision_tower")))
    return nnx.Param


def learning_rate_schedules(lrs: Mapping[str, float], warmup: int | Mapping[str, int], total: int,
                            final_frac: float = 0.1):
    """Per-component linear warmup from 0 + cosine decay to `final_frac` of the peak (Molmo2 `multimodal`).

    `warmup`: one step count, or one per component (Molmo2 stage 1: connector 200, ViT 2,000, LLM 2,000).
    """
    steps = {c: int(warmup[c] if isinstance(warmup, Mapping) else warmup) for c in COMPONENTS}
    return {c: optax.warmup_cosine_decay_schedule(0.0, lrs[c], max(steps[c], 1), max(total, steps[c] + 1),
                                                  end_value=lrs[c] * final_frac) for c in COMPONENTS}


def _names(path) -> tuple:
    return tuple(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path)


def make_optimizer(schedules: Mapping, *, weight_decay: float, clip: float, b1: float = 0.9, b2: float = 0.95,
                   eps: float = 1e-6, max_consecutive_nonfinite: int = 5) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW with a learning rate per component; non-finite steps are skipped."""
    def labels(params):
        return jax.tree_util.tree_map_with_path(lambda p, _: component_of(_names(p)), params)

    def decay_mask(params):
        return jax.tree_util.tree_map_with_path(lambda p, v: decays(_names(p), v), params)

    per_component = optax.multi_transform(
        {c: optax.adamw(schedules[c], b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask)
         for c in COMPONENTS}, labels)
    return optax.apply_if_finite(optax.chain(optax.clip_by_global_norm(clip), per_component),
                                 max_consecutive_errors=max_consecutive_nonfinite)


def next_token_targets(batch: Mapping[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """(targets, weights) aligned with the predicting position: the batch's `target_ids` (-1 = none), shifted
    by the encoder because message trees need it (a branch's last token is not followed by its target)."""
    if "target_ids" not in batch:
        raise KeyError("batch has no `target_ids`; encode examples with Molmo2Processor.training_example "
                       "(the data pipeline's ExampleEncoder)")
    targets = batch["target_ids"]
    weights = jnp.where(targets >= 0, batch["loss_weights"], 0.0)
    return targets, weights.astype(jnp.float32)


def _valid_targets(batch: Mapping[str, jax.Array], vocab: int) -> tuple[jax.Array, jax.Array]:
    """(targets clipped into [0, vocab), weights zeroed where there is no in-vocabulary target)."""
    targets, weights = next_token_targets(batch)
    valid = (targets >= 0) & (targets < vocab)  # Molmo2's extra-vocab tokens are never targets
    return jnp.clip(targets, 0, vocab - 1), jnp.where(valid, weights, 0.0)


def _loss_aux(ce, correct, weights, total_w, batch, num_sources) -> dict:
    """Metrics of a step's loss: weighted ce, accuracy, loss tokens, per-dataset sums of ce * w and w."""
    mask = weights > 0
    aux = {"ce": (ce * weights).sum() / total_w, "accuracy": (correct & mask).sum() / jnp.maximum(mask.sum(), 1),
           "loss_tokens": mask.sum()}
    if num_sources and "source_ids" in batch:
        onehot = jax.nn.one_hot(batch["source_ids"], num_sources, dtype=jnp.float32)  # [B, T, D]; -1 -> zeros
        aux["source_ce_sum"] = jnp.einsum("bt,btd->d", ce * weights, onehot)
        aux["source_weight"] = jnp.einsum("bt,btd->d", weights, onehot)
    return aux


def weighted_cross_entropy(logits: jax.Array, batch: Mapping[str, jax.Array], z_loss: float = 0.0,
                           num_sources: int = 0):
    """sum(ce * w) / sum(w) over the batch's targets, plus optional z-loss; with accuracy.

    With `num_sources` and per-token `source_ids`, also per-dataset sums of ce * w and of w (for per-dataset loss).
    The reference for `head_cross_entropy`, which the train step uses (same values, no [B, T, V] logits).
    """
    targets, weights = _valid_targets(batch, logits.shape[-1])
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    ce = log_z - jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    total_w = jnp.maximum(weights.sum(), 1e-8)
    loss = (ce * weights).sum() / total_w
    if z_loss:
        loss = loss + z_loss * ((log_z ** 2) * weights).sum() / total_w
    correct = jnp.argmax(logits, -1) == targets
    return loss, _loss_aux(ce, correct, weights, total_w, batch, num_sources)


def head_cross_entropy(hidden: jax.Array, head: jax.Array, batch: Mapping[str, jax.Array], z_loss: float = 0.0,
                       num_sources: int = 0, chunk: int = 256):
    """`weighted_cross_entropy` of the logits `hidden @ head` (hidden [B, T, D], head [D, V]), chunk by chunk."""
    b, t, d = hidden.shape
    targets, weights = _valid_targets(batch, head.shape[-1])
    total_w = jnp.maximum(weights.sum(), 1e-8)
    scale = jax.lax.stop_gradient(weights / total_w).reshape(-1)
    loss, ce, correct = fused_head_loss(hidden.reshape(-1, d), head, targets.reshape(-1), scale, z_loss * scale,
                                        min(chunk, b * t))
    return loss, _loss_aux(ce.reshape(b, t), correct.reshape(b, t), weights, total_w, batch, num_sources)


def _fused_head_loss(hidden, w, targets, a, b, chunk: int, with_grads: bool):
    """Scan the LM head over token chunks, weighted tokens first, skipping chunks that carry no weight.

    hidden [N, D], w [D, V], targets/a/b [N] -> per-token ce, log Z, correct [N]; with_grads: also the
    gradients of sum(a * ce + b * log_z^2) w.r.t. hidden [N, D] and w [D, V] (fp32), computed chunk by chunk
    so no [N, V] array ever exists.

    Why it is written this way: each [c, V] chunk is far larger than a CPU's caches, so every pass over it costs
    memory bandwidth; the form with the fewest [c, V] passes is also the cheapest on GPUs.
    - d loss / d logits = scale * e - a * onehot(target), with e = exp(logits - max) and per-token
      scale = (a + 2b log Z) / sum(e). The scale goes on the small [c, D] sides of the two gradient dots
      (dh = scale * (e @ w.T), dW += (scale * h).T @ e) and the one-hot term is a gather/scatter of N columns of w
      after the scan: the chunk's [c, V] passes are logits, max, e, sum(e) and the two dots; no d-logits array,
      one-hot, scatter into [c, V] or argmax pass (`correct` is target logit >= max logit: a tie counts as correct).
    - logits stay [c, V] (plain [c, D] x [D, V] dots, no transposes on any backend). Laying them out [V, c] makes
      the max / exp-sum reductions ~2x faster on XLA:CPU but the two gradient dots slower: measured slower overall
      (tiny head, 2,536 tokens: 4.5 vs 3.5 CPU-s); chunks of 128 / 512 tokens measured no better than 256.
    """
    n, dim = hidden.shape
    order = jnp.argsort(a <= 0, stable=True)  # tokens with a loss weight first
    pad = -n % chunk
    f32 = jnp.float32

    def take(x):  # sorted, padded, split into chunks: [chunks, c, ...]
        x = jnp.pad(x[order], [(0, pad)] + [(0, 0)] * (x.ndim - 1))
        return x.reshape(-1, chunk, *x.shape[1:])

    def body(dw, xs):
        h, t, a_c, b_c = xs

        def compute(dw):
            logits = jnp.einsum("cd,dv->cv", h, w, preferred_element_type=f32)  # [c, V]
            top = logits.max(-1)
            target_logit = jnp.take_along_axis(logits, t[:, None], axis=-1)[:, 0]
            e = jnp.exp(logits - top[:, None])  # [c, V], in (0, 1]
            total = e.sum(-1)
            log_z = top + jnp.log(total)
            dh = jnp.zeros(h.shape, f32)
            if with_grads:  # d/d logits of sum(a * ce) + sum(b * log_z^2), ce = log_z - target_logit
                scale = (a_c + 2 * b_c * log_z) / total  # [c]; the one-hot part -a is added after the scan
                e = e.astype(w.dtype)
                dh = scale[:, None] * jnp.einsum("cv,dv->cd", e, w, preferred_element_type=f32)
                dw = dw + jnp.einsum("cd,cv->dv", (scale[:, None] * h).astype(h.dtype), e, preferred_element_type=f32)
            return dw, (log_z - target_logit, log_z, target_logit >= top, dh)

        def skip(dw):
            zeros = jnp.zeros((chunk,), f32)
            return dw, (zeros, zeros, jnp.zeros((chunk,), bool), jnp.zeros(h.shape, f32))

        return jax.lax.cond(jnp.any(a_c > 0), compute, skip, dw)

    dw0 = jnp.zeros(w.shape if with_grads else (), f32)
    dw, outs = jax.lax.scan(body, dw0, (take(hidden), take(targets), take(a), take(b)))
    inverse = jnp.argsort(order)
    ce, log_z, correct, dh = (x.reshape(-1, *x.shape[2:])[:n][inverse] for x in outs)
    if with_grads:  # the one-hot part of d logits: -a at each token's target column
        dh = (dh - a[:, None] * jnp.take(w, targets, axis=1).T).astype(hidden.dtype)  # [N, D]; w not transposed
        dw = dw.at[:, targets].add(-(a[:, None] * hidden).T)
    return ce, log_z, correct, dh, dw


def _head_loss_value(ce, log_z, a, b):
    return (ce * a).sum() + (log_z * log_z * b).sum()


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def fused_head_loss(hidden, w, targets, a, b, chunk=256):
    """sum(a * ce + b * log_z^2) of the LM head `hidden @ w` without [N, V] logits; also per-token ce, correct.

    hidden [N, D], w [D, V], targets [N] in [0, V), a/b [N] fixed weights (no gradient). The gradients are
    computed in the forward chunk scan (the weights are known up front), so backward costs no recompute.
    Only the scalar is differentiable; ce and correct are metrics.
    """
    ce, log_z, correct, _, _ = _fused_head_loss(hidden, w, targets, a, b, chunk, with_grads=False)
    return _head_loss_value(ce, log_z, a, b), ce, correct


def _fused_head_loss_fwd(hidden, w, targets, a, b, chunk):
    ce, log_z, correct, dh, dw = _fused_head_loss(hidden, w, targets, a, b, chunk, with_grads=True)
    return (_head_loss_value(ce, log_z, a, b), ce, correct), (dh, dw.astype(w.dtype))


def _fused_head_loss_bwd(chunk, res, cts):
    dh, dw = res
    g = cts[0]
    return (g * dh).astype(dh.dtype), (g * dw).astype(dw.dtype), None, None, None


fused_head_loss.defvjp(_fused_head_loss_fwd, _fused_head_loss_bwd)


def model_inputs(batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Packed batch -> Molmo2 inputs: the packer's names renamed (its crop layout is the model's, one group per
    row: `crops` [B, C, P, D], `crop_pooling` [B, N, W]; see `packing.assemble`)."""
    out = {"input_ids": batch["input_ids"], "mm_token_type_ids": batch["mm_token_type_ids"],
           "segment_ids": batch["segment_ids"], "position_ids": batch["positions"],
           "branch_ids": batch.get("branch_ids")}
    if "crops" in batch:
        out["crops"], out["crop_pooling"] = batch["crops"], batch["crop_pooling"]
    return out


def loss_fn(model: Molmo2, batch, z_loss: float = 0.0, num_sources: int = 0, dropout: tuple[float, float] = (0.0, 0.0),
            key: jax.Array | None = None, chunk: int = 256):
    """The step's loss: final hidden states -> chunked LM head + weighted cross-entropy (+ z-loss).

    `dropout` = (residual, response-only residual) rates, drawn from `key`.
    """
    drop = None
    if key is not None and any(dropout):
        response = next_token_targets(batch)[1] > 0  # Molmo2: response_mask = loss_masks > 0
        drop = ResidualDropout(key, float(dropout[0]), float(dropout[1]), response)
    hidden = model(**model_inputs(batch), return_hidden=True, dropout=drop)
    return head_cross_entropy(hidden, model.language_model.head_weight(), batch, z_loss, num_sources, chunk)


def micro_batches(batch: Mapping[str, jax.Array], n: int) -> dict[str, jax.Array]:
    """[B, ...] -> [n, B/n, ...] for gradient accumulation; micro-batch i holds crop groups i, i + n, i + 2n, ...
    (rows, when each row is its own group), so a group's rows and its crop stack stay together.

    Strided rather than contiguous, so each device's rows (the batch is sharded in contiguous slices) split
    into its own n micro-batches without moving data between devices (allenai/molmo2 splits each device's
    batch into `device_train_microbatch_size` pieces the same way).
    """
    b = next(iter(batch.values())).shape[0]
    groups = batch["crops"].shape[0] if "crops" in batch else b  # crop groups own whole rows: split by group
    if b % n or groups % n:
        raise ValueError(f"batch_size {b} ({groups} crop groups) is not divisible by grad_accum_steps {n}; "
                         "pick a divisor of the batch")

    def split(name, x):
        per = x.shape[0] // groups  # rows per crop group (row fields), 1 (crop fields)
        x = jnp.moveaxis(x.reshape(groups // n, n, per, *x.shape[1:]), 1, 0)  # [n, G/n, per, ...]
        x = x.reshape(n, groups // n * per, *x.shape[3:])  # [n, B/n, ...]
        token_field = x.ndim == 3 and not name.startswith(("crop", "pixel_values"))
        return constrain(x, (None, *batch_axes(x.ndim - 1, 1 if token_field else None)))

    return {k: split(k, v) for k, v in batch.items()}


def _accumulate_aux(total: dict, aux: dict, share: jax.Array) -> dict:
    """Add one micro-batch's metrics: ce/accuracy weighted by its share of loss weight/tokens, counts summed."""
    out = {}
    for k, v in aux.items():
        if k == "ce":
            v = v * share
        elif k == "accuracy":
            v = v * aux["loss_tokens"]  # divided by the batch's loss tokens at the end
        out[k] = total[k] + v
    return out


def make_train_step(z_loss: float = 0.0, accum_steps: int = 1, num_sources: int = 0,
                    dropout: tuple[float, float] = (0.0, 0.0), seed: int = 0):
    """A jitted step (state donated) with optional gradient accumulation over `accum_steps` micro-batches.

    Accumulation is a `lax.scan` over the micro-batches (one compiled forward/backward whose buffers are
    reused, however many there are), each micro-batch's loss divided by the WHOLE batch's loss weight, as
    allenai/molmo2 does (`batch_divisor=global_batch`): loss and gradients equal one big batch's.
    Residual dropout masks depend only on (seed, optimizer step, micro-batch), so a resumed run draws the same.
    """

    @nnx.jit(donate_argnums=(0, 1))
    def train_step(model: Molmo2, optimizer: nnx.Optimizer, batch):
        wrt = optimizer.wrt
        step_key = jax.random.fold_in(jax.random.key(seed), optimizer.step[...])
        if accum_steps == 1:
            grad_fn = nnx.value_and_grad(lambda m, b, k: loss_fn(m, b, z_loss, num_sources, dropout, k),
                                         argnums=nnx.DiffState(0, wrt), has_aux=True)
            (loss, aux), grads = grad_fn(model, batch, step_key)
        else:
            vocab = model.cfg.text.vocab_size
            total_w = jnp.maximum(_valid_targets(batch, vocab)[1].sum(), 1e-8)
            graphdef, params, rest = nnx.split(model, wrt, ...)  # pure state: the scan body cannot close over nnx

            def scaled_loss(params, b, k):
                share = jax.lax.stop_gradient(_valid_targets(b, vocab)[1].sum() / total_w)
                micro_loss, aux = loss_fn(nnx.merge(graphdef, params, rest), b, z_loss, num_sources, dropout, k)
                return micro_loss * share, (aux, share)  # = sum(ce * w) / total_w (+ z-loss likewise)

            grad_fn = jax.value_and_grad(scaled_loss, has_aux=True)

            def body(carry, xs):
                loss, aux, grads = carry
                i, mb = xs
                (micro_loss, (a, share)), g = grad_fn(params, mb, jax.random.fold_in(step_key, i))
                return (loss + micro_loss, _accumulate_aux(aux, a, share), jax.tree.map(jnp.add, grads, g)), None

            micro = micro_batches(batch, accum_steps)
            first = jax.tree.map(lambda x: x[0], micro)
            aux_shapes = jax.eval_shape(lambda p, b: scaled_loss(p, b, step_key)[1][0], params, first)
            zeros = lambda t: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), t)  # noqa: E731
            init = (jnp.zeros((), jnp.float32), zeros(aux_shapes), zeros(params))
            (loss, aux, grads), _ = jax.lax.scan(body, init, (jnp.arange(accum_steps), micro))
            aux = dict(aux, accuracy=aux["accuracy"] / jnp.maximum(aux["loss_tokens"], 1))
        grad_norm = optax.tree.norm(grads)
        optimizer.update(model, grads)
        return dict(aux, loss=loss, grad_norm=grad_norm, finite=jnp.isfinite(loss) & jnp.isfinite(grad_norm))

    return train_step


def nonfinite_count(optimizer: nnx.Optimizer) -> int:
    """Consecutive non-finite steps skipped so far (from optax.apply_if_finite's state)."""
    state = optimizer.opt_state
    return int(np.asarray(state.notfinite_count[...] if hasattr(state.notfinite_count, "__getitem__")
                          else state.notfinite_count))


def model_flops_per_step(cfg, config) -> float:
    """Training FLOPs of one step of `config`'s batch, ViT and connector included (matmuls only).

    Per packed sequence of S tokens with C crop slots of P patches and S pooling rows of W patches:
      LLM   6 * N_llm * S + 12 * L * (heads * head_dim) * S^2   (N_llm: block matrices + LM head; the
            mask is applied to a full S x S score matrix, so attention counts all of it)
      ViT   k * C * (2 * N_vit * P + 4 * L_vit * (heads * head_dim) * P^2), k = 1 frozen (forward only,
            nothing upstream needs its gradient) else 3
      conn. 6 * S * (d_in * inner * (1 + 2W) + inner * d_c + 2 * d_c * I_c + I_c * d_llm)  (one query,
            W keys and W values, the output, the SwiGLU projector; trained; W = 4, 2x2 image pooling)
    times the batch size. Checked against XLA's cost_analysis in tests/test_step_report.py.
    """
    t, v, c = cfg.text, cfg.vit, cfg.connector
    s, crops, p = config.seq_len, config.data.max_crops + config.data.get("max_frames", 0), v.num_patches
    attn = t.hidden_size * (2 * t.num_heads + 2 * t.num_kv_heads) * t.head_dim
    n_llm = t.num_layers * (attn + 3 * t.hidden_size * t.intermediate_size) + t.hidden_size * t.vocab_size
    llm = 6 * n_llm * s + 12 * t.num_layers * t.num_heads * t.head_dim * s * s
    vit_inner = v.num_heads * v.head_dim
    n_vit = v.num_layers * (4 * v.hidden_size * vit_inner + 2 * v.hidden_size * v.intermediate_size)
    n_vit += v.patch_dim * v.hidden_size
    vit = (1 if config.freeze_vit else 3) * crops * (2 * n_vit * p + 4 * v.num_layers * vit_inner * p * p)
    d_in, inner, window = c.hidden_size * len(c.feature_layers), c.num_heads * c.head_dim, 4
    n_conn = (d_in * inner * (1 + 2 * window) + inner * c.hidden_size + 2 * c.hidden_size * c.intermediate_size
              + c.intermediate_size * c.text_hidden_size)
    conn = 6 * s * n_conn
    return float(config.batch_size * (llm + vit + conn))


# Dense bf16 tensor-core peak per device (FLOP/s, no sparsity), by a substring of `jax.Device.device_kind`; the
# first match wins, so the more specific names come first. Vendors' datasheets.
PEAK_BF16_FLOPS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("H800", 989e12),
                   ("B200", 2.25e15), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L40", 181e12),
                   ("L4", 121e12), ("TPU v4", 275e12), ("TPU v5 lite", 197e12),
                   ("TPU v5", 459e12), ("TPU v6", 918e12))


def peak_flops_per_device(device=None) -> float:
    """The peak FLOP/s MFU divides by: `MOLMO2_PEAK_FLOPS` if set, else the bf16 peak of `device`'s kind
    (default: the first device); 0 (no MFU) for a CPU or an unknown kind."""
    if os.environ.get("MOLMO2_PEAK_FLOPS"):
        return float(os.environ["MOLMO2_PEAK_FLOPS"])
    kind = (device or jax.devices()[0]).device_kind
    return next((peak for name, peak in PEAK_BF16_FLOPS if name.lower() in kind.lower()), 0.0)
