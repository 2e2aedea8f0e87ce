"""Tokenizers: Qwen3 BPE ids pinned, tiktoken == HF tokenizer.json, SentencePiece for tiny models."""

from __future__ import annotations

import json
import random

import pytest

from molmo2_jax.model_config import MOLMO2_TOKENS, Molmo2TokenIds
from molmo2_jax.processing.tokenizer import (HFTokenizer, QwenTokenizer, SentencePieceTokenizer, load_tokenizer,
                                             qwen_tokenizer_json, train_sentencepiece)

TEXTS = [
    "Hello, world!",
    " Point to the red circle.",
    "<|im_end|><|image|><|im_start|>user\nDescribe  this   image.\n\n<|im_end|>\n"
    "<|im_start|>assistant\n",
    "café cafe\u0301 日本語のテキスト 🤖 123456 it's I'LL don't",
    "0.0 <frame_start><im_patch><im_patch><frame_end> 0.5 ",
    "   leading\ttabs\r\n\r\n  trailing   ",
    "|<EXTRA_TOKENS_12>|<think>reasoning</think><tool_call>{}</tool_call>",
    'Counting the <points coords="1 1 073 160 2 173 600">boats</points> shows a total of 2.',
]


@pytest.fixture(scope="module")
def qwen() -> QwenTokenizer:
    return QwenTokenizer()


@pytest.fixture(scope="module")
def hf_qwen(tmp_path_factory, qwen) -> HFTokenizer:
    """Qwen3 + Molmo2 tokenizer.json built from the same ranks, read by the `tokenizers` library."""
    d = tmp_path_factory.mktemp("hf_qwen")
    (d / "tokenizer.json").write_text(qwen_tokenizer_json())
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|im_end|>", "eos_token": {"content": "<|im_end|>"},
         "pad_token": "<|endoftext|>"}))
    return HFTokenizer.from_pretrained(str(d))


def test_qwen_pins_known_ids(qwen):
    assert qwen.encode("Hello, world!") == [9707, 11, 1879, 0]
    assert qwen.encode(" Point to the red circle.") == [5126, 311, 279, 2518, 12671, 13]


def test_qwen_special_token_ids(qwen):
    assert [qwen.token_id(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [
        151643, 151644, 151645]
    assert qwen.token_id("<|object_ref_start|>") == 151646
    assert qwen.token_id("<think>") == 151667 and qwen.token_id("</think>") == 151668
    assert qwen.token_id("|<EXTRA_TOKENS_0>|") == 151669
    assert qwen.token_id("|<EXTRA_TOKENS_266>|") == 151935
    assert [qwen.token_id(t) for t in MOLMO2_TOKENS] == list(range(151936, 151946))
    assert (qwen.bos_token_id, qwen.eos_token_id, qwen.pad_token_id) == (151645, 151645, 151643)
    assert qwen.vocab_size == 151946
    assert Molmo2TokenIds.from_tokenizer(qwen) == Molmo2TokenIds()


def test_special_tokens_in_text_are_single_ids(qwen):
    ids = qwen.encode("a<im_patch><im_patch>b<|video|>")
    assert ids[1:3] == [151938, 151938] and ids[-1] == 151945
    with pytest.raises(KeyError, match="no special token"):
        qwen.token_id("<not_a_token>")


def test_decode_round_trips_and_skips_special(qwen):
    for text in TEXTS:
        assert qwen.decode(qwen.encode(text)) == text.replace("cafe\u0301", "café")
    ids = qwen.encode("<|im_end|>hi<think>x</think><im_patch>")
    assert qwen.decode(ids, skip_special_tokens=True) == "hi<think>x</think>"


def test_tiktoken_matches_hf_tokenizer_json(qwen, hf_qwen):
    rng = random.Random(0)
    pool = list("aAzZ 09\n\t\r.,'!?-_<>|/éüñ日本語🤖") + ["<|im_end|>", "<im_patch>", " the", "'s"]
    texts = TEXTS + ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40)))
                     for _ in range(300)]
    for text in texts:
        ids = qwen.encode(text)
        assert hf_qwen.encode(text) == ids, text
        assert hf_qwen.decode(ids) == qwen.decode(ids)
    assert hf_qwen.vocab_size == qwen.vocab_size
    assert hf_qwen.special_tokens == qwen.special_tokens
    assert Molmo2TokenIds.from_tokenizer(hf_qwen) == Molmo2TokenIds()


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory) -> str:
    rng = random.Random(1)
    words = ["red", "circle", "point", "to", "the", "dog", "cat", "image", "what", "is", "in",
             "this", "count", "boats", "there", "are", "none", "describe", "video", "frame"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + rng.choice(".?!")
             for _ in range(400)]
    lines += [f"<|im_start|>user\n{line}<|im_end|>" for line in lines[:50]]
    return train_sentencepiece(lines, str(tmp_path_factory.mktemp("sp") / "tiny"), vocab_size=300)


def test_sentencepiece_puts_molmo2_tokens_after_its_vocab(sp_model):
    sp = SentencePieceTokenizer(sp_model)
    n = sp.vocab_size - len(MOLMO2_TOKENS)
    assert n == 300
    ids = Molmo2TokenIds.from_tokenizer(sp)
    assert (ids.image_start, ids.image_patch, ids.video_prompt) == (300, 302, 309)
    assert ids.bos == sp.token_id("<|im_end|>") < 300
    text = "<|im_start|>user\npoint to the dog<|im_end|><im_patch><im_col>"
    encoded = sp.encode(text)
    assert encoded[-2:] == [302, 303]
    assert sp.decode(encoded) == text
    assert sp.decode(encoded, skip_special_tokens=True) == "user\npoint to the dog"


def test_load_tokenizer_dispatches_on_path(sp_model, tmp_path):
    assert isinstance(load_tokenizer(sp_model), SentencePieceTokenizer)
    assert isinstance(load_tokenizer(None), QwenTokenizer)
    with pytest.raises(ValueError, match="don't know how to load"):
        load_tokenizer(str(tmp_path / "vocab.txt"))
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(str(tmp_path))
