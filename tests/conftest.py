"""Shared fixtures: a tiny random HF Molmo2 saved once per session."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

# The tests compile hundreds of small programs and run each for a few steps: LLVM's optimisation passes are most of
# that compile time and nothing the tests check (XLA's own passes, sharding, buffer assignment and so the compiled
# memory figures are the same at every backend level). Set before any backend starts; subprocesses inherit it.
# Timing comparisons run without it (`production_env`).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()


def with_devices(n: int) -> str:
    """XLA_FLAGS for a subprocess with `n` fake CPU devices (the tests' flags kept)."""
    return f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={n}"


def production_env(env: dict) -> dict:
    """`env` without the tests' compile flags: for a subprocess whose speed is measured."""
    flags = env.get("XLA_FLAGS", "").replace(TEST_XLA_FLAGS, "").strip()
    return {k: v for k, v in env.items() if k != "XLA_FLAGS"} | ({"XLA_FLAGS": flags} if flags else {})


@pytest.fixture(scope="session", autouse=True)
def subprocess_compilation_cache(tmp_path_factory):
    """One persistent XLA compilation cache for every `python -m molmo2_jax.main` the tests start.

    Most subprocess tests train the same tiny programs; the first run compiles and writes, later runs load the
    executables (bit-identical losses: the same compiled code). Only subprocesses read it (they inherit the
    environment); this process imported jax already, so its own config is unchanged. Processes that a test kills
    or starves of disk must not write here (a torn entry): they get `read_only_cache_env`.
    """
    import jax  # noqa: F401  (imported before the variables are set: they reach subprocesses only)

    path = str(tmp_path_factory.mktemp("xla_cache"))
    old = {k: os.environ.get(k) for k in CACHE_ENV}
    os.environ.update({"JAX_COMPILATION_CACHE_DIR": path, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
    yield path
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


CACHE_ENV = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")


def read_only_cache_env(env: dict) -> dict:
    """`env` for a subprocess that is killed or hits a full disk: it reads the shared cache but never writes it."""
    return dict(env, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="1e9")


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


@pytest.fixture(scope="session")
def tiny_inference_dir(tmp_path_factory):
    """A random tiny model exported with its processor (SentencePiece tokenizer), as training leaves it."""
    from flax import nnx

    from molmo2_jax import model_config as mc
    from molmo2_jax.data import fit_to_token_ids
    from molmo2_jax.checkpoints.orbax_io import save_params
    from molmo2_jax.model import Molmo2
    from molmo2_jax.processing.images import ImageConfig
    from molmo2_jax.processing.processor import Molmo2Processor
    from molmo2_jax.processing.tokenizer import SentencePieceTokenizer, train_sentencepiece

    d = tmp_path_factory.mktemp("inference")
    sp = train_sentencepiece(["Point to the red circles.", "There are 3 blue squares."] * 50, str(d / "tokenizer"),
                             vocab_size=300)
    tok = SentencePieceTokenizer(sp)
    from molmo2_jax.processing.video import VideoConfig

    proc = Molmo2Processor(tok, ImageConfig(base_size=56, patch_size=7, max_crops=2, overlap_margins=(1, 1)),
                           VideoConfig(base_size=56, patch_size=7, max_frames=4))
    cfg = fit_to_token_ids(mc.tiny(), proc.token_ids)
    save_params(str(d / "model"), Molmo2(cfg, rngs=nnx.Rngs(0)))
    proc.save(str(d / "model"), sp)
    return d


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A started local stand-in HF hub (tests/hub_server.py); HF_ENDPOINT and the client point at it.

    Add repos with `hub.datasets["allenai/x"] = {"data/train-00000-of-00001.parquet": bytes}` and
    image URLs with `hub.web["a.jpg"] = bytes` (`hub.web_url("a.jpg")`). Subprocesses inherit the
    environment (HF_ENDPOINT, HF_HOME under tmp_path, telemetry off).
    """
    from hub_server import StandInHub

    server = StandInHub().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:  # the client reads HF_ENDPOINT at import: repoint an already imported one
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.url + "/{repo_id}/resolve/{revision}/{filename}")
    except ImportError:
        pass
    yield server
    server.stop()
