"""Every released Molmo2 LLM family against transformers 5.23 (fp32): Qwen3-style pre-norm (tied / untied,
RoPE theta 5e6 as in Molmo2-4B; tied Qwen3 in test_qwen3.py) and OLMo3-style post-norm with full-width
QK-norm, MHA and YaRN on some layers (Molmo2-O-7B); plus the RoPE types transformers' rope utils compute,
table for table."""

import numpy as np
import pytest
from hf_reference import build_hf_molmo2, image_inputs, jax_logits, text_inputs, torch_logits
from test_generate import _hf_generate

from molmo2_jax import model_config as mc
from molmo2_jax.convert import load_hf_molmo2
from molmo2_jax.generation import generate_tokens
from molmo2_jax.qwen3 import rope_inv_freq

YARN = dict(rope_type="yarn", rope_theta=10000.0, factor=8.0, original_max_position_embeddings=64, beta_fast=32,
            beta_slow=1, attention_factor=1.2079441541679836)
FAMILIES = {
    # transformers never ties Molmo2's lm_head (its embedding has 128 extra rows), so the tied Qwen3 case is
    # Qwen3ForCausalLM in test_qwen3.py; here the Molmo2-4B RoPE theta.
    "qwen3_theta5e6": dict(rope_parameters=dict(rope_type="default", rope_theta=5e6)),
    "olmo3_postnorm_yarn_every_2nd": dict(norm_after=True, qk_norm_type="olmo", num_key_value_heads=4,
                                          num_hidden_layers=4, rope_scaling_layers=[1, 3], rope_parameters=YARN),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tmp_path_factory):
    path = str(tmp_path_factory.mktemp(request.param))
    ref = build_hf_molmo2(path, seed=3, **FAMILIES[request.param])
    return ref, load_hf_molmo2(path)


def test_family_logits_match_transformers(family):
    ref, ours = family
    for inputs in (text_inputs(np.random.default_rng(0), length=40), image_inputs(np.random.default_rng(1))):
        assert np.max(np.abs(jax_logits(ours, inputs) - torch_logits(ref, inputs))) <= 1e-4


def test_family_greedy_tokens_match_transformers(family):
    ref, ours = family
    inputs = text_inputs(np.random.default_rng(5), batch=1, length=9)
    np.testing.assert_array_equal(generate_tokens(ours, inputs.arrays, 24), _hf_generate(ref, inputs))


def test_converted_config_keeps_family_settings(family):
    ref, ours = family
    text = ours.cfg.text
    assert text.norm_after == ref.config.text_config.norm_after
    assert text.tie_word_embeddings == ref.config.text_config.tie_word_embeddings
    if text.norm_after:
        assert text.rope_scaling_layers == (1, 3) and dict(text.rope_scaling)["rope_type"] == "yarn"


@pytest.mark.parametrize("params", [
    YARN,
    dict(YARN, attention_factor=None, mscale=1.0, mscale_all_dim=0.5),
    dict(rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=32, truncate=False),
    dict(rope_type="linear", rope_theta=10000.0, factor=2.0),
    dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
         original_max_position_embeddings=64),
], ids=["yarn", "yarn_mscale", "yarn_untruncated", "linear", "llama3"])
def test_rope_tables_match_transformers(params):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = {k: v for k, v in params.items() if v is not None}
    hf = LlamaConfig(hidden_size=64, num_attention_heads=4, head_dim=16, max_position_embeddings=256,
                     rope_parameters=dict(params))
    want_inv, want_scale = ROPE_INIT_FUNCTIONS[params["rope_type"]](hf, None)
    theta = params.pop("rope_theta")
    text = mc.TextConfig(head_dim=16, rope_theta=theta, rope_scaling=tuple(sorted(params.items())),
                         max_position_embeddings=256)
    got = rope_inv_freq(text)
    np.testing.assert_allclose(np.asarray(got.inv_freq), want_inv.numpy(), rtol=1e-6)
    assert abs(float(got.scale) - want_scale) < 1e-6


def test_rope_outside_scaling_layers_is_unscaled():
    text = mc.preset("molmo2-o-7b").text
    scaled, plain = rope_inv_freq(text, 3), rope_inv_freq(text, 0)
    assert float(scaled.scale) == pytest.approx(1.2079441541679836) and float(plain.scale) == 1.0
    np.testing.assert_allclose(np.asarray(plain.inv_freq), 1 / 500000.0 ** (np.arange(0, 128, 2) / 128), rtol=1e-5)
    assert not np.allclose(np.asarray(scaled.inv_freq), np.asarray(plain.inv_freq))


def test_released_presets_follow_their_backbones():
    four, eight, olmo = (mc.preset(n).text for n in ("molmo2-4b", "molmo2-8b", "molmo2-o-7b"))
    assert (four.rope_theta, four.tie_word_embeddings) == (5e6, True)
    assert (eight.rope_theta, eight.tie_word_embeddings) == (1e6, False)
    assert (olmo.vocab_size, olmo.additional_vocab_size, olmo.num_kv_heads, olmo.num_heads) == (100_278, 128, 32, 32)
    assert olmo.norm_after and olmo.qk_norm_type == "olmo"
    assert olmo.rope_scaling_layers == tuple(range(3, 32, 4))
