"""HF <-> molmo2-jax weights as declarative key tables: Molmo2 (both key styles), Qwen3, SigLIP/SigLIP2.

Every checkpoint is first seen as a dict of *canonical* HF names (transformers' own Molmo2 names) to lazy
`Source`s; fused or split tensors of the original hub layout become virtual sources. Our parameter paths
map to canonical names by a prefix table plus a leaf table (kernel <-> weight^T, scale <-> weight, ...).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable

import jax
import numpy as np

from molmo2_jax.checkpoints.safetensors_io import SafetensorsDir
from molmo2_jax.model_config import Molmo2Config, TextConfig, VitConfig
from molmo2_jax.sharding import variable_sharding


@dataclasses.dataclass(frozen=True)
class Source:
    """A tensor that can be read on demand (possibly a slice or a concatenation of stored tensors)."""

    shape: tuple[int, ...]
    read: Callable[[], np.ndarray]
    origin: str  # stored key(s), for error messages


class ConversionError(ValueError):
    """Raised with every missing, unexpected and mis-shaped tensor listed by name."""


# ----------------------------------------------------------------------------------------------
# Our parameter paths <-> canonical HF names

LEAF = {"kernel": ("weight", True), "bias": ("bias", False), "scale": ("weight", False),
        "embedding": ("weight", False)}

MOLMO2_PREFIXES = (
    ("language_model.lm_head.", "lm_head."),
    ("language_model.", "model.language_model."),
    ("vision_tower.", "model.vision_tower."),
    ("connector.", "model.multi_modal_projector."),
)
QWEN3_PREFIXES = (("language_model.lm_head.", "lm_head."), ("language_model.", "model."))
SIGLIP_PREFIXES = (
    ("vision_tower.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
    ("vision_tower.patch_embedding.", "vision_model.embeddings.patch_embedding."),
    ("vision_tower.layers.", "vision_model.encoder.layers."),
)
SIGLIP_RENAMES = ((".self_attn.o_proj.", ".self_attn.out_proj."),)


def hf_name(path: str, prefixes, renames=()) -> tuple[str, bool] | None:
    """Our dotted param path -> (canonical HF name, transpose?) or None if the table has no entry."""
    for ours, theirs in prefixes:
        if path.startswith(ours):
            rest = path[len(ours):]
            if not rest:  # whole-name mapping
                return theirs, False
            parts = rest.split(".")
            leaf, transpose = LEAF.get(parts[-1], (parts[-1], False))
            name = theirs + ".".join(parts[:-1] + [leaf])
            for a, b in renames:
                name = name.replace(a, b)
            return name, transpose
    return None


def flat_params(state) -> dict[str, object]:
    """nnx state -> {dotted path: Variable} (works on abstract states)."""
    from flax import nnx

    return {".".join(map(str, p)): v for p, v in nnx.to_flat_state(state)}


# ----------------------------------------------------------------------------------------------
# Canonical views of stored checkpoints


def _stored(reader: SafetensorsDir, key: str) -> Source:
    return Source(reader.shape(key), lambda: reader.get(key), key)


def _rows(src: Source, start: int, stop: int) -> Source:
    return Source((stop - start, *src.shape[1:]), lambda: src.read()[start:stop], f"{src.origin}[{start}:{stop}]")


def _concat(srcs: list[Source]) -> Source:
    shape = (sum(s.shape[0] for s in srcs), *srcs[0].shape[1:])
    return Source(shape, lambda: np.concatenate([s.read() for s in srcs], 0), " + ".join(s.origin for s in srcs))


_MOLMO2_ORIGINAL_RENAMES = (
    (r"^model\.transformer\.blocks\.(\d+)\.attn_norm\.", r"model.language_model.layers.\1.input_layernorm."),
    (r"^model\.transformer\.blocks\.(\d+)\.ff_norm\.", r"model.language_model.layers.\1.post_attention_layernorm."),
    (r"^model\.transformer\.blocks\.(\d+)\.self_attn\.attn_out\.", r"model.language_model.layers.\1.self_attn.o_proj."),
    (r"^model\.transformer\.blocks\.(\d+)\.mlp\.ff_out\.", r"model.language_model.layers.\1.mlp.down_proj."),
    (r"^model\.transformer\.blocks\.(\d+)\.", r"model.language_model.layers.\1."),
    (r"^model\.transformer\.ln_f\.", "model.language_model.norm."),
    (r"\.resblocks\.(\d+)\.attention\.w([qkvo])\.", r".resblocks.\1.self_attn.\2_proj."),
    (r"\.resblocks\.(\d+)\.feed_forward\.w1\.", r".resblocks.\1.mlp.fc1."),
    (r"\.resblocks\.(\d+)\.feed_forward\.w2\.", r".resblocks.\1.mlp.fc2."),
    (r"\.resblocks\.(\d+)\.attention_norm\.", r".resblocks.\1.layer_norm1."),
    (r"\.resblocks\.(\d+)\.ffn_norm\.", r".resblocks.\1.layer_norm2."),
    (r"^model\.vision_backbone\.image_vit\.transformer\.resblocks\.", "model.vision_tower.layers."),
    (r"^model\.vision_backbone\.image_vit\.", "model.vision_tower."),
    (r"^model\.vision_backbone\.image_pooling_2d\.w([qkvo])\.",
     r"model.multi_modal_projector.image_pooling_2d.\1_proj."),
    (r"^model\.vision_backbone\.image_projector\.w1\.", "model.multi_modal_projector.image_projector.gate_proj."),
    (r"^model\.vision_backbone\.image_projector\.w2\.", "model.multi_modal_projector.image_projector.down_proj."),
    (r"^model\.vision_backbone\.image_projector\.w3\.", "model.multi_modal_projector.image_projector.up_proj."),
)


def molmo2_view(reader: SafetensorsDir, cfg: Molmo2Config) -> dict[str, Source]:
    """Canonical view of an HF Molmo2 checkpoint in transformers' names or the original hub names."""
    view: dict[str, Source] = {}
    wte: dict[str, Source] = {}
    t = cfg.text
    q_rows, kv_rows = t.num_heads * t.head_dim, t.num_kv_heads * t.head_dim
    for key in reader.keys():
        name = key if key.startswith(("model.", "lm_head.")) else "model." + key
        for pattern, repl in _MOLMO2_ORIGINAL_RENAMES:
            name = re.sub(pattern, repl, name)
        src = _stored(reader, key)
        if name.endswith("wte.embedding") or name.endswith("wte.new_embedding"):
            wte["new" if name.endswith("new_embedding") else "base"] = src
        elif ".self_attn.att_proj." in name:  # fused [q; k; v]
            for proj, (a, b) in zip("qkv", ((0, q_rows), (q_rows, q_rows + kv_rows),
                                            (q_rows + kv_rows, q_rows + 2 * kv_rows))):
                view[name.replace(".att_proj.", f".{proj}_proj.")] = _rows(src, a, b)
        elif ".mlp.ff_proj." in name:  # fused [up; gate]
            half = src.shape[0] // 2
            view[name.replace(".ff_proj.", ".up_proj.")] = _rows(src, 0, half)
            view[name.replace(".ff_proj.", ".gate_proj.")] = _rows(src, half, src.shape[0])
        else:
            view[name] = src
    if wte:
        if set(wte) != {"base", "new"}:
            raise ConversionError(f"embedding split in two tensors, but only `wte.{'new_' if 'new' in wte else ''}"
                                  "embedding` was found: the checkpoint is incomplete")
        view["model.language_model.embed_tokens.weight"] = _concat([wte["base"], wte["new"]])
    return view


