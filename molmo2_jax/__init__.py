"""molmo2-jax: the Molmo2 vision-language model and its training recipe in JAX / Flax NNX.

    import molmo2_jax
    model, processor = molmo2_jax.load(path)
    answer = molmo2_jax.generate(model, processor, "Point to the cats.", images=["cats.jpg"])

Names are imported on first use (PEP 562), so `import molmo2_jax.processing.formats` (the data
readers do) does not pull in JAX, and `python -m molmo2_jax.generate` runs its module once.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Molmo2": "molmo2_jax.model",
    "Molmo2Config": "molmo2_jax.model_config",
    "Molmo2Processor": "molmo2_jax.processing.processor",
    "preset": "molmo2_jax.model_config",
    "generate": "molmo2_jax.generation",
    "parse_count": "molmo2_jax.processing.formats",
    "parse_points": "molmo2_jax.processing.formats",
    "parse_tracks": "molmo2_jax.processing.formats",
    "sample_frame_times": "molmo2_jax.processing.video",
}

__all__ = sorted([*_EXPORTS, "load"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'molmo2_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load(path: str, mesh=None, dtype=None):
    """(model, processor) from our checkpoint or an HF Molmo2 directory (detected from its contents).

    The processor is None for weights without processor or tokenizer files (bring your own).
    """
    import jax.numpy as jnp

    from molmo2_jax.checkpoints.orbax_io import is_checkpoint, load_params
    from molmo2_jax.convert import load_hf_molmo2
    from molmo2_jax.processing.processor import Molmo2Processor

    dtype = dtype or jnp.float32
    model = load_params(path, mesh, dtype) if is_checkpoint(path) else load_hf_molmo2(path, mesh, dtype)
    return model, Molmo2Processor.load(path) if Molmo2Processor.can_load(path) else None
