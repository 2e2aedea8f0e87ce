"""Shared fixtures: a tiny random HF Molmo2 saved once per session."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="session")
def hf_molmo2(tmp_path_factory):
    """(directory, torch model) of a tiny random Molmo2 saved with `save_pretrained`."""
    from hf_reference import build_hf_molmo2

    path = str(tmp_path_factory.mktemp("hf_molmo2"))
    return path, build_hf_molmo2(path)


@pytest.fixture(scope="session")
def our_molmo2(hf_molmo2):
    """Our model converted from the tiny HF Molmo2."""
    from molmo2_jax.convert import load_hf_molmo2

    return load_hf_molmo2(hf_molmo2[0])
