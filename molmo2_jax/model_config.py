"""Molmo2 model configurations as frozen data, with the presets users name in configs."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any


@dataclasses.dataclass(frozen=True)
class VitConfig:
    """SigLIP2-style ViT: patch embedding + learned positions + pre-norm blocks (no CLS, no final norm)."""

    hidden_size: int = 1152
    intermediate_size: int = 4304
    num_layers: int = 25  # blocks actually built: max(feature_layers) + 1
    num_heads: int = 16
    head_dim: int = 72
    patch_size: int = 14
    image_size: tuple[int, int] = (378, 378)
    num_channels: int = 3
    layer_norm_eps: float = 1e-6
    attention_bias: bool = True

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(rows, cols) of patches in one crop."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @property
    def num_patches(self) -> int:
        rows, cols = self.patch_grid
        return rows * cols

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * self.num_channels


@dataclasses.dataclass(frozen=True)
class ConnectorConfig:
    """Molmo2 connector: multi-layer ViT features -> attention pooling per window -> SwiGLU projector."""

    feature_layers: tuple[int, ...] = (24, 18)  # 0-based ViT blocks whose outputs are concatenated
    hidden_size: int = 1152
    num_heads: int = 16
    head_dim: int = 72
    attention_bias: bool = True
    intermediate_size: int = 3072
    text_hidden_size: int = 1024


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Qwen3 decoder (RMSNorm, GQA, QK-norm before RoPE, SwiGLU) with Molmo2's extra embedding rows."""

    vocab_size: int = 151936
    additional_vocab_size: int = 128
    hidden_size: int = 1024
    intermediate_size: int = 3072
    num_layers: int = 28
    num_heads: int = 16
    num_kv_heads: int = 8
    head_dim: int = 128
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    rope_scaling: tuple[tuple[str, Any], ...] = ()  # HF rope_parameters beyond the default, as sorted items
    rope_scaling_layers: tuple[int, ...] | None = None  # None: every layer uses the (scaled) RoPE
    qk_norm_type: str = "qwen3"  # "qwen3": per-head RMSNorm; "olmo": over the whole projection
    norm_after: bool = False  # OLMo-style post-norm sublayers
    attention_bias: bool = False
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 40960

    @property
    def embedding_rows(self) -> int:
        return self.vocab_size + self.additional_vocab_size


# Molmo2's multimodal tokens, in id order from the first extra-vocabulary row (151936 in the real model).
MOLMO2_TOKENS = (
    "<im_start>", "<im_end>", "<im_patch>", "<im_col>", "<low_res_im_start>", "<|image|>",
    "<im_low>", "<frame_start>", "<frame_end>", "<|video|>",
)


@dataclasses.dataclass(frozen=True)
class Molmo2TokenIds:
    """Molmo2's special token ids: the ten multimodal ones (in `MOLMO2_TOKENS` order) and the chat ones.

    The model reads the vision ids (`image_patch` rows get features, `vision_ids` form the
    bidirectional block); the processor writes all of them. Defaults: the real Qwen3-based vocabulary.
    """

    image_start: int = 151936
    image_end: int = 151937
    image_patch: int = 151938
    image_col: int = 151939
    low_res_image_start: int = 151940
    image_prompt: int = 151941
    image_low_res: int = 151942
    frame_start: int = 151943
    frame_end: int = 151944
    video_prompt: int = 151945
    bos: int = 151645
    eos: int = 151645
    pad: int = 151643

    @classmethod
    def at(cls, base: int, bos: int = 151645, eos: int = 151645, pad: int = 151643) -> "Molmo2TokenIds":
        """Molmo2's ten multimodal tokens laid out from `base` in the standard order."""
        return cls(*range(base, base + len(MOLMO2_TOKENS)), bos=bos, eos=eos, pad=pad)

    @classmethod
    def from_tokenizer(cls, tok: Any) -> "Molmo2TokenIds":
        """Look every Molmo2 special token up by name in a `processing.tokenizer.Tokenizer`."""
        ids = [tok.token_id(t) for t in MOLMO2_TOKENS]
        return cls(*ids, bos=tok.bos_token_id, eos=tok.eos_token_id, pad=tok.pad_token_id)

    @property
    def vision_ids(self) -> tuple[int, ...]:
        """Tokens with mm_token_type_id 1 (image/frame structure and patches, not the prompts), in id order."""
        return (self.image_start, self.image_end, self.image_patch, self.image_col, self.low_res_image_start,
                self.image_low_res, self.frame_start, self.frame_end)


