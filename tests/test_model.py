"""Molmo2 end to end against transformers' Molmo2ForConditionalGeneration (fp32, tiny random model)."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hf_reference import image_inputs, jax_logits, text_inputs, torch_logits, video_inputs

from molmo2_jax import model_config as mc
from molmo2_jax.model import Molmo2, add_image_features

TOL = 1e-4


def _check(hf_molmo2, our_molmo2, inputs):
    ref = torch_logits(hf_molmo2[1], inputs)
    ours = jax_logits(our_molmo2, inputs)
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) <= TOL, np.max(np.abs(ours - ref))
    return ours


def test_text_only_logits_match_transformers(hf_molmo2, our_molmo2):
    _check(hf_molmo2, our_molmo2, text_inputs(np.random.default_rng(0)))


def test_one_image_with_several_crops_matches_transformers(hf_molmo2, our_molmo2):
    _check(hf_molmo2, our_molmo2, image_inputs(np.random.default_rng(1), n_images=1, hi_grid=(2, 2)))


def test_two_images_match_transformers(hf_molmo2, our_molmo2):
    _check(hf_molmo2, our_molmo2, image_inputs(np.random.default_rng(2), n_images=2, hi_grid=(1, 2)))


def test_video_frames_match_transformers(hf_molmo2, our_molmo2):
    _check(hf_molmo2, our_molmo2, video_inputs(np.random.default_rng(3), n_frames=4))


def test_bidirectional_vision_mask_changes_logits(hf_molmo2, our_molmo2):
    """With mm_token_type_ids the vision block is bidirectional; dropping it (causal) changes the logits."""
    inputs = image_inputs(np.random.default_rng(4))
    with_block = _check(hf_molmo2, our_molmo2, inputs)
    arrays = dict(inputs.arrays, mm_token_type_ids=np.zeros_like(inputs.arrays["mm_token_type_ids"]))
    causal = np.asarray(our_molmo2(**{k: jnp.asarray(v) for k, v in arrays.items()}))
    first_image_token = int(np.argmax(inputs.arrays["mm_token_type_ids"][0]))
    assert np.max(np.abs(causal - with_block)) > 1e-3
    # tokens before the first image see nothing bidirectional: identical either way
    np.testing.assert_allclose(causal[:, :first_image_token], with_block[:, :first_image_token], atol=1e-6)


def test_padding_mask_matches_transformers(hf_molmo2, our_molmo2):
    inputs = text_inputs(np.random.default_rng(5), batch=2, length=10)
    mask = np.ones_like(inputs.arrays["input_ids"])
    mask[1, 7:] = 0
    inputs.arrays["attention_mask"] = mask
    ref = torch_logits(hf_molmo2[1], inputs)
    ours = jax_logits(our_molmo2, inputs)
    valid = mask.astype(bool)
    assert np.max(np.abs(ours[valid] - ref[valid])) <= TOL


def test_packed_sequences_equal_separate_forwards(our_molmo2):
    """Two examples packed in one row (segment ids, restarted positions) give each example's own logits."""
    rng = np.random.default_rng(6)
    a, b = image_inputs(rng, hi_grid=(1, 1)), image_inputs(rng, hi_grid=(1, 2))
    la, lb = jax_logits(our_molmo2, a), jax_logits(our_molmo2, b)
    ta, tb = a.arrays["input_ids"].shape[1], b.arrays["input_ids"].shape[1]
    n_a = a.arrays["pixel_values"].shape[0] * a.arrays["pixel_values"].shape[1]
    packed = dict(
        input_ids=np.concatenate([a.arrays["input_ids"], b.arrays["input_ids"]], 1),
        mm_token_type_ids=np.concatenate([a.arrays["mm_token_type_ids"], b.arrays["mm_token_type_ids"]], 1),
        pixel_values=np.concatenate([a.arrays["pixel_values"], b.arrays["pixel_values"]], 0),
        image_token_pooling=np.concatenate([a.arrays["image_token_pooling"],
                                            np.where(b.arrays["image_token_pooling"] >= 0,
                                                     b.arrays["image_token_pooling"] + n_a, -1)], 0),
        segment_ids=np.asarray([[1] * ta + [2] * tb]),
        position_ids=np.asarray([list(range(ta)) + list(range(tb))]),
    )
    out = np.asarray(our_molmo2(**{k: jnp.asarray(v) for k, v in packed.items()}))
    np.testing.assert_allclose(out[:, :ta], la, atol=1e-5)
    np.testing.assert_allclose(out[:, ta:], lb, atol=1e-5)


