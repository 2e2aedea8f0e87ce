"""Load `get_config()` files (configs/*.py) outside absl flags, e.g. for evaluation."""

from __future__ import annotations

import importlib.util
import os
import sys

import ml_collections


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """Import a config file and return its `get_config()`; the repo root joins sys.path for `configs.*`."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path} not found")
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    if root not in sys.path:
        sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location("_molmo2_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path} has no get_config()")
    return module.get_config()
