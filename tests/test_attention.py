"""Molmo2 attention masks and the attention kernels (dense reference, blockwise)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from molmo2_jax.attention import MaskInfo, attend, blockwise_attention, molmo2_mask


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
    want = jax.nn.dot_product_attention(q, k, v, mask=molmo2_mask(info, info), implementation="xla")
    np.testing.assert_allclose(np.asarray(attend(q, k, v, info, "xla")), np.asarray(want), atol=1e-5)
    np.testing.assert_allclose(np.asarray(attend(q, k, v, info, "dot_product")), np.asarray(want), atol=1e-5)


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


# ----------------------------------------------------------------------------------------------
# Packed layouts the kernels must get exactly right (shared with tests/test_ring_attention.py)


def _example(kind: str, length: int, rng) -> tuple[list, list, list]:
    """(positions, vision flags, branch ids) of one packed example of `kind`."""
    pos, vis, br = list(range(length)), [0] * length, [-1] * length
    if kind == "image":  # prompt, one image block of vision tokens, answer
        for i in range(4, min(4 + length // 2, length - 2)):
            vis[i] = 1
    elif kind == "video":  # frames of vision tokens separated by timestamp text
        i = 3
        while i + 6 < length - 3:
            i += 2  # "1.5" timestamp tokens
            for j in range(i, i + 4):
                vis[j] = 1
            i += 4
    elif kind == "tree":  # shared prompt, then 3 answers with the same positions on their own branches
        prompt = length // 4
        each = (length - prompt) // 3
        for b in range(3):
            lo = prompt + b * each
            hi = length if b == 2 else lo + each
            for j in range(lo, hi):
                pos[j], br[j] = prompt + (j - lo), b
    return pos, vis, br


LAYOUTS = {
    "causal_text": [("text", 1.0)],
    "uneven_pack": [("text", 0.07), ("text", 0.41), ("text", 0.15), ("text", 0.37)],
    "image_and_video": [("image", 0.4), ("video", 0.6)],
    "message_tree": [("tree", 0.6), ("text", 0.4)],
    "end_padding": [("image", 0.3), ("text", 0.35), ("pad", 0.35)],
}


def make_case(layouts, t: int, heads: int, kv_heads: int, hd: int = 8, seed: int = 0):
    """q, k, v, MaskInfo and an output cotangent (zero on padding rows); batch row i has layout `layouts[i]`."""
    rng = np.random.default_rng(seed)
    b = len(layouts)
    seg, pos, vis, br = (np.zeros((b, t), np.int32) for _ in range(4))
    for row, layout in enumerate(layouts):
        start = 0
        parts = LAYOUTS[layout]
        for n, (kind, frac) in enumerate(parts):
            length = t - start if n == len(parts) - 1 else max(3, int(round(frac * t)))
            if kind != "pad":
                p, v, r = _example(kind, length, rng)
                seg[row, start:start + length] = n + 1
                pos[row, start:start + length], vis[row, start:start + length] = p, v
                br[row, start:start + length] = r
            start += length
    info = MaskInfo(jnp.asarray(seg), jnp.asarray(pos), jnp.asarray(vis, bool), jnp.asarray(br))
    q = jnp.asarray(rng.normal(size=(b, t, heads, hd)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(b, t, kv_heads, hd)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(b, t, kv_heads, hd)), jnp.float32)
    do = jnp.asarray(rng.normal(size=q.shape), jnp.float32) * (info.segment_ids > 0)[..., None, None]
    return q, k, v, info, do


def assert_rows_close(want, got, layouts, atol=1e-5):
    """(out, dq, dk, dv) equal per batch row; a failure names the row's layout."""
    for name, a, b in zip(("out", "dq", "dk", "dv"), want, got):
        for row, layout in enumerate(layouts):
            np.testing.assert_allclose(np.asarray(b[row]), np.asarray(a[row]), atol=atol, err_msg=f"{name} {layout}")


def out_and_grads(fn, q, k, v, do):
    """Attention output (padding rows zeroed: they see no key) and d(sum(out * do))/d(q, k, v)."""
    valid = (do != 0).any(axis=(2, 3), keepdims=True)
    out, vjp = jax.vjp(fn, q, k, v)
    return (jnp.where(valid, out, 0.0), *vjp(do))


