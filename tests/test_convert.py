"""Checkpoint conversion: both Molmo2 key styles, sharded files, fresh nanoMolmo2, export, clear errors."""

import json
import os
import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from hf_reference import image_inputs, jax_logits, text_inputs, torch_logits
from safetensors import safe_open
from safetensors.numpy import save_file

from molmo2_jax.checkpoints.hf import ConversionError
from molmo2_jax.checkpoints.orbax_io import load_params, save_params
from molmo2_jax.convert import export_hf, fresh_from_qwen3_siglip, load_hf_molmo2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tensors(path):
    out = {}
    with safe_open(os.path.join(path, "model.safetensors"), "np") as f:
        for k in f.keys():
            out[k] = f.get_tensor(k)
    return out


def _rewrite(src, dst, tensors):
    os.makedirs(dst, exist_ok=True)
    shutil.copy(os.path.join(src, "config.json"), dst)
    save_file(tensors, os.path.join(dst, "model.safetensors"))
    return dst


def test_transformers_key_style_converts(tmp_path, hf_molmo2):
    """A checkpoint stored under transformers' own names (state_dict) gives the same logits."""
    path, ref = hf_molmo2
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    dst = _rewrite(path, str(tmp_path / "tf_names"), sd)
    inputs = image_inputs(np.random.default_rng(0))
    assert np.max(np.abs(jax_logits(load_hf_molmo2(dst), inputs) - torch_logits(ref, inputs))) <= 1e-4


def test_hub_embedding_split_and_sharded_index_convert(tmp_path, hf_molmo2):
    """Hub layout: embedding split as vocab + extra rows, weights in two shards behind an index."""
    path, ref = hf_molmo2
    tensors = _tensors(path)
    full = np.concatenate([tensors.pop("model.transformer.wte.embedding"),
                           tensors.pop("model.transformer.wte.new_embedding")])
    tensors["model.transformer.wte.embedding"] = full[:300]
    tensors["model.transformer.wte.new_embedding"] = full[300:]
    dst = str(tmp_path / "hub")
    os.makedirs(dst)
    shutil.copy(os.path.join(path, "config.json"), dst)
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for fname, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, os.path.join(dst, fname))
    with open(os.path.join(dst, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": {k: fn for fn, ks in shards.items() for k in ks}}, f)
    inputs = image_inputs(np.random.default_rng(1))
    assert np.max(np.abs(jax_logits(load_hf_molmo2(dst), inputs) - torch_logits(ref, inputs))) <= 1e-4


@pytest.mark.parametrize("damage, needle", [
    ("drop", "missing tensor"),
    ("reshape", "has shape"),
    ("extra", "unexpected tensor"),
])
def test_damaged_checkpoint_errors_name_the_tensor(tmp_path, hf_molmo2, damage, needle):
    path, _ = hf_molmo2
    tensors = _tensors(path)
    key = "model.vision_backbone.image_pooling_2d.wq.weight"
    if damage == "drop":
        tensors.pop(key)
    elif damage == "reshape":
        tensors[key] = tensors[key][:, :-1].copy()
    else:
        tensors["model.vision_backbone.surprise.weight"] = np.zeros((2, 2), np.float32)
        key = "model.vision_backbone.surprise.weight"
    dst = _rewrite(path, str(tmp_path / damage), tensors)
    with pytest.raises(ConversionError) as err:
        load_hf_molmo2(dst)
    assert needle in str(err.value)
    assert (key if damage != "drop" else "image_pooling_2d.q_proj.weight") in str(err.value)


def test_export_round_trip_loads_in_transformers(tmp_path, our_molmo2):
    from transformers import Molmo2ForConditionalGeneration

    out = str(tmp_path / "exported")
    export_hf(our_molmo2, out)
    reloaded = Molmo2ForConditionalGeneration.from_pretrained(out).eval()
    for inputs in (image_inputs(np.random.default_rng(2), n_images=2), text_inputs(np.random.default_rng(3))):
        assert np.max(np.abs(torch_logits(reloaded, inputs) - jax_logits(our_molmo2, inputs))) <= 1e-4


def test_orbax_checkpoint_round_trip(tmp_path, our_molmo2):
    save_params(str(tmp_path / "ckpt"), our_molmo2)
    restored = load_params(str(tmp_path / "ckpt"))
    inputs = image_inputs(np.random.default_rng(4))
    np.testing.assert_array_equal(jax_logits(restored, inputs), jax_logits(our_molmo2, inputs))


def test_cli_converts_and_exports(tmp_path, hf_molmo2):
    path, ref = hf_molmo2
    env = dict(os.environ, PYTHONPATH=ROOT)
    ours = str(tmp_path / "ours")
    back = str(tmp_path / "back")
    for args in (["--hf", path, "--out", ours], ["--to-hf", "--checkpoint", ours, "--out", back]):
        run = subprocess.run([sys.executable, "-m", "molmo2_jax.convert", *args], env=env, capture_output=True,
                             text=True, cwd=ROOT)
        assert run.returncode == 0, run.stderr
    inputs = image_inputs(np.random.default_rng(5))
    assert np.max(np.abs(jax_logits(load_params(ours), inputs) - torch_logits(ref, inputs))) <= 1e-4
    assert os.path.exists(os.path.join(back, "model.safetensors"))


def test_cli_reports_missing_checkpoint(tmp_path):
    run = subprocess.run([sys.executable, "-m", "molmo2_jax.convert", "--hf", str(tmp_path), "--out",
                          str(tmp_path / "o")], env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                         text=True, cwd=ROOT)
    assert run.returncode == 1 and "config.json" in run.stderr


def test_fresh_nano_molmo2_from_qwen3_and_siglip2(tmp_path):
    """Fresh model: text logits equal Qwen3's (embedding grown by 128 rows, head untied from embedding)."""
    import torch
    from test_qwen3 import save_tiny_qwen3
    from test_vit import save_tiny_siglip2

    qwen = save_tiny_qwen3(str(tmp_path / "qwen3"), tied=True)
    save_tiny_siglip2(str(tmp_path / "siglip2"))
    model = fresh_from_qwen3_siglip(str(tmp_path / "qwen3"), str(tmp_path / "siglip2"), vit_layers=(-1, 1))
    cfg = model.cfg
    assert cfg.text.embedding_rows == 257 + 128 and not cfg.text.tie_word_embeddings
    assert cfg.connector.feature_layers == (3, 1) and cfg.vit.num_layers == 4
    ids = np.random.default_rng(6).integers(0, 257, (1, 9))
    with torch.no_grad():
        ref = qwen(torch.from_numpy(ids)).logits.numpy()
    ours = np.asarray(model(jnp.asarray(ids)))
    assert np.max(np.abs(ours - ref)) <= 1e-4
    head = np.asarray(model.language_model.lm_head.kernel[...])
    emb = np.asarray(model.language_model.embed_tokens.embedding[...])
    np.testing.assert_array_equal(head.T, emb[:257])
