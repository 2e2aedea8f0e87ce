"""Molmo2 training step: weighted token cross-entropy, per-component AdamW, frozen ViT, skip non-finite steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from molmo2_jax.model import Molmo2

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


def learning_rate_schedules(lrs: Mapping[str, float], warmup: int, total: int, final_frac: float = 0.1):
    """Per-component warmup + cosine decay (to `final_frac` of the peak)."""
    return {c: optax.warmup_cosine_decay_schedule(0.0, lrs[c], max(warmup, 1), max(total, warmup + 1),
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


def weighted_cross_entropy(logits: jax.Array, batch: Mapping[str, jax.Array], z_loss: float = 0.0,
                           num_sources: int = 0):
    """sum(ce * w) / sum(w) over the batch's targets, plus optional z-loss; with accuracy.

    With `num_sources` and per-token `source_ids`, also per-dataset sums of ce * w and of w (for per-dataset loss).
    """
    targets, weights = next_token_targets(batch)
    logits = logits.astype(jnp.float32)
    valid = (targets >= 0) & (targets < logits.shape[-1])  # Molmo2's extra-vocab tokens are never targets
    weights = jnp.where(valid, weights, 0.0)
    targets = jnp.clip(targets, 0, logits.shape[-1] - 1)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    ce = log_z - target_logit
    total_w = jnp.maximum(weights.sum(), 1e-8)
    loss = (ce * weights).sum() / total_w
    if z_loss:
        loss = loss + z_loss * ((log_z ** 2) * weights).sum() / total_w
    mask = weights > 0
    correct = (jnp.argmax(logits, -1) == targets) & mask
    aux = {"ce": (ce * weights).sum() / total_w, "accuracy": correct.sum() / jnp.maximum(mask.sum(), 1),
           "loss_tokens": mask.sum()}
    if num_sources and "source_ids" in batch:
        onehot = jax.nn.one_hot(batch["source_ids"], num_sources, dtype=jnp.float32)  # [B, T, D]; -1 -> zeros
        aux["source_ce_sum"] = jnp.einsum("bt,btd->d", ce * weights, onehot)
        aux["source_weight"] = jnp.einsum("bt,btd->d", weights, onehot)
    return loss, aux


def model_inputs(batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Packed batch -> Molmo2 inputs: every row's crops and pooling tables become one global table.

    Pooled rows are put in the order their <im_patch> tokens appear: by batch row, then by the example
    (segment) whose crop they pool, images before videos within an example; so packs that mix image and
    video examples in any order line up. (Needs the packer's `<pixels>_segment_ids`; without them, images
    of the whole batch come before its videos, which is right for batches of one kind.)
    """
    out = {"input_ids": batch["input_ids"], "mm_token_type_ids": batch["mm_token_type_ids"],
           "segment_ids": batch["segment_ids"], "position_ids": batch["positions"],
           "branch_ids": batch.get("branch_ids")}
    kinds = [(pix, pool) for pix, pool in (("pixel_values", "image_token_pooling"),
                                           ("pixel_values_videos", "video_token_pooling")) if pix in batch]
    if not kinds:
        return out
    width = max(batch[pool].shape[-1] for _, pool in kinds)
    pixels, tables, keys, offset = [], [], [], 0
    for kind, (pix, pool) in enumerate(kinds):
        b, crops, patches = batch[pix].shape[:3]
        local = batch[pool]  # [B, N, W] indices into the row's own crops
        rows = jnp.arange(b)[:, None, None]
        table = jnp.where(local >= 0, local + rows * crops * patches + offset, -1)
        tables.append(jnp.pad(table, ((0, 0), (0, 0), (0, width - local.shape[-1])), constant_values=-1)
                      .reshape(-1, width))
        pixels.append(batch[pix].reshape(b * crops, patches, -1))
        valid = (local >= 0).any(-1)  # [B, N]
        if pix + "_segment_ids" in batch:
            crop = jnp.max(local, -1) // patches  # the crop a window pools from
            seg = jnp.take_along_axis(batch[pix + "_segment_ids"], jnp.maximum(crop, 0), axis=1)
        else:
            seg = jnp.zeros_like(valid, jnp.int32)
        big = jnp.iinfo(jnp.int32).max
        key = jnp.where(valid, (rows[..., 0] * 65536 + seg) * 2 + kind, big)
        keys.append(key.reshape(-1))
        offset += b * crops * patches
    order = jnp.argsort(jnp.concatenate(keys), stable=True)
    out["pixel_values"] = jnp.concatenate(pixels, 0)
    out["image_token_pooling"] = jnp.concatenate(tables, 0)[order]
    return out


def loss_fn(model: Molmo2, batch, z_loss: float = 0.0, num_sources: int = 0):
    logits = model(**model_inputs(batch))
    return weighted_cross_entropy(logits, batch, z_loss, num_sources)


def make_train_step(z_loss: float = 0.0, accum_steps: int = 1, num_sources: int = 0):
    """A jitted step (state donated) with optional gradient accumulation over `accum_steps` micro-batches."""

    @nnx.jit(donate_argnums=(0, 1))
    def train_step(model: Molmo2, optimizer: nnx.Optimizer, batch):
        wrt = optimizer.wrt
        diff = nnx.DiffState(0, wrt)
        grad_fn = nnx.value_and_grad(lambda m, b: loss_fn(m, b, z_loss, num_sources), argnums=diff, has_aux=True)
        if accum_steps == 1:
            (loss, aux), grads = grad_fn(model, batch)
        else:
            micro = jax.tree.map(lambda x: x.reshape(accum_steps, x.shape[0] // accum_steps, *x.shape[1:]), batch)
            loss, aux, grads = 0.0, None, None
            for i in range(accum_steps):
                (micro_loss, a), g = grad_fn(model, jax.tree.map(lambda x: x[i], micro))
                loss = loss + micro_loss / accum_steps
                grads = g if grads is None else jax.tree.map(jnp.add, grads, g)
                aux = a if aux is None else jax.tree.map(jnp.add, aux, a)
            grads = jax.tree.map(lambda g: g / accum_steps, grads)
            aux = dict(aux, ce=aux["ce"] / accum_steps, accuracy=aux["accuracy"] / accum_steps)
        grad_norm = optax.tree.norm(grads)
        optimizer.update(model, grads)
        return dict(aux, loss=loss, grad_norm=grad_norm, finite=jnp.isfinite(loss) & jnp.isfinite(grad_norm))

    return train_step


def nonfinite_count(optimizer: nnx.Optimizer) -> int:
    """Consecutive non-finite steps skipped so far (from optax.apply_if_finite's state)."""
    state = optimizer.opt_state
    return int(np.asarray(state.notfinite_count[...] if hasattr(state.notfinite_count, "__getitem__")
                          else state.notfinite_count))
