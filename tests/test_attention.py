"""Molmo2 attention masks and the attention kernels."""

import jax
import jax.numpy as jnp
import numpy as np

from molmo2_jax.attention import MaskInfo, attend, molmo2_mask


def _info(seg, vision, pos=None, branch=None):
    seg = jnp.asarray([seg])
    pos = jnp.asarray([pos]) if pos is not None else jnp.arange(seg.shape[1])[None]
    return MaskInfo(seg, pos, jnp.asarray([vision], bool), None if branch is None else jnp.asarray([branch]))


def test_vision_tokens_attend_bidirectionally_across_images_text_stays_causal():
    #        text img img text img text
    info = _info([1, 1, 1, 1, 1, 1], [0, 1, 1, 0, 1, 0])
    m = np.asarray(molmo2_mask(info, info))[0, 0]
    assert m[1, 2] and m[2, 1]  # within an image, both ways
    assert m[1, 4] and m[4, 1]  # across images (one block per sequence)
    assert not m[0, 1] and not m[3, 5]  # text never sees the future
    assert m[5, 0] and m[3, 3]


def test_segments_never_attend_to_each_other_and_padding_is_masked():
    info = _info([1, 1, 2, 2, 0], [1, 1, 1, 1, 0], pos=[0, 1, 0, 1, 0])
    m = np.asarray(molmo2_mask(info, info))[0, 0]
    assert m[0, 1] and m[1, 0] and m[2, 3]
    assert not m[0, 2] and not m[2, 1]  # vision tokens of different examples stay apart
    assert not m[4].any() and not m[:, 4].any()


def test_message_tree_branches_see_prefix_and_themselves_only():
    #          prefix  branch1  branch2
    info = _info([1] * 5, [0] * 5, pos=[0, 1, 2, 2, 3], branch=[-1, -1, 0, 1, 1])
    m = np.asarray(molmo2_mask(info, info))[0, 0]
    assert m[2, 0] and m[2, 1] and m[3, 1]
    assert not m[3, 2] and not m[4, 2]  # branch 1 does not see branch 0
    assert m[4, 3]


def test_reference_attention_matches_jax_dot_product_attention_with_gqa():
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.normal(size=(2, 7, 4, 8)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(2, 7, 2, 8)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(2, 7, 2, 8)), jnp.float32)
    info = MaskInfo(jnp.ones((2, 7), jnp.int32), jnp.broadcast_to(jnp.arange(7), (2, 7)),
                    jnp.asarray(rng.random((2, 7)) < 0.4))
    mask = molmo2_mask(info, info)
    want = jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="xla")
    np.testing.assert_allclose(np.asarray(attend(q, k, v, mask, "xla")), np.asarray(want), atol=1e-5)
    np.testing.assert_allclose(np.asarray(attend(q, k, v, mask, "dot_product")), np.asarray(want), atol=1e-5)


def test_processing_branch_ids_let_the_answer_see_the_prompt():
    """A one-conversation example from processing (prefix -1, answer 0) is plain causal attention."""
    from molmo2_jax.processing.chat import UNWEIGHTED, encode_training_example
    from molmo2_jax.processing.tokenizer import QwenTokenizer

    text = encode_training_example(QwenTokenizer(), [[{"role": "user", "content": "Hi"},
                                                      {"role": "assistant", "content": "Hello there"}]], 0, 0,
                                   UNWEIGHTED)
    n = len(text.input_ids)
    with_branches = _info([1] * n, [0] * n, pos=list(text.position_ids), branch=list(text.branch_ids))
    plain = _info([1] * n, [0] * n, pos=list(text.position_ids))
    np.testing.assert_array_equal(np.asarray(molmo2_mask(with_branches, with_branches)),
                                  np.asarray(molmo2_mask(plain, plain)))