def plain_view(reader: SafetensorsDir) -> dict[str, Source]:
    """Canonical view of checkpoints stored under their transformers names (Qwen3, SigLIP)."""
    return {k: _stored(reader, k) for k in reader.keys()}


def siglip_view(reader: SafetensorsDir) -> dict[str, Source]:
    """Canonical view of a SigLIP/SigLIP2 checkpoint (full model, or vision model saved without prefix)."""
    bare = ("embeddings.", "encoder.", "post_layernorm.", "head.")
    return {("vision_model." + k if k.startswith(bare) else k): _stored(reader, k) for k in reader.keys()}


# ----------------------------------------------------------------------------------------------
# Filling parameters


def _resize_positions(table: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Resample a square learned position grid [n*n, D] to `grid` (bilinear, half-pixel, antialiased)."""
    n = int(round(table.shape[0] ** 0.5))
    src = table.reshape(n, n, -1).astype(np.float32)
    out = jax.image.resize(src, (*grid, src.shape[-1]), method="linear", antialias=True)
    return np.asarray(out).reshape(grid[0] * grid[1], -1)


def siglip_transform(path: str, arr: np.ndarray, vit: VitConfig) -> np.ndarray:
    """SigLIP-specific layouts: Conv2d patch kernels and position tables of another grid size."""
    if path == "vision_tower.patch_embedding.kernel" and arr.ndim == 4:  # Conv2d [D, C, p, p]
        return arr.transpose(2, 3, 1, 0).reshape(-1, arr.shape[0])  # (row, col, channel) -> D
    if path == "vision_tower.positional_embedding" and arr.shape[0] != vit.num_patches:
        return _resize_positions(arr, vit.patch_grid)
    return arr


@dataclasses.dataclass
class FillReport:
    """What a conversion read, and what it left at its initial value on purpose."""

    filled: list[str]
    kept_init: list[str]


def fill_params(state, view: dict[str, Source], prefixes, *, renames=(), only: str = "",
                mesh=None, transform=None, ignore: Iterable[str] = (),
                keep_init: Callable[[str], bool] = lambda p: False,
                row_prefix: set[str] = frozenset(), check_unused: bool = True) -> FillReport:
    """Fill the variables of `state` (under path prefix `only`) from `view`; raise listing every problem.

    `row_prefix` names params that take only their first rows from the checkpoint (embedding growth);
    `keep_init(path)` marks params the checkpoint may lack (they keep their initial value);
    `ignore` holds regexes of stored names that are expected and unused (extra ViT blocks, heads).
    """
    params = flat_params(state)
    problems, used, filled, kept = [], set(), [], []
    for path, var in params.items():
        if not path.startswith(only):
            continue
        mapped = hf_name(path, prefixes, renames)
        if mapped is None:
            if keep_init(path):
                kept.append(path)
                continue
            problems.append(f"no HF name for parameter {path}")
            continue
        name, transpose = mapped
        if name not in view:
            if keep_init(path):
                kept.append(path)
            else:
                problems.append(f"missing tensor {name!r} (for {path})")
            continue
        src = view[name]
        used.add(name)
        want = tuple(var.shape)
        got = src.shape[::-1] if transpose and len(src.shape) == 2 else src.shape
        if transform is None and path not in row_prefix and got != want:
            expected = want[::-1] if transpose else want
            problems.append(f"tensor {src.origin!r} has shape {src.shape}, expected {expected} for {path}")
            continue
        if problems:  # keep checking shapes, stop reading data
            continue
        arr = src.read()
        if transpose and arr.ndim == 2:
            arr = arr.T
        if transform is not None:
            arr = transform(path, arr)
        if path in row_prefix:
            if arr.shape[1:] != want[1:] or arr.shape[0] > want[0]:
                problems.append(f"tensor {src.origin!r} has shape {arr.shape}, expected at most {want} for {path}")
                continue
            base = np.asarray(var[...])
            arr = np.concatenate([arr.astype(base.dtype), base[arr.shape[0]:]], 0)
        elif arr.shape != want:
            problems.append(f"tensor {src.origin!r} gives shape {arr.shape}, expected {want} for {path}")
            continue
        arr = arr.astype(var.dtype)
        var.set_value(jax.device_put(arr, variable_sharding(var, mesh)) if mesh is not None
                      else jax.numpy.asarray(arr))
        filled.append(path)
    if check_unused:
        patterns = [re.compile(p) for p in ignore]
        for name, src in view.items():
            if name not in used and not any(p.search(name) for p in patterns):
                problems.append(f"unexpected tensor {src.origin!r} (as {name!r}): the checkpoint does not "
                                "match the model config")
    if problems:
        raise ConversionError("checkpoint does not match the model:\n  " + "\n  ".join(problems))
    return FillReport(filled, kept)


def unused_vit_blocks(num_built: int) -> str:
    """Regex for stored ViT blocks beyond the ones Molmo2 runs (e.g. blocks 25-26 of SigLIP2 so400m)."""
    return rf"(vision_tower|encoder)\.layers\.(?!({'|'.join(str(i) for i in range(num_built))})\.)\d+\."


# ----------------------------------------------------------------------------------------------
# Export: our params -> transformers' Molmo2 names


def export_tensors(state, cfg: Molmo2Config) -> Iterable[tuple[str, np.ndarray]]:
    """(transformers name, host array) for every parameter, in transformers' Molmo2 layout."""
    for path, var in flat_params(state).items():
        name, transpose = hf_name(path, MOLMO2_PREFIXES)
        arr = np.asarray(jax.device_get(var[...]))
        yield name, (arr.T if transpose else arr)
    if cfg.text.tie_word_embeddings:
        emb = np.asarray(jax.device_get(state["language_model"]["embed_tokens"]["embedding"][...]))
        yield "lm_head.weight", emb[: cfg.text.vocab_size]


def hf_config_dict(cfg: Molmo2Config) -> dict:
    """Molmo2Config -> transformers' Molmo2 `config.json` contents."""
    v, c, t, ids = cfg.vit, cfg.connector, cfg.text, cfg.token_ids
    rope = {"rope_type": "default", "rope_theta": t.rope_theta, **dict(t.rope_scaling)}
    return {
        "architectures": ["Molmo2ForConditionalGeneration"],
        "model_type": "molmo2",
        "vision_config": {
            "model_type": "molmo2_vision", "hidden_size": v.hidden_size, "intermediate_size": v.intermediate_size,
            "num_hidden_layers": v.num_layers, "num_attention_heads": v.num_heads,
            "num_key_value_heads": v.num_heads, "head_dim": v.head_dim, "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": v.layer_norm_eps, "image_size": list(v.image_size), "patch_size": v.patch_size,
            "num_channels": v.num_channels, "attention_bias": v.attention_bias,
        },
        "adapter_config": {
            "model_type": "molmo2_adapter", "vision_feature_layer": list(c.feature_layers),
            "hidden_size": c.hidden_size, "num_attention_heads": c.num_heads, "num_key_value_heads": c.num_heads,
            "head_dim": c.head_dim, "attention_bias": c.attention_bias, "hidden_act": "silu",
            "intermediate_size": c.intermediate_size, "text_hidden_size": c.text_hidden_size, "mlp_bias": False,
        },
        "text_config": {
            "model_type": "molmo2_text", "hidden_size": t.hidden_size, "num_attention_heads": t.num_heads,
            "num_key_value_heads": t.num_kv_heads, "head_dim": t.head_dim, "vocab_size": t.vocab_size,
            "additional_vocab_size": t.additional_vocab_size, "attention_bias": t.attention_bias,
            "qk_norm_type": t.qk_norm_type, "num_hidden_layers": t.num_layers,
            "intermediate_size": t.intermediate_size, "hidden_act": "silu",
            "max_position_embeddings": t.max_position_embeddings, "rope_parameters": rope,
            "rope_scaling_layers": list(t.rope_scaling_layers) if t.rope_scaling_layers is not None
            else list(range(t.num_layers)),
            "rms_norm_eps": t.rms_norm_eps, "norm_after": t.norm_after, "tie_word_embeddings": False,
        },
        "image_patch_id": ids.image_patch, "image_start_token_id": ids.image_start,
        "image_end_token_id": ids.image_end, "low_res_image_start_token_id": ids.low_res_image_start,
        "frame_start_token_id": ids.frame_start, "frame_end_token_id": ids.frame_end,
        "tie_word_embeddings": False,
        "dtype": "float32",
    }


def qwen3_text_config(hf: dict, additional_vocab_size: int = 128) -> TextConfig:
    """Qwen3ForCausalLM config.json -> our TextConfig, growing the embedding for Molmo2's tokens."""
    from molmo2_jax.model_config import text_config_from_hf

    tc = text_config_from_hf(hf, additional_vocab_size=additional_vocab_size)
    return dataclasses.replace(tc, tie_word_embeddings=False)