def test_pooled_tokens_without_patches_are_skipped():
    """A pooling row of all -1 (no patch) gets no <im_patch> slot, as transformers drops it."""
    embeds = jnp.zeros((1, 4, 2))
    is_patch = jnp.asarray([[False, True, True, False]])
    vecs = jnp.asarray([[[1.0, 1.0], [9.0, 9.0], [2.0, 2.0]]])  # one crop group [G=1, N, D]
    valid = jnp.asarray([[True, False, True]])
    out = np.asarray(add_image_features(embeds, is_patch, vecs, valid))
    np.testing.assert_array_equal(out[0], [[0, 0], [1, 1], [2, 2], [0, 0]])


def test_each_crop_group_fills_only_its_own_rows():
    """Group g's k-th valid vector goes to the k-th <im_patch> of its own rows, counting from 0 per group."""
    embeds = jnp.zeros((4, 2, 1))
    is_patch = jnp.asarray([[True, False], [True, True], [False, True], [True, False]])
    vecs = jnp.asarray([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])  # [G=2, N=3, D=1]: rows 0-1, rows 2-3
    valid = jnp.asarray([[True, True, True], [False, True, True]])
    out = np.asarray(add_image_features(embeds, is_patch, vecs, valid))[..., 0]
    np.testing.assert_array_equal(out, [[1, 0], [2, 3], [0, 5], [6, 0]])


def test_bf16_forward_stays_close_to_fp32(hf_molmo2, our_molmo2):
    """bf16 compute (fp32 params) stays within 5% of the logit scale of the fp32 forward."""
    inputs = image_inputs(np.random.default_rng(7), hi_grid=(1, 2))
    ref = jax_logits(our_molmo2, inputs)
    graphdef, state = nnx.split(our_molmo2)
    bf16 = nnx.merge(nnx.graphdef(nnx.eval_shape(lambda: Molmo2(our_molmo2.cfg, dtype=jnp.bfloat16,
                                                                   rngs=nnx.Rngs(0)))), state)
    out = jax_logits(bf16, inputs)
    scale = np.max(np.abs(ref))
    assert np.max(np.abs(out - ref)) <= 0.05 * scale, (np.max(np.abs(out - ref)), scale)
    assert np.mean(np.argmax(out, -1) == np.argmax(ref, -1)) >= 0.9


@pytest.mark.parametrize("name", sorted(mc.PRESETS))
def test_presets_build_abstractly(name):
    cfg = mc.preset(name)
    model = nnx.eval_shape(lambda: Molmo2(cfg, rngs=nnx.Rngs(0)))
    assert model.language_model.embed_tokens.embedding.shape[0] == cfg.text.vocab_size + cfg.text.additional_vocab_size
    assert len(model.vision_tower.layers) == max(cfg.connector.feature_layers) + 1


def test_token_ids_are_one_object_the_config_saves_and_the_processor_uses(tmp_path):
    """Molmo2TokenIds lives in the model config: saved, reloaded, read from HF fields and older configs."""
    cfg = mc.tiny()
    assert cfg.token_ids == mc.Molmo2TokenIds.at(512)
    path = str(tmp_path / "config.json")
    cfg.save(path)
    assert mc.Molmo2Config.load(path) == cfg
    legacy = {k: v for k, v in cfg.to_dict().items() if k != "token_ids"}
    legacy.update(image_start_token_id=512, image_patch_id=514, frame_end_token_id=520)
    old = mc.Molmo2Config.from_dict(legacy)
    assert (old.token_ids.image_start, old.token_ids.image_patch, old.token_ids.frame_end) == (512, 514, 520)
    assert old.token_ids.image_low_res == 518  # unnamed ids follow the standard layout from image_start
    assert mc.Molmo2TokenIds().vision_ids == tuple(sorted(mc.Molmo2TokenIds().vision_ids))
    assert mc.Molmo2TokenIds().image_prompt not in mc.Molmo2TokenIds().vision_ids


def test_model_vision_flags_from_ids_equal_the_processors_mm_token_type_ids(our_molmo2):
    """Without mm_token_type_ids the model derives the same vision block the processor writes."""
    from molmo2_jax.processing.images import ImageConfig, image_token_ids

    ids = our_molmo2.cfg.token_ids
    tokens = np.asarray(image_token_ids((2, 2, 2, 4), ImageConfig(), ids))[None]  # [1, T]
    info = our_molmo2.mask_info(jnp.asarray(tokens))
    assert np.array_equal(np.asarray(info.vision), np.isin(tokens, ids.vision_ids))
    assert np.asarray(info.vision).sum() == tokens.size  # every image-structure token is in the block
