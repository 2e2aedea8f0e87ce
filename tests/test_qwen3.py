"""Our Qwen3 decoder against transformers' Qwen3ForCausalLM, and the KV-cache path against a full forward."""

import jax.numpy as jnp
import numpy as np
import pytest

from molmo2_jax.attention import MaskInfo
from molmo2_jax.convert import load_hf_qwen3
from molmo2_jax.qwen3 import KVCache


def _qwen3_config(tied: bool):
    from transformers import Qwen3Config

    return Qwen3Config(vocab_size=257, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=12, rope_theta=1_000_000.0,
                       tie_word_embeddings=tied, max_position_embeddings=512)


def save_tiny_qwen3(path, tied: bool, seed: int = 0):
    import torch
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(_qwen3_config(tied)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(path)
    return model


def _forward(model, ids):
    b, t = ids.shape
    info = MaskInfo(jnp.ones((b, t), jnp.int32), jnp.broadcast_to(jnp.arange(t), (b, t)), jnp.zeros((b, t), bool))
    hidden, _ = model(model.embed(jnp.asarray(ids)), info)
    return np.asarray(model.logits(hidden))


@pytest.mark.parametrize("tied", [True, False])
def test_qwen3_logits_match_transformers(tmp_path, tied):
    import torch

    ref_model = save_tiny_qwen3(str(tmp_path), tied)
    ids = np.random.default_rng(0).integers(0, 257, (2, 17))
    with torch.no_grad():
        ref = ref_model(torch.from_numpy(ids)).logits.numpy()
    ours = _forward(load_hf_qwen3(str(tmp_path)), ids)
    assert np.max(np.abs(ours - ref)) <= 1e-4


def test_kv_cache_decode_equals_full_forward(tmp_path):
    save_tiny_qwen3(str(tmp_path), tied=True)
    model = load_hf_qwen3(str(tmp_path))
    ids = np.random.default_rng(1).integers(0, 257, (2, 12))
    full = _forward(model, ids)
    cache = KVCache.init(model.cfg, batch=2, length=16)
    prefill = 5
    steps = [(0, prefill)] + [(i, i + 1) for i in range(prefill, 12)]
    for start, stop in steps:
        t = stop - start
        info = MaskInfo(jnp.ones((2, t), jnp.int32), jnp.broadcast_to(jnp.arange(start, stop), (2, t)),
                        jnp.zeros((2, t), bool))
        hidden, cache = model(model.embed(jnp.asarray(ids[:, start:stop])), info, cache=cache)
        step_logits = np.asarray(model.logits(hidden))
        assert np.max(np.abs(step_logits - full[:, start:stop])) <= 1e-4
    assert int(cache.index) == 12
