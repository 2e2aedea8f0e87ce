"""LoRA fine-tuning with qwix: adapters on chosen dense layers, adapter-only checkpoints, merge back into W.

qwix (`apply_lora_to_model`) intercepts the `jax.lax.dot_general` that each `nnx.Linear` (`layers.dense`:
q/k/v/o projections, SwiGLU gate/up/down, connector and ViT linears) runs on its kernel, and adds
`x @ A @ B * alpha / rank` with `<kernel>_lora_a` [in, rank] (he-uniform) and `<kernel>_lora_b` [rank, out]
(zeros) as `nnx.LoRAParam`s on that module. Attention itself (the q·k / p·v einsums in attention.py,
the blockwise / ring kernels) multiplies activations, not weights, so qwix leaves it alone; the LM head
(`Qwen3.logits`, an einsum on `head_weight()`) and the connector's attention pooling are einsums on a
weight and can be targeted too, but are not in the default targets.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# module paths qwix matches (re.fullmatch on "/"-joined NNX paths): every decoder attention + MLP linear
DECODER_TARGETS = r"language_model/layers/\d+/(self_attn/[qkvo]_proj|mlp/(gate|up|down)_proj)"
COMPONENT_PATHS = {"vit": "vision_tower", "connector": "connector", "llm": "language_model"}


def apply_lora(model, *, rank: int, alpha: float, targets: str = DECODER_TARGETS, example_inputs: dict,
               seed: int = 0, weight_qtype: str | None = None):
    """Molmo2 with LoRA adapters on the linears whose path matches `targets` (one forward on `example_inputs`).

    `weight_qtype` (e.g. "int8", "nf4") quantizes the frozen base kernels (QLoRA). Returns qwix's copy of
    the model (a subclass whose `__call__` is intercepted); the input model is left unchanged.
    """
    import qwix

    if rank < 1:
        raise ValueError(f"lora.rank must be >= 1, got {rank}")
    from unittest import mock

    from molmo2_jax.qwen3 import Qwen3

    rule = qwix.LoraRule(module_path=targets, rank=rank, alpha=float(alpha), weight_qtype=weight_qtype)
    # qwix creates adapters on the module that runs the matmul: its one init forward must call the real
    # decoder blocks, not the copies the scanned forward merges from layer 0's graph and each layer's state.
    # Afterwards every block carries the same adapter attributes, so the scanned forward stacks them too.
    with mock.patch.object(Qwen3, "_run_layers", _run_real_blocks):
        lora = qwix.apply_lora_to_model(model, qwix.LoraProvider([rule]), rngs=nnx.Rngs(seed), **example_inputs)
    n = len(adapted_modules(lora))
    if n == 0:
        raise ValueError(f"lora.targets {targets!r} matches no dense layer of the model; paths look like "
                         "language_model/layers/0/self_attn/q_proj (see molmo2_jax/lora.py)")
    lora.lora_scale = float(alpha) / rank  # qwix adds delta * alpha / rank
    return lora


def _run_real_blocks(self, x, info, ropes, impl, dropout):
    """Qwen3's decoder blocks called one by one (qwix's init forward only; no dropout, no remat)."""
    from molmo2_jax.qwen3 import Rope

    for i, block in enumerate(self.layers):
        x, _ = block(x, info, Rope(ropes.inv_freq[i], ropes.scale[i]), impl, None, None)
    return x


def adapted_modules(model) -> dict[str, nnx.Module]:
    """'/'-joined path -> each module holding a `<param>_lora_a`/`_lora_b` pair."""
    out = {}
    for path, module in nnx.iter_modules(model):
        if any(isinstance(v, nnx.LoRAParam) for v in vars(module).values()):
            out["/".join(map(str, path))] = module
    return out


def lora_delta(a: jax.Array, b: jax.Array, shape: tuple[int, ...], scale: float) -> jax.Array:
    """The weight update of one adapter: A [.., in, r] @ B [.., r, out] * alpha / rank, in the kernel's shape."""
    return (jnp.matmul(a.astype(jnp.float32), b.astype(jnp.float32)) * scale).reshape(shape)