# Molmo2Config fields before the ids were one Molmo2TokenIds (configs saved by older checkpoints).
_LEGACY_ID_FIELDS = {
    "image_start_token_id": "image_start", "image_end_token_id": "image_end", "image_patch_id": "image_patch",
    "image_col_token_id": "image_col", "low_res_image_start_token_id": "low_res_image_start",
    "image_low_token_id": "image_low_res", "frame_start_token_id": "frame_start", "frame_end_token_id": "frame_end",
}


def token_ids_from_fields(fields: dict[str, Any]) -> Molmo2TokenIds:
    """Molmo2TokenIds from HF-style `*_token_id` fields (HF config.json, older saved configs).

    Ids the fields do not name are laid out from `image_start_token_id` (default 151936).
    """
    base = Molmo2TokenIds.at(int(fields.get("image_start_token_id", Molmo2TokenIds.image_start)))
    return dataclasses.replace(base, **{ours: int(fields[hf]) for hf, ours in _LEGACY_ID_FIELDS.items()
                                        if hf in fields})


@dataclasses.dataclass(frozen=True)
class Molmo2Config:
    """The whole Molmo2 network: ViT, connector, Qwen3 decoder and the special token ids it reads."""

    vit: VitConfig = VitConfig()
    connector: ConnectorConfig = ConnectorConfig()
    text: TextConfig = TextConfig()
    token_ids: Molmo2TokenIds = Molmo2TokenIds()

    def replace(self, **kw: Any) -> "Molmo2Config":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Molmo2Config":
        d = dict(d)
        vit = _tupled(VitConfig, d.pop("vit"))
        conn = _tupled(ConnectorConfig, d.pop("connector"))
        text = _tupled(TextConfig, d.pop("text"))
        legacy = {k: d.pop(k) for k in list(d) if k in _LEGACY_ID_FIELDS}
        ids = _tupled(Molmo2TokenIds, d.pop("token_ids")) if "token_ids" in d else token_ids_from_fields(legacy)
        return cls(vit=vit, connector=conn, text=text, token_ids=ids, **d)

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    @classmethod
    def load(cls, path: str) -> "Molmo2Config":
        with open(path) as f:
            return cls.from_dict(json.load(f))


def _tuplify(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_tuplify(x) for x in v)
    return v


def _tupled(klass: type, d: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(klass)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {klass.__name__} fields {sorted(unknown)}")
    return klass(**{k: _tuplify(v) for k, v in d.items()})


# ----------------------------------------------------------------------------------------------
# Presets

_SIGLIP2_SO400M_378 = VitConfig()  # 27-block so400m/14@378, of which Molmo2 builds 25


def _molmo2(text: TextConfig) -> Molmo2Config:
    return Molmo2Config(
        vit=_SIGLIP2_SO400M_378,
        connector=ConnectorConfig(
            intermediate_size=text.intermediate_size, text_hidden_size=text.hidden_size
        ),
        text=text,
    )


def tiny() -> Molmo2Config:
    """A sub-M-parameter Molmo2 for tests and the CPU demo: 56x56 crops of 8x8 patches (7 px), vocab 512 + 128."""
    text = TextConfig(
        vocab_size=512, additional_vocab_size=128, hidden_size=96, intermediate_size=192,
        num_layers=3, num_heads=4, num_kv_heads=2, head_dim=24, rope_theta=10_000.0,
        max_position_embeddings=4096,
    )
    return Molmo2Config(
        vit=VitConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, head_dim=16,
                      patch_size=7, image_size=(56, 56)),
        connector=ConnectorConfig(feature_layers=(1, 0), hidden_size=64, num_heads=4, head_dim=16,
                                  intermediate_size=192, text_hidden_size=96),
        text=text,
        token_ids=Molmo2TokenIds.at(512),
    )


