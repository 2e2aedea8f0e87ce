"""Our ViT against transformers' SigLIP2 and SigLIP vision towers (selected-layer hidden states)."""

import jax.numpy as jnp
import numpy as np
import pytest

from molmo2_jax.convert import load_hf_siglip_vit


def _randomise(model, seed):
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def save_tiny_siglip2(path, num_patches=16, seed=0):
    from transformers import Siglip2VisionConfig, Siglip2VisionModel

    cfg = Siglip2VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                              patch_size=14, num_patches=num_patches)
    model = _randomise(Siglip2VisionModel(cfg), seed)
    model.save_pretrained(path)
    return model


def save_tiny_siglip(path, seed=0):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    cfg = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                             patch_size=14, image_size=56)
    model = _randomise(SiglipVisionModel(cfg), seed)
    model.save_pretrained(path)
    return model


def test_siglip2_selected_layers_match_transformers(tmp_path):
    import torch

    ref = save_tiny_siglip2(str(tmp_path))
    patches = np.random.default_rng(0).uniform(-1, 1, (3, 16, 588)).astype(np.float32)
    with torch.no_grad():
        out = ref(pixel_values=torch.from_numpy(patches), pixel_attention_mask=torch.ones(3, 16, dtype=torch.long),
                  spatial_shapes=torch.tensor([[4, 4]] * 3), output_hidden_states=True)
    ours = load_hf_siglip_vit(str(tmp_path), num_layers=3)
    feats = ours(jnp.asarray(patches), (2, 0))
    for block, got in zip((2, 0), feats):
        want = out.hidden_states[block + 1].numpy()
        assert np.max(np.abs(np.asarray(got) - want)) <= 1e-4
    assert len(ours.layers) == 3  # only the blocks that are needed are built


def test_siglip_conv_patch_embedding_matches_transformers(tmp_path):
    import torch

    ref = save_tiny_siglip(str(tmp_path))
    images = np.random.default_rng(1).uniform(-1, 1, (2, 3, 56, 56)).astype(np.float32)
    with torch.no_grad():
        out = ref(pixel_values=torch.from_numpy(images), output_hidden_states=True)
    # our crops are patchified row-major with (row, col, channel) inside each patch
    patches = images.transpose(0, 2, 3, 1).reshape(2, 4, 14, 4, 14, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 16, -1)
    ours = load_hf_siglip_vit(str(tmp_path))
    (got,) = ours(jnp.asarray(patches), (3,))
    assert np.max(np.abs(np.asarray(got) - out.hidden_states[4].numpy())) <= 1e-4


@pytest.mark.parametrize("num_patches", [4, 9])
def test_siglip2_position_table_is_resized_like_transformers(tmp_path, num_patches):
    """NaFlex position tables of another grid are resampled the way SigLIP2 does at run time."""
    import torch

    from molmo2_jax.checkpoints.hf import _resize_positions

    ref = save_tiny_siglip2(str(tmp_path), num_patches=num_patches)
    embeddings = getattr(ref, "vision_model", ref).embeddings
    table = embeddings.position_embedding.weight.detach()
    side = int(num_patches ** 0.5)
    want = embeddings.resize_positional_embeddings(
        table.reshape(side, side, -1), torch.tensor([[4, 4]]), max_length=16)[0].numpy()
    got = _resize_positions(table.numpy(), (4, 4))
    assert np.max(np.abs(got - want)) <= 1e-5


def test_from_scratch_positions_start_as_a_2d_sincos_table():
    """A fresh ViT's learned positions start at unit scale and encode (row, col): patches in one row share the
    row quarters, patches in one column the column quarters, and every patch's vector is distinct."""
    from flax import nnx

    from molmo2_jax.model_config import tiny
    from molmo2_jax.vit import VisionTransformer, sincos_2d

    cfg = tiny().vit
    vit = VisionTransformer(cfg, rngs=nnx.Rngs(0))
    table = np.asarray(vit.positional_embedding[...])
    side = cfg.image_size[0] // cfg.patch_size
    assert table.shape == (cfg.num_patches, cfg.hidden_size)
    np.testing.assert_allclose(table, np.asarray(sincos_2d(side, side, cfg.hidden_size)))
    q = cfg.hidden_size // 4
    grid = table.reshape(side, side, cfg.hidden_size)
    np.testing.assert_allclose(grid[0, :, :2 * q], grid[5, :, :2 * q])  # same column -> same column quarters
    np.testing.assert_allclose(grid[:, 0, 2 * q:], grid[:, 3, 2 * q:])  # same row -> same row quarters
    assert np.abs(grid[0, 0] - grid[0, 1]).max() > 0.1 and np.abs(grid[0, 0] - grid[1, 0]).max() > 0.1
    norms = np.linalg.norm(table, axis=1)
    np.testing.assert_allclose(norms, np.sqrt(cfg.hidden_size / 2), rtol=1e-5)  # each sin^2 + cos^2 pair is 1
    distances = np.linalg.norm(table[:, None] - table[None], axis=-1) + np.eye(len(table))
    assert distances.min() > 1e-3
    odd = np.asarray(sincos_2d(3, 5, 10))  # widths not divisible by 4 are zero-padded
    assert odd.shape == (15, 10) and np.all(odd[:, 8:] == 0)
