"""`ExampleEncoder`: the data pipeline's `encode_fn`, a canonical training example -> model arrays.

Reads `data_pipelines.schema.Example` by its fields (no import, so either side can change
independently): conversations (K > 1 = a message tree over the same media), images (decoded
`array`, or `data`/`path`), an optional video (path or bytes, optional [start_s, end_s] clip),
`task` and `source` (the dataset), which pick the loss rule from `chat.SFT_LOSS_WEIGHTS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from molmo2_jax.processing.chat import LossWeighting, loss_weighting
from molmo2_jax.processing.processor import Molmo2Processor
from molmo2_jax.processing.video import load_video


@dataclasses.dataclass
class ExampleEncoder:
    """Example -> `Molmo2Processor.training_example` arrays (input/target ids, weights, media)."""

    processor: Molmo2Processor
    mixture: str = ""  # the config's `data.mixture`: pre-training mixtures weigh every answer token 1

    def weighting(self, example: Any) -> LossWeighting:
        """The example's loss rule (`chat.loss_weighting`: by mixture, dataset, task)."""
        return loss_weighting(example.task, example.source, self.mixture)

    def __call__(self, example: Any) -> dict[str, np.ndarray]:
        branches = []
        for conv in example.conversations:
            messages: list[dict[str, Any]] = [{"role": m.role, "content": m.content}
                                              for m in conv.messages]
            if conv.style and messages:
                messages[0]["content"] = [{"type": "text", "text": messages[0]["content"],
                                           "style": conv.style}]
            branches.append(messages)
        images = [ref.array if ref.array is not None else (ref.data or ref.path)
                  for ref in example.images]
        videos = []
        if example.video is not None:
            ref = example.video
            clip = None
            if ref.start_s is not None or ref.end_s is not None:
                clip = (ref.start_s or 0.0, ref.end_s if ref.end_s is not None else float("inf"))
            cfg = self.processor.video
            videos.append(load_video(ref.data or ref.path, cfg.max_frames, cfg.max_fps, clip,
                                     max_frame_pixels=cfg.max_frame_pixels, max_video_pixels=cfg.max_video_pixels))
        return self.processor.training_example(branches, images, videos, self.weighting(example))
