"""Our checkpoint format: `model_config.json` + an Orbax PyTree of parameters, restorable onto any mesh."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from molmo2_jax.model import Molmo2
from molmo2_jax.model_config import Molmo2Config
from molmo2_jax.sharding import make_mesh, state_shardings

CONFIG_FILE = "model_config.json"
PARAMS_DIR = "params"


def is_checkpoint(path: str) -> bool:
    """True for a directory written by `save_params` (as opposed to an HF checkpoint)."""
    return os.path.exists(os.path.join(path, CONFIG_FILE)) and os.path.isdir(os.path.join(path, PARAMS_DIR))


def save_params(path: str, model: Molmo2) -> None:
    """Write the model's parameters (sharded arrays are written by their owners) and its config."""
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    if jax.process_index() == 0:
        model.cfg.save(os.path.join(path, CONFIG_FILE))
    state = nnx.state(model, nnx.Param)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.join(path, PARAMS_DIR), nnx.to_pure_dict(state), force=True)


def abstract_model(cfg: Molmo2Config, dtype=jnp.float32, **kw) -> Molmo2:
    """The model's structure and shapes without allocating weights."""
    return nnx.eval_shape(lambda: Molmo2(cfg, dtype=dtype, rngs=nnx.Rngs(0), **kw))


def load_params(path: str, mesh: jax.sharding.Mesh | None = None, dtype=jnp.float32, **model_kw) -> Molmo2:
    """Restore a model saved by `save_params`, laid out on `mesh` (default: FSDP over local devices)."""
    path = os.path.abspath(path)
    if not is_checkpoint(path):
        raise FileNotFoundError(f"{path} is not a molmo2-jax checkpoint (expected {CONFIG_FILE} and {PARAMS_DIR}/)")
    cfg = Molmo2Config.load(os.path.join(path, CONFIG_FILE))
    mesh = mesh or make_mesh()
    model = abstract_model(cfg, dtype, **model_kw)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    shardings = state_shardings(params, mesh)
    target = jax.tree.map(lambda v, s: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=s),
                          nnx.to_pure_dict(params), nnx.to_pure_dict(shardings))
    with ocp.StandardCheckpointer() as ckptr:
        restored = ckptr.restore(os.path.join(path, PARAMS_DIR), target)
    nnx.replace_by_pure_dict(params, restored)
    return nnx.merge(graphdef, params, rest)