def merge_lora(model):
    """A plain Molmo2 (no adapters, not intercepted) with every adapted kernel W replaced by W + A·B·alpha/rank."""
    from molmo2_jax.model import Molmo2

    scale = model.lora_scale
    merged = nnx.clone(model)
    for _, module in adapted_modules(merged).items():
        for name in [k for k, v in vars(module).items() if isinstance(v, nnx.LoRAParam) and k.endswith("_lora_a")]:
            base = name[: -len("_lora_a")]
            w = getattr(module, base)
            a, b = getattr(module, name)[...], getattr(module, base + "_lora_b")[...]
            if a.shape[-2] * b.shape[-1] != int(np.prod(w.shape)) or w.ndim != 2:
                raise NotImplementedError(f"merging a LoRA adapter of a {w.shape} weight ({name}) is not supported")
            w[...] = (w[...].astype(jnp.float32) + lora_delta(a, b, w.shape, scale)).astype(w.dtype)
            delattr(module, name)
            delattr(module, base + "_lora_b")
            if hasattr(module, base + "_lora_einsum_str"):
                delattr(module, base + "_lora_einsum_str")
    for _, module in nnx.iter_modules(merged):  # qwix's bookkeeping attributes
        for attr in ("qwix_path", "disable_quant_stats_update", "qwix_rngs"):
            if attr in vars(module):
                delattr(module, attr)
    merged.__class__ = Molmo2
    del merged.lora_scale
    return merged


def trainable(config):
    """What the optimizer updates: adapters only (LoRA), or the Params of the components not frozen."""
    if config.lora.rank:
        return nnx.LoRAParam
    frozen = [COMPONENT_PATHS[c] for c in ("vit", "connector", "llm") if config.freeze[c]]
    if config.get("freeze_vit") and COMPONENT_PATHS["vit"] not in frozen:
        frozen.append(COMPONENT_PATHS["vit"])
    return nnx.All(nnx.Param, *(nnx.Not(nnx.PathContains(p)) for p in frozen))


def check_targets(targets: str) -> None:
    """A one-line error for a `lora.targets` that is not a regular expression."""
    try:
        re.compile(targets)
    except re.error as e:
        raise ValueError(f"lora.targets {targets!r} is not a regular expression ({e})") from None


def example_inputs(batch: dict) -> dict:
    """Molmo2 inputs of one packed batch (what qwix's one forward runs on to create the adapters)."""
    from molmo2_jax.main import _MODEL_KEYS
    from molmo2_jax.train import model_inputs

    out = model_inputs({k: jnp.asarray(v) for k, v in batch.items() if k in _MODEL_KEYS})
    return {k: v for k, v in out.items() if v is not None}


def lora_from_config(config, model, data):
    """configs/finetune.py's `lora.*` applied to `model`, the adapters created on the first batch of `data`."""
    check_targets(config.lora.targets)
    batch = next(iter(data))
    return apply_lora(model, rank=config.lora.rank, alpha=config.lora.alpha, targets=config.lora.targets,
                      example_inputs=example_inputs(batch), seed=config.seed,
                      weight_qtype=config.lora.get("weight_qtype") or None)


ADAPTER_CONFIG = "lora.json"


def save_adapters(path: str, model) -> None:
    """The adapters alone (Orbax, MBs) and their scale; `load_adapters` puts them back on a LoRA model."""
    import json
    import os

    import orbax.checkpoint as ocp

    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.join(path, "adapters"), nnx.to_pure_dict(nnx.state(model, nnx.LoRAParam)), force=True)
    if jax.process_index() == 0:
        with open(os.path.join(path, ADAPTER_CONFIG), "w") as f:
            json.dump({"scale": model.lora_scale, "modules": sorted(adapted_modules(model))}, f, indent=1)


def load_adapters(path: str, model) -> None:
    """Restore adapters saved by `save_adapters` into a model with the same LoRA targets/rank."""
    import os

    import orbax.checkpoint as ocp

    state = nnx.state(model, nnx.LoRAParam)
    with ocp.StandardCheckpointer() as ckptr:
        restored = ckptr.restore(os.path.join(os.path.abspath(path), "adapters"), nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(model, state)
