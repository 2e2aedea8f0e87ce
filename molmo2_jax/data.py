"""Glue between a stage config and data_pipelines: the processor, the model config it implies, the batches."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from molmo2_jax.model_config import Molmo2Config, Molmo2TokenIds, preset
from molmo2_jax.processing.images import ImageConfig
from molmo2_jax.processing.processor import Molmo2Processor
from molmo2_jax.processing.tokenizer import SentencePieceTokenizer, load_tokenizer, train_sentencepiece
from molmo2_jax.processing.video import VideoConfig


def synthetic_config(config):
    """The synthetic scenes a config asks for (`data.image_size`, optional `data.synthetic` overrides)."""
    from data_pipelines.synthetic import SyntheticConfig

    side = config.data.get("image_size", 64)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(config.data.get("synthetic", {})).items()}
    return SyntheticConfig(width=side, height=side, **fields)


def demo_tokenizer(config, workdir: str) -> SentencePieceTokenizer:
    """The tiny demo's SentencePiece model, trained once on synthetic text and kept in the workdir."""
    path = os.path.join(workdir, "tokenizer.model")
    if not os.path.exists(path):
        from data_pipelines.synthetic import synthetic_sources

        texts = []
        for source in synthetic_sources(200, seed=config.seed + 1, config=synthetic_config(config)).values():
            for i in range(len(source)):
                for conv in source[i].conversations:
                    texts += [m.content for m in conv.messages]
        os.makedirs(workdir, exist_ok=True)
        tmp = train_sentencepiece(texts, path[: -len(".model")] + ".tmp", vocab_size=config.data.get("vocab_size", 400))
        os.replace(tmp, path)
    return SentencePieceTokenizer(path)


def make_processor(config, workdir: str) -> Molmo2Processor:
    """The processor a config trains with: the tiny model's small crops, or Molmo2's 378-px ones.

    Fine-tuning on your JSONL (`init.checkpoint` with a saved processor or HF tokenizer) keeps the checkpoint's.
    """
    init = config.init.checkpoint
    saved = ("processor.json", "tokenizer.json")
    if config.data.mixture == "jsonl" and init and any(os.path.exists(os.path.join(init, f)) for f in saved):
        keep_tokenizer_file(init, workdir)
        return Molmo2Processor.load(init)
    if config.model.name == "tiny":
        tok = demo_tokenizer(config, workdir)
        vit = model_preset(config).vit
        image = ImageConfig(base_size=vit.image_size[0], patch_size=vit.patch_size,
                            max_crops=config.data.max_crops_per_image, overlap_margins=(1, 1))
        video = VideoConfig(base_size=vit.image_size[0], patch_size=vit.patch_size, pooling=(2, 2),
                            max_frames=max(config.data.max_frames, 1))
        return Molmo2Processor(tok, image, video)
    tok = load_tokenizer(config.get("tokenizer") or None)
    return Molmo2Processor(tok, ImageConfig(max_crops=config.data.max_crops_per_image),
                           VideoConfig(max_frames=max(config.data.max_frames, 1)))


def keep_tokenizer_file(checkpoint: str, workdir: str) -> None:
    """Copy a checkpoint's SentencePiece file to `workdir/tokenizer.model`, so the run's model/ carries it."""
    import json
    import shutil

    path = os.path.join(checkpoint, "processor.json")
    name = json.load(open(path)).get("tokenizer") if os.path.exists(path) else None
    if name and name.endswith(".model"):
        os.makedirs(workdir, exist_ok=True)
        shutil.copy(os.path.join(checkpoint, name), os.path.join(workdir, "tokenizer.model"))


def fit_to_token_ids(cfg: Molmo2Config, ids: Molmo2TokenIds) -> Molmo2Config:
    """A model config whose vocabulary ends where the tokenizer's Molmo2 tokens start, using their ids."""
    return cfg.replace(text=dataclasses.replace(cfg.text, vocab_size=ids.image_start), token_ids=ids)


def model_preset(config) -> Molmo2Config:
    """`model.name`'s preset with the config's `model.vit` / `model.connector` / `model.text` field overrides
    (the demo's own widths); the connector's output width follows the decoder's."""
    cfg = preset(config.model.name)
    parts = {k: dict(config.model.get(k, {}) or {}) for k in ("vit", "connector", "text")}
    if not any(parts.values()):
        return cfg
    for k, v in parts["vit"].items():
        parts["vit"][k] = tuple(v) if isinstance(v, list) else v
    text = dataclasses.replace(cfg.text, **parts["text"])
    connector = dataclasses.replace(cfg.connector, **{"text_hidden_size": text.hidden_size, **parts["connector"]})
    return cfg.replace(vit=dataclasses.replace(cfg.vit, **parts["vit"]), connector=connector, text=text)


