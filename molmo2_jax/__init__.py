"""molmo2-jax: the Molmo2 vision-language model and its training recipe in JAX / Flax NNX."""

from molmo2_jax import generate  # a callable module: molmo2_jax.generate(model, processor, prompt, images=...)
from molmo2_jax.model import Molmo2
from molmo2_jax.model_config import Molmo2Config, get_config
from molmo2_jax.processing.formats import parse_points, parse_tracks
from molmo2_jax.processing.video import sample_frame_times

__all__ = ["Molmo2", "Molmo2Config", "generate", "get_config", "load", "parse_points", "parse_tracks",
           "sample_frame_times"]


def load(path: str, mesh=None, dtype=None):
    """(model, processor) from our checkpoint or an HF Molmo2 directory (detected from its contents)."""
    import jax.numpy as jnp

    from molmo2_jax.checkpoints.orbax_io import is_checkpoint, load_params
    from molmo2_jax.convert import load_hf_molmo2

    dtype = dtype or jnp.float32
    model = load_params(path, mesh, dtype) if is_checkpoint(path) else load_hf_molmo2(path, mesh, dtype)
    import os

    from molmo2_jax.data import PROCESSOR_FILE, load_processor
    from molmo2_jax.processing.processor import Molmo2Processor

    if os.path.exists(os.path.join(path, PROCESSOR_FILE)):
        return model, load_processor(path)
    if os.path.exists(os.path.join(path, "tokenizer.json")):
        return model, Molmo2Processor.from_pretrained(path)
    return model, None  # weights without tokenizer files: the caller brings its own processor
