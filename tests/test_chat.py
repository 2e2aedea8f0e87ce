"""Molmo2 chat template, loss masks and weights, multi-turn and message trees."""

from __future__ import annotations

import math

import numpy as np
import pytest

from molmo2_jax.processing.chat import (POINTING_WEIGHTING, SFT_WEIGHTING, UNWEIGHTED,
                                        encode_training_example, render_chat)
from molmo2_jax.processing.tokenizer import QwenTokenizer


@pytest.fixture(scope="module")
def tok() -> QwenTokenizer:
    return QwenTokenizer()


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def test_single_image_prompt():
    msgs = [{"role": "user", "content": [{"type": "image", "image": "x.jpg"},
                                         {"type": "text", "text": "Describe this image."}]}]
    assert render_chat(msgs) == ("<|image|><|im_start|>user\nDescribe this image.<|im_end|>\n"
                                 "<|im_start|>assistant\n")


def test_several_images_are_numbered_and_videos_follow():
    assert render_chat([user("Compare.")], num_images=2, num_videos=1).startswith(
        "Image 1<|image|>Image 2<|image|><|video|><|im_start|>user\nCompare.<|im_end|>\n")


def test_multi_turn_closes_answers_with_im_end():
    text = render_chat([user("Q1"), assistant("A1"), user("Q2")])
    assert text == ("<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
                    "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n")


def test_rare_styles_prefix_the_text_and_roles_must_alternate():
    msgs = [{"role": "user", "content": [{"type": "text", "text": "hi", "style": "chart_qa"},
                                         {"type": "text", "text": "there", "style": "demo"}]}]
    assert "user\nchart_qa: hi there<|im_end|>" in render_chat(msgs)
    with pytest.raises(ValueError, match="alternate"):
        render_chat([user("a"), user("b")])


def test_training_tokens_mask_everything_but_answers(tok):
    ex = encode_training_example(tok, [[user("What is it?"), assistant("A dog.")]], num_images=1,
                                 weighting=UNWEIGHTED)
    assert ex.input_ids[0] == tok.bos_token_id and ex.input_ids[1] == tok.token_id("<|image|>")
    assert np.array_equal(ex.target_ids[:-1], ex.input_ids[1:])
    assert ex.target_ids[-1] == tok.eos_token_id
    answer = tok.encode("A dog.") + [tok.eos_token_id]
    assert ex.target_ids[ex.loss_weights > 0].tolist() == answer
    assert set(ex.loss_weights.tolist()) == {0.0, 1.0}
    # the inputs are the inference prompt followed by the answer
    prompt = [tok.bos_token_id] + tok.encode(render_chat([user("What is it?")], num_images=1))
    assert ex.input_ids[:len(prompt)].tolist() == prompt
    assert tok.decode(ex.input_ids[len(prompt):]) == "A dog."
    assert (ex.branch_ids[:2] == -1).all() and (ex.branch_ids[2:] == 0).all()
    assert ex.position_ids.tolist() == list(range(len(ex.input_ids)))


def test_multi_turn_answers_and_their_eos_have_loss(tok):
    ex = encode_training_example(tok, [[user("Q1"), assistant("A1"), user("Q2"),
                                        assistant("A2")]], weighting=UNWEIGHTED)
    eos = tok.eos_token_id
    assert ex.target_ids[ex.loss_weights > 0].tolist() == (tok.encode("A1") + [eos]
                                                           + tok.encode("A2") + [eos])
    text = tok.decode(np.append(ex.input_ids, ex.target_ids[-1]))
    assert text == "<|im_end|>" + render_chat([user("Q1"), assistant("A1"), user("Q2"),
                                               assistant("A2")], add_generation_prompt=False) \
        + "<|im_end|>"


def test_message_tree_shares_the_prefix_and_weights_branches(tok):
    answers = ["Yes.", "A red circle on a white background.", "3"]
    branches = [[user(f"Question {k}?"), assistant(a)] for k, a in enumerate(answers)]
    ex = encode_training_example(tok, branches, num_images=1, weighting=SFT_WEIGHTING)
    assert (ex.input_ids == tok.token_id("<|image|>")).sum() == 1
    assert ex.branch_ids.tolist()[:2] == [-1, -1]
    k = len(answers)
    for b, answer in enumerate(answers):
        mask = ex.branch_ids == b
        n = len(tok.encode(answer)) + 1  # + EOS
        weights = ex.loss_weights[mask]
        assert np.allclose(weights[weights > 0], 2 / math.sqrt(n) / math.sqrt(k))
        assert ex.target_ids[mask][-1] == tok.eos_token_id
        assert ex.position_ids[mask].tolist() == list(range(2, 2 + mask.sum()))
        assert tok.decode(ex.input_ids[mask]).endswith(answer)


def test_pointing_sets_use_a_flat_weight(tok):
    branches = [[user("Point to the dog."), assistant('<points coords="1 1 500 500">dog</points>')],
                [user("Point to the cat."), assistant("There are none.")]]
    ex = encode_training_example(tok, branches, num_images=1, weighting=POINTING_WEIGHTING)
    assert set(ex.loss_weights.tolist()) == {0.0, np.float32(0.2)}


def test_training_needs_a_final_answer(tok):
    with pytest.raises(ValueError, match="end with an assistant"):
        encode_training_example(tok, [[user("Q")]])


def test_example_encoder_reads_the_one_loss_weight_table():
    """ExampleEncoder's rule is `loss_weighting`: dataset row, then task row, SFT default, 1 in pre-training."""
    from types import SimpleNamespace

    from molmo2_jax.processing.chat import LONG_CAPTION_WEIGHTING, SFT_LOSS_WEIGHTS
    from molmo2_jax.processing.encode import ExampleEncoder

    def rule(task, source, mixture):
        return ExampleEncoder(None, mixture=mixture).weighting(SimpleNamespace(task=task, source=source))

    assert rule("pointing", "pixmo_points_train", "stage2") == POINTING_WEIGHTING
    assert rule("multi_image", "pixmo_multi_points", "stage2") == POINTING_WEIGHTING  # a dataset row
    assert rule("multi_image", "mantis_instruct_nlvr2_multi_only", "stage2") == SFT_WEIGHTING
    assert rule("video_caption", "vixmo3_top_level_captions_min_3", "stage3") == LONG_CAPTION_WEIGHTING
    assert rule("video_caption", "motionbench_train", "stage2") == SFT_WEIGHTING
    assert rule("pointing", "pixmo_points_train", "stage1") == UNWEIGHTED
    assert rule("counting", "synthetic_counting", "synthetic") == UNWEIGHTED
    assert all(w.weight in (0.1, 0.2) and not w.root_length for w in SFT_LOSS_WEIGHTS.values())