def nano() -> Molmo2Config:
    """nanoMolmo2: Qwen3-0.6B + SigLIP2 so400m/14@378."""
    return _molmo2(TextConfig())


def molmo2_4b() -> Molmo2Config:
    """Molmo2-4B: Qwen3-4B-Instruct-2507 decoder (RoPE theta 5e6), tied embeddings as trained.

    Source: allenai/molmo2 olmo/model_configs.py::QWEN3_4B_INSTRUCT (rope_theta=5000000.0, weight_tying=True).
    """
    return _molmo2(TextConfig(hidden_size=2560, intermediate_size=9728, num_layers=36, num_heads=32,
                              num_kv_heads=8, head_dim=128, rope_theta=5_000_000.0, tie_word_embeddings=True))


def molmo2_8b() -> Molmo2Config:
    """Molmo2-8B: Qwen3-8B decoder (theta 1e6), untied embeddings (model_configs.py::QWEN3_8B)."""
    return _molmo2(TextConfig(hidden_size=4096, intermediate_size=12288, num_layers=36,
                              num_heads=32, num_kv_heads=8, head_dim=128, tie_word_embeddings=False))


OLMO3_FULL_ATTENTION_LAYERS = (3, 7, 11, 15, 19, 23, 27, 31)


def molmo2_o_7b() -> Molmo2Config:
    """Molmo2-O-7B: OLMo3-7B-Instruct decoder: post-norm, full-width QK-norm, MHA, YaRN on every 4th layer.

    Source: allenai/molmo2 olmo/model_configs.py::OLMO3_7B_INSTRUCT (norm_after, attention_layer_norm over
    d_model, n_kv_heads=None, vocab 100,278 + 128, rope_theta 5e5, YaRN factor 8 / attention factor
    1.2079 / beta 32, 1 / original 8,192 on `full_attention_layers`, untied). transformers' Molmo2 text
    model has no sliding window, so the other layers use full attention with unscaled RoPE there too.
    """
    yarn = (("attention_factor", 1.2079441541679836), ("beta_fast", 32.0), ("beta_slow", 1.0),
            ("factor", 8.0), ("original_max_position_embeddings", 8192), ("rope_type", "yarn"))
    text = TextConfig(vocab_size=100_278, additional_vocab_size=128, hidden_size=4096, intermediate_size=11008,
                      num_layers=32, num_heads=32, num_kv_heads=32, head_dim=128, rope_theta=500_000.0,
                      rope_scaling=yarn, rope_scaling_layers=OLMO3_FULL_ATTENTION_LAYERS, qk_norm_type="olmo",
                      norm_after=True, tie_word_embeddings=False, max_position_embeddings=65_536)
    return _molmo2(text).replace(token_ids=Molmo2TokenIds.at(100_278))


PRESETS = {"tiny": tiny, "nano": nano, "molmo2-4b": molmo2_4b, "molmo2-8b": molmo2_8b, "molmo2-o-7b": molmo2_o_7b}


