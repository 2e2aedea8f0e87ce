"""`ExampleEncoder`: the data pipeline's `encode_fn`, a canonical training example -> model arrays.

Reads `data_pipelines.schema.Example` by its fields (no import, so either side can change
independently): conversations (K > 1 = a message tree over the same media), images (decoded
`array`, or `data`/`path`), an optional video (path or bytes, optional [start_s, end_s] clip),
`task` and `meta["loss_weight"]`. Loss weights follow Molmo2: SFT answers 2/sqrt(n)/sqrt(K);
pointing, counting and tracking a flat 0.2; long video captions a flat 0.1 (a dataset's
`meta["loss_weight"]` overrides); pre-training 1 everywhere.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from molmo2_jax.processing.chat import (LONG_CAPTION_WEIGHTING, POINTING_WEIGHTING, SFT_WEIGHTING,
                                        UNWEIGHTED, LossWeighting)
from molmo2_jax.processing.processor import Molmo2Processor
from molmo2_jax.processing.video import load_video

# Task kinds (data_pipelines.schema.Task) whose datasets Molmo2 trains with flat weights.
FLAT_WEIGHTS = {
    "pointing": POINTING_WEIGHTING, "counting": POINTING_WEIGHTING,
    "video_pointing": POINTING_WEIGHTING, "tracking": POINTING_WEIGHTING,
    "video_caption": LONG_CAPTION_WEIGHTING,
}


@dataclasses.dataclass
class ExampleEncoder:
    """Example -> `Molmo2Processor.training_example` arrays (input/target ids, weights, media)."""

    processor: Molmo2Processor
    pretraining: bool = False  # stage 1: every answer token weighs 1

    def weighting(self, example: Any) -> LossWeighting:
        """The example's loss weighting: dataset override, else by stage and task."""
        flat = example.meta.get("loss_weight")
        if flat is not None:
            return LossWeighting(root_length=False, root_branches=False, weight=float(flat))
        if self.pretraining:
            return UNWEIGHTED
        return FLAT_WEIGHTS.get(example.task, SFT_WEIGHTING)

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