@pytest.mark.parametrize("heads,kv_heads", [(16, 8), (8, 1)])
def test_blockwise_equals_dense_forward_and_gradients(heads, kv_heads):
    layouts = sorted(LAYOUTS)  # one batch row per layout
    q, k, v, info, do = make_case(layouts, 60, heads, kv_heads)
    want = jax.jit(lambda q, k, v, do: out_and_grads(lambda q, k, v: attend(q, k, v, info, "xla"), q, k, v, do))(
        q, k, v, do)
    # block 8 does not divide 60: the kernel pads with invisible slots; skipped blocks are exercised too
    got = jax.jit(lambda q, k, v, do: out_and_grads(
        lambda q, k, v: attend(q, k, v, info, "blockwise", block_size=8), q, k, v, do))(q, k, v, do)
    assert_rows_close(want, got, layouts)


def test_blockwise_attends_to_a_kv_cache_with_its_own_mask_info():
    """Decode: queries at the end of a cache whose empty slots (segment 0) must stay invisible."""
    q, k, v, info, do = make_case(["image_and_video"], 24, 4, 2)
    cache = jax.tree.map(lambda a: jnp.pad(a, ((0, 0), (0, 8))), info)  # 8 empty slots
    kc, vc = (jnp.pad(x, ((0, 0), (0, 8), (0, 0), (0, 0))) for x in (k, v))
    qi = jax.tree.map(lambda a: a[:, -3:], info)
    want = attend(q[:, -3:], k, v, qi, "xla", kv_info=info)
    got = attend(q[:, -3:], kc, vc, qi, "blockwise", kv_info=cache, block_size=8)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_blockwise_backward_never_holds_a_t_by_t_array():
    """Compiled temp memory of forward + backward at T = 4096 stays far below one fp32 T x T score matrix."""
    t, block = 4096, 256
    q = jax.ShapeDtypeStruct((1, t, 2, 16), jnp.float32)
    kv = jax.ShapeDtypeStruct((1, t, 1, 16), jnp.float32)
    ids = jax.ShapeDtypeStruct((1, t), jnp.int32)
    info = MaskInfo(ids, ids, jax.ShapeDtypeStruct((1, t), jnp.bool_), ids)

    def loss(impl):
        return lambda q, k, v, i: jnp.sum(attend(q, k, v, i, impl, block_size=block) ** 2)

    def temp(impl):
        return jax.jit(jax.grad(loss(impl), (0, 1, 2))).lower(q, kv, kv, info).compile().memory_analysis() \
            .temp_size_in_bytes

    blockwise, dense = temp("blockwise"), temp("xla")
    assert blockwise < t * t * 4 / 8, blockwise
    assert dense > t * t * 4  # the reference does hold T x T (so the check above can fail)


def test_unknown_implementation_is_a_clear_error():
    q, k, v, info, _ = make_case(["causal_text"], 8, 2, 1)
    with pytest.raises(ValueError, match="choose one of"):
        attend(q, k, v, info, "flash")


def test_blockwise_with_a_block_longer_than_the_sequence():
    q, k, v, info, _ = make_case(["uneven_pack"], 12, 2, 1)
    out = blockwise_attention(q, k, v, info, block_size=512)
    np.testing.assert_allclose(np.asarray(out), np.asarray(attend(q, k, v, info, "xla")), atol=1e-5)


def test_config_block_size_reaches_the_decoders_blockwise_kernel():
    from flax import nnx

    from configs.demo import get_config
    from molmo2_jax import model_config as mc
    from molmo2_jax.main import build_model
    from molmo2_jax.model import Molmo2
    from molmo2_jax.sharding import make_mesh

    config = get_config()
    config.model.name, config.attention_impl, config.attention_block_size, config.dtype = \
        "tiny", "blockwise", 8, "float32"
    model = build_model(config, make_mesh(1, 1, 1, devices=jax.devices()[:1]), mc.tiny())
    assert {layer.self_attn.block_size for layer in model.language_model.layers} == {8}

    ids = jnp.asarray(np.random.default_rng(0).integers(3, 300, (1, 32)), jnp.int32)
    outs, programs = [], []
    for block in (8, 32):
        m = Molmo2(mc.tiny(), rngs=nnx.Rngs(0), attention_impl="blockwise", attention_block_size=block)
        forward = jax.jit(lambda x, m=m: m(x))
        outs.append(np.asarray(forward(ids)))
        programs.append(forward.lower(ids).as_text())
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)
    assert programs[0] != programs[1]  # 4 key blocks vs 1: the block size changed the kernel
