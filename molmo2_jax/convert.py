"""Checkpoint conversion: HF Molmo2 / Qwen3 + SigLIP2 -> our checkpoints, and ours -> HF Molmo2.

    python -m molmo2_jax.convert --hf DIR --out DIR
    python -m molmo2_jax.convert --qwen3 DIR --siglip2 DIR --out DIR [--vit-layers -3 -9]
    python -m molmo2_jax.convert --to-hf --checkpoint DIR --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys

import jax.numpy as jnp
from flax import nnx

from molmo2_jax.checkpoints import hf
from molmo2_jax.checkpoints.orbax_io import abstract_model, load_params, save_params
from molmo2_jax.checkpoints.safetensors_io import SafetensorsDir, save_sharded
from molmo2_jax.model import Molmo2
from molmo2_jax.model_config import (ConnectorConfig, Molmo2Config, Molmo2TokenIds, _feature_block,
                                     config_from_hf, vit_config_from_hf)
from molmo2_jax.sharding import create_sharded, make_mesh

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
                   "preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json",
                   "generation_config.json",
                   "tokenizer.model", "processor.json")  # our demo models: SentencePiece + processor settings
_ROPE_BUFFERS = r"rotary_emb.*\.inv_freq$"


def _siglip_unused(num_built: int) -> list[str]:
    """Stored SigLIP tensors Molmo2 does not use: later blocks, the text tower, post-norm, pooling head."""
    return [hf.unused_vit_blocks(num_built), r"^text_model\.", r"^logit_", r"post_layernorm", r"\.head\.",
            r"position_ids"]


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: pass a HuggingFace checkpoint directory with config.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); restore or re-download it") from None


def load_hf_molmo2(hf_dir: str, mesh=None, dtype=jnp.float32, **model_kw) -> Molmo2:
    """An HF Molmo2 checkpoint (transformers or original hub key names) as our model."""
    cfg = config_from_hf(hf_dir)
    model = abstract_model(cfg, dtype, **model_kw)
    reader = SafetensorsDir(hf_dir)
    hf.fill_params(nnx.state(model), hf.molmo2_view(reader, cfg), hf.MOLMO2_PREFIXES, mesh=mesh,
                   ignore=[hf.unused_vit_blocks(cfg.vit.num_layers), _ROPE_BUFFERS])
    return model


def load_hf_qwen3(qwen3_dir: str, dtype=jnp.float32):
    """A standalone HF Qwen3ForCausalLM checkpoint as our Qwen3 decoder."""
    from molmo2_jax.qwen3 import Qwen3

    tc = hf.qwen3_text_config(_read_json(os.path.join(qwen3_dir, "config.json")), additional_vocab_size=0)
    tied = _read_json(os.path.join(qwen3_dir, "config.json")).get("tie_word_embeddings", False)
    tc = dataclasses.replace(tc, tie_word_embeddings=tied)
    model = nnx.eval_shape(lambda: Qwen3(tc, dtype=dtype, rngs=nnx.Rngs(0)))
    view = hf.plain_view(SafetensorsDir(qwen3_dir))
    ignore = [_ROPE_BUFFERS] + (["^lm_head\\.weight$"] if tied else [])
    hf.fill_params(nnx.state(model), view, (("lm_head.", "lm_head."), ("", "model.")), ignore=ignore)
    return model


def load_hf_siglip_vit(siglip_dir: str, num_layers: int | None = None, dtype=jnp.float32):
    """The vision tower of an HF SigLIP/SigLIP2 checkpoint as our ViT (first `num_layers` blocks)."""
    from molmo2_jax.vit import VisionTransformer

    vc = _siglip_vision_config(siglip_dir)
    vit = vit_config_from_hf(vc, num_layers=num_layers)
    if "num_patches" in vc:  # NaFlex SigLIP2: choose the grid its position table was trained at
        side = int(round(vc["num_patches"] ** 0.5)) * vit.patch_size
        vit = dataclasses.replace(vit, image_size=(side, side))
    model = nnx.eval_shape(lambda: VisionTransformer(vit, dtype=dtype, rngs=nnx.Rngs(0)))
    prefixes = tuple((ours[len("vision_tower."):] if ours != "vision_tower.positional_embedding"
                      else "positional_embedding", theirs) for ours, theirs in hf.SIGLIP_PREFIXES)
    hf.fill_params(nnx.state(model), hf.siglip_view(SafetensorsDir(siglip_dir)), prefixes,
                   renames=hf.SIGLIP_RENAMES,
                   transform=lambda p, a: hf.siglip_transform("vision_tower." + p, a, vit),
                   ignore=_siglip_unused(vit.num_layers))
    return model


def _siglip_vision_config(siglip_dir: str) -> dict:
    raw = _read_json(os.path.join(siglip_dir, "config.json"))
    return raw.get("vision_config", raw)


def fresh_config(qwen3_dir: str, siglip_dir: str, vit_layers=(-3, -9),
                 additional_vocab_size: int = 128) -> Molmo2Config:
    """nanoMolmo2 (or 4B/8B) config from a Qwen3 and a SigLIP/SigLIP2 config.json."""
    text = hf.qwen3_text_config(_read_json(os.path.join(qwen3_dir, "config.json")), additional_vocab_size)
    vc = _siglip_vision_config(siglip_dir)
    depth = vc["num_hidden_layers"]
    blocks = tuple(_feature_block(layer, depth) for layer in vit_layers)
    if any(not 0 <= b < depth for b in blocks):
        raise ValueError(f"--vit-layers {list(vit_layers)} do not index the {depth}-block ViT; pick layers in "
                         f"[-{depth}, {depth - 1}]")
    vit = vit_config_from_hf(vc, num_layers=max(blocks) + 1)
    if vc.get("model_type") in ("siglip2_vision_model", "siglip2") or "num_patches" in vc:
        image = 378 if vit.patch_size == 14 else vit.patch_size * 27
        vit = dataclasses.replace(vit, image_size=(image, image))  # NaFlex SigLIP2: Molmo2 crops are 27x27
    conn = ConnectorConfig(feature_layers=blocks, hidden_size=vit.hidden_size, num_heads=vit.num_heads,
                           head_dim=vit.head_dim, intermediate_size=text.intermediate_size,
                           text_hidden_size=text.hidden_size)
    return Molmo2Config(vit=vit, connector=conn, text=text, token_ids=Molmo2TokenIds.at(text.vocab_size))


def fresh_from_qwen3_siglip(qwen3_dir: str, siglip_dir: str, *, vit_layers=(-3, -9), seed: int = 0,
                            mesh=None, dtype=jnp.float32) -> Molmo2:
    """Fresh nanoMolmo2: Qwen3 decoder (+128 embedding rows, untied head), SigLIP ViT, new connector."""
    cfg = fresh_config(qwen3_dir, siglip_dir, vit_layers)
    mesh = mesh or make_mesh()
    model = create_sharded(lambda: Molmo2(cfg, dtype=dtype, rngs=nnx.Rngs(seed)), mesh)
    state = nnx.state(model)
    qwen = hf.plain_view(SafetensorsDir(qwen3_dir))
    if "lm_head.weight" not in qwen:  # tied Qwen3: the untied Molmo2 head starts from the embedding
        qwen["lm_head.weight"] = qwen["model.embed_tokens.weight"]
    hf.fill_params(state, qwen, hf.QWEN3_PREFIXES, only="language_model.", mesh=mesh,
                   row_prefix={"language_model.embed_tokens.embedding"}, ignore=[_ROPE_BUFFERS])
    vit = cfg.vit
    hf.fill_params(state, hf.siglip_view(SafetensorsDir(siglip_dir)), hf.SIGLIP_PREFIXES,
                   renames=hf.SIGLIP_RENAMES, only="vision_tower.", mesh=mesh,
                   transform=lambda p, a: hf.siglip_transform(p, a, vit),
                   ignore=_siglip_unused(vit.num_layers))
    nnx.update(model, state)
    return model


def export_hf(model: Molmo2, out_dir: str, extra_files_from: str | None = None) -> None:
    """Write our model as an HF Molmo2 checkpoint (transformers names, safetensors + config.json)."""
    os.makedirs(out_dir, exist_ok=True)
    save_sharded(hf.export_tensors(nnx.state(model, nnx.Param), model.cfg), out_dir)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf.hf_config_dict(model.cfg), f, indent=2)
    copy_tokenizer_files(extra_files_from, out_dir)


def copy_tokenizer_files(src: str | None, dst: str) -> None:
    """Carry tokenizer/processor files along with converted weights."""
    if not src:
        return
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m molmo2_jax.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hf", help="HF Molmo2 checkpoint directory to convert")
    p.add_argument("--qwen3", help="HF Qwen3 checkpoint directory (fresh nanoMolmo2)")
    p.add_argument("--siglip2", help="HF SigLIP2/SigLIP checkpoint directory (fresh nanoMolmo2)")
    p.add_argument("--vit-layers", type=int, nargs="+", default=[-3, -9], help="ViT layers the connector reads")
    p.add_argument("--to-hf", action="store_true", help="export our checkpoint to HF Molmo2")
    p.add_argument("--checkpoint", help="our checkpoint directory (with --to-hf)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh connector")
    args = p.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"error: --out {args.out} is a file; pass a directory (it is created if missing)", file=sys.stderr)
        return 2
    try:
        if args.to_hf:
            if not args.checkpoint:
                p.error("--to-hf needs --checkpoint DIR")
            model = load_params(args.checkpoint)
            export_hf(model, args.out, extra_files_from=args.checkpoint)
        elif args.hf:
            model = load_hf_molmo2(args.hf, mesh=make_mesh())
            save_params(args.out, model)
            copy_tokenizer_files(args.hf, args.out)
        elif args.qwen3 and args.siglip2:
            model = fresh_from_qwen3_siglip(args.qwen3, args.siglip2, vit_layers=tuple(args.vit_layers),
                                            seed=args.seed)
            save_params(args.out, model)
            copy_tokenizer_files(args.qwen3, args.out)
        else:
            p.error("give --hf DIR, or --qwen3 DIR --siglip2 DIR, or --to-hf --checkpoint DIR")
    except (hf.ConversionError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