def model_config_for(config, processor: Molmo2Processor) -> Molmo2Config:
    """The preset (with its overrides), the tiny model's vocabulary fitted to its SentencePiece tokenizer."""
    cfg = model_preset(config)
    return fit_to_token_ids(cfg, processor.token_ids) if config.model.name == "tiny" else cfg


def pack_spec(config, processor: Molmo2Processor | None, model_cfg: Molmo2Config):
    """The packed-sequence layout of a stage config (processor None: Qwen3's pad id, for abstract shapes)."""
    from data_pipelines.packing import PAD_ID, MediaField, PackSpec, default_token_fields

    vit = model_cfg.vit
    crop = (vit.num_patches, vit.patch_dim)
    rows = config.data.get("crop_group_rows", 1)  # rows sharing one crop stack: budgets scale with it
    media = [MediaField.image(rows * config.data.max_crops, crop)]
    if config.data.max_frames:
        video = MediaField.video(rows * config.data.max_frames, crop)
        if processor is not None:  # the processor's pooling window (the tiny demo pools frames 2x2, Molmo2 3x3)
            video = dataclasses.replace(video, window=int(np.prod(processor.video.pooling)))
        media.append(video)
    fields = default_token_fields(PAD_ID if processor is None else processor.token_ids.pad)
    fields.update(target_ids=("int32", -1), branch_ids=("int32", -1))
    return PackSpec(config.seq_len, tuple(media), fields, rows=rows)


def make_train_data(config, processor: Molmo2Processor, model_cfg: Molmo2Config, process_index: int = 0,
                    process_count: int = 1):
    """The per-process Grain dataset of packed batches for a stage config (synthetic for the demo)."""
    from data_pipelines.mixture import config_weights
    from data_pipelines.pipeline import build_pipeline, prepared_pipeline

    from molmo2_jax.processing.encode import ExampleEncoder

    encoder = ExampleEncoder(processor, mixture=config.data.mixture,
                             system_prompt=config.data.get("system_prompt", ""),
                             high_res_datasets=frozenset(config.data.get("high_res_datasets", ())),
                             p_high_res=config.data.get("p_high_res", 0.0),
                             high_res_max_crops=config.data.get("high_res_max_crops", 24), seed=config.seed)
    spec = pack_spec(config, processor, model_cfg)
    if config.batch_size % process_count:
        raise ValueError(f"batch_size {config.batch_size} does not split over {process_count} processes")
    kw = dict(seed=config.seed, process_index=process_index, process_count=process_count,
              pack_window=config.data.window, num_workers=config.data.num_workers,
              max_consecutive_skips=config.data.get("max_consecutive_skips", 256))
    local_batch = config.batch_size // process_count
    if config.data.mixture == "synthetic":
        from data_pipelines.synthetic import synthetic_sources

        weights = config_weights("synthetic", dict(config.data.weights))
        tasks = tuple(k[len("synthetic_"):] for k in weights)
        sources = synthetic_sources(config.data.num_examples, seed=config.seed, config=synthetic_config(config),
                                    tasks=tasks)
        return build_pipeline(sources, weights, encoder, spec, local_batch, **kw)
    if config.data.mixture == "jsonl":  # your own data (configs/finetune.py), checked line by line first
        from data_pipelines.readers.user_jsonl import load_user_data

        examples = load_user_data(config.data.path, config.data.get("skip_bad", False))
        return build_pipeline({"user_jsonl": examples}, {"user_jsonl": 1.0}, encoder, spec, local_batch, **kw)
    if not config.data.path:
        raise ValueError(f"data.path is empty: prepare the {config.data.mixture} datasets with "
                         "`python -m data_pipelines.download` and `python -m data_pipelines.writer`, then pass "
                         "--config.data.path=DIR")
    weights, missing = prepared_mixture(config)
    return prepared_pipeline(config.data.path, weights, encoder, spec, local_batch, missing=missing, **kw)


def prepared_mixture(config) -> tuple[dict[str, float], list[str]]:
    """Shares of the stage mixture from the sizes of the data prepared under `data.path`.

    A mixture dataset that is not prepared stops the run (all of them listed), unless
    `data.allow_missing`: then it is dropped, logged here and counted in the metrics (`data/missing/<name>`).
    """
    import logging

    from data_pipelines.mixture import resolve_mixture
    from data_pipelines.writer import prepared_datasets

    sizes = prepared_datasets(config.data.path)
    weights, missing = resolve_mixture(config.data.mixture, dict(config.data.weights), sizes,
                                       allow_missing=config.data.get("allow_missing", False))
    if missing:
        logging.getLogger(__name__).warning(
            "data.allow_missing: training WITHOUT %d dataset(s) of mixture %s not prepared under %s: %s",
            len(missing), config.data.mixture, config.data.path, ", ".join(missing))
        print(f"WARNING: training without {len(missing)} missing dataset(s): {', '.join(missing)}", flush=True)
    return weights, missing
