"""Molmo2 training data: registry, download, readers, ArrayRecord shards, synthetic data, and the
per-stage Grain pipeline (mixture -> encode -> first-fit packing -> batches).

    raw sources -> readers/ -> schema.Example -> writer (ArrayRecord) -> pipeline.build_pipeline
                                              (encode_fn from molmo2_jax/processing plugs in here)
"""

from data_pipelines.mixture import config_weights, mix, stage_weights
from data_pipelines.packing import MediaField, PackSpec, default_token_fields
from data_pipelines.pipeline import DataCounters, build_pipeline, decode_batch, prepared_pipeline
from data_pipelines.schema import (SKIP_REASONS, BadSample, Box, Conversation, Example, ImageRef,
                                   Message, Points, Task, Track, VideoRef)
from data_pipelines.synthetic import DEMO_WEIGHTS, SyntheticConfig, SyntheticSource, synthetic_sources

__all__ = [
    "SKIP_REASONS", "BadSample", "Box", "Conversation", "DEMO_WEIGHTS",
    "DataCounters", "Example", "ImageRef", "config_weights", "MediaField", "Message", "PackSpec", "Points",
    "SyntheticConfig", "SyntheticSource", "Task", "Track", "VideoRef", "build_pipeline",
    "decode_batch", "default_token_fields", "mix", "prepared_pipeline", "stage_weights",
    "synthetic_sources",
]