def preset(name: str) -> Molmo2Config:
    """The model preset a config names (`model.name`: tiny, nano, molmo2-4b, molmo2-8b)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


# ----------------------------------------------------------------------------------------------
# HuggingFace config.json -> Molmo2Config


def _feature_block(layer: int, num_layers: int) -> int:
    """HF `vision_feature_layer` -> 0-based block index (hidden_states[layer + 1] / [layer])."""
    return layer if layer >= 0 else num_layers + layer


def _rope_fields(tc: dict[str, Any]) -> dict[str, Any]:
    rp = dict(tc.get("rope_parameters") or tc.get("rope_scaling") or {})
    theta = rp.pop("rope_theta", tc.get("rope_theta", 10_000.0))
    rope_type = rp.get("rope_type", rp.get("type", "default"))
    scaling = () if rope_type == "default" else tuple(sorted(rp.items()))
    return dict(rope_theta=float(theta), rope_scaling=scaling)


def text_config_from_hf(tc: dict[str, Any], additional_vocab_size: int | None = None) -> TextConfig:
    """HF Qwen3 / Molmo2 text config dict -> TextConfig."""
    num_layers = tc["num_hidden_layers"]
    layers = tc.get("rope_scaling_layers")
    return TextConfig(
        vocab_size=tc["vocab_size"],
        additional_vocab_size=tc.get("additional_vocab_size", 0) if additional_vocab_size is None
        else additional_vocab_size,
        hidden_size=tc["hidden_size"],
        intermediate_size=tc["intermediate_size"],
        num_layers=num_layers,
        num_heads=tc["num_attention_heads"],
        num_kv_heads=tc.get("num_key_value_heads", tc["num_attention_heads"]),
        head_dim=tc.get("head_dim") or tc["hidden_size"] // tc["num_attention_heads"],
        rms_norm_eps=tc.get("rms_norm_eps", tc.get("layer_norm_eps", 1e-6)),
        qk_norm_type=tc.get("qk_norm_type", "qwen3"),
        norm_after=tc.get("norm_after", False),
        attention_bias=tc.get("attention_bias", tc.get("qkv_bias", False)),
        tie_word_embeddings=tc.get("tie_word_embeddings", False),
        max_position_embeddings=tc.get("max_position_embeddings", 40960),
        rope_scaling_layers=None if layers is None or sorted(layers) == list(range(num_layers))
        else tuple(layers),
        **_rope_fields(tc),
    )


def vit_config_from_hf(vc: dict[str, Any], num_layers: int | None = None) -> VitConfig:
    """HF SigLIP/SigLIP2/Molmo2 vision config dict -> VitConfig (building `num_layers` blocks)."""
    image_size = vc.get("image_size", vc.get("image_default_input_size", 378))
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    heads = vc["num_attention_heads"]
    return VitConfig(
        hidden_size=vc["hidden_size"],
        intermediate_size=vc["intermediate_size"],
        num_layers=num_layers if num_layers is not None else vc["num_hidden_layers"],
        num_heads=heads,
        head_dim=vc.get("head_dim") or vc["hidden_size"] // heads,
        patch_size=vc.get("patch_size", vc.get("image_patch_size", 14)),
        image_size=tuple(image_size),
        num_channels=vc.get("num_channels", 3),
        layer_norm_eps=vc.get("layer_norm_eps", 1e-6),
        attention_bias=vc.get("attention_bias", True),
    )


def config_from_hf(hf: dict[str, Any] | str) -> Molmo2Config:
    """HF Molmo2 `config.json` (transformers or original hub layout) -> Molmo2Config."""
    if isinstance(hf, str):
        path = os.path.join(hf, "config.json") if os.path.isdir(hf) else hf
        with open(path) as f:
            try:
                hf = json.load(f)
            except (ValueError, UnicodeDecodeError) as e:
                raise ValueError(f"{path} is not valid JSON ({e}); restore or re-download it") from None
    vc = dict(hf.get("vision_config") or hf.get("vit_config") or {})
    ac = dict(hf.get("adapter_config") or {})
    tc = dict(hf.get("text_config") or {})
    if not vc or not tc:
        raise ValueError("not a Molmo2 config: expected `vision_config` (or `vit_config`) and `text_config`")
    layers = ac.get("vision_feature_layer", ac.get("vit_layers", [24, 18]))
    vit_layers_in_ckpt = vc["num_hidden_layers"]
    blocks = tuple(_feature_block(layer, vit_layers_in_ckpt) for layer in layers)
    vit = vit_config_from_hf(vc, num_layers=max(blocks) + 1)
    text = text_config_from_hf(tc)
    conn = ConnectorConfig(
        feature_layers=blocks,
        hidden_size=ac.get("hidden_size", vit.hidden_size),
        num_heads=ac.get("num_attention_heads", 16),
        head_dim=ac.get("head_dim") or ac.get("hidden_size", vit.hidden_size) // ac.get("num_attention_heads", 16),
        attention_bias=ac.get("attention_bias", True),
        intermediate_size=ac.get("intermediate_size", text.intermediate_size),
        text_hidden_size=ac.get("text_hidden_size", text.hidden_size),
    )
    if ac.get("mlp_bias", False):
        raise ValueError("Molmo2 adapters with `mlp_bias=true` are not supported")
    return Molmo2Config(vit=vit, connector=conn, text=text, token_ids=token_ids_from_fields(hf))
