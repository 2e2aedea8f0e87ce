"""`ExampleEncoder`: the data pipeline's `encode_fn`, a canonical training example -> model arrays.

Reads `data_pipelines.schema.Example` by its fields (no import, so either side can change
independently): conversations (K > 1 = a message tree over the same media), images (decoded
`array`, or `data`/`path`), an optional video (path or bytes, optional [start_s, end_s] clip),
`task` and `source` (the dataset), which pick the loss rule from `chat.SFT_LOSS_WEIGHTS`, and
`meta["subtitles"]` of a video, written after its frames for the frames actually sampled.

Randomness (stage-1 length hints, the high-res crop choice) is drawn per (seed, epoch, example id, purpose)
(`ExampleEncoder.rng`): the same example looks different in its second epoch, as Molmo2's loader redraws it,
while a run (and a resumed run: the pipeline's state fixes each record's epoch) stays reproducible.
"""

from __future__ import annotations

import copy
import dataclasses
import zlib
from typing import Any

import numpy as np

from molmo2_jax.processing.chat import LossWeighting, loss_weighting
from molmo2_jax.processing.processor import Molmo2Processor
from molmo2_jax.processing.video import load_video, subtitle_text


LABEL_STYLES = ("pointing", "point_count", "cosyn_point")  # "style: label", no length hint
NO_QUESTION_STYLES = ("long_caption", "transcript")  # PixMo-Cap has no question: the prompt is the prefix alone


def style_and_length_v2(style: str, prompt: str, answer: str, rng: np.random.Generator) -> str:
    """Molmo2 pre-training's user turn (DataFormatter system_prompt='style_and_length_v2', templates 'none').

    Pointing styles: "pointing: label"; every other style gets a noisy length hint 90% of the time,
    "long_caption 57:" with N = (len(answer) + round-down normal(0, 25)) // 15, else "long_caption:".
    """
    if style in LABEL_STYLES:
        prefix = f"{style}:"
    elif rng.random() > 0.10:
        prefix = f"{style} {(len(answer) + int(rng.normal(scale=25))) // 15}:"
    else:
        prefix = f"{style}:"
    return f"{prefix} {prompt}" if prompt else prefix


@dataclasses.dataclass
class ExampleEncoder:
    """Example -> `Molmo2Processor.training_example` arrays (input/target ids, weights, media)."""

    processor: Molmo2Processor
    mixture: str = ""  # the config's `data.mixture`: pre-training mixtures weigh every answer token 1
    system_prompt: str = ""  # "style_and_length_v2": Molmo2 stage-1 prompts (`style_and_length_v2`)
    high_res_datasets: frozenset = frozenset()  # SFT image pointing: Molmo2 `override_p_high_res`
    p_high_res: float = 0.0  # fraction of their examples tiled with up to `high_res_max_crops` crops
    high_res_max_crops: int = 24
    seed: int = 0  # the config's seed: with the epoch and example id it fixes every random choice

    def rng(self, example: Any, purpose: str) -> np.random.Generator:
        """The generator of one random choice of one example in one epoch (Molmo2 redraws them every epoch)."""
        key = zlib.crc32(f"{purpose}/{example.id}".encode())
        return np.random.default_rng([self.seed, getattr(example, "epoch", 0), key])

    def processor_for(self, example: Any) -> Molmo2Processor:
        """Molmo2's high-res override: `p_high_res` of a listed dataset's images (drawn per epoch) get
        up to `high_res_max_crops` crops instead of the processor's max_crops."""
        if example.source not in self.high_res_datasets or not example.images:
            return self.processor
        if self.rng(example, "high_res").random() >= self.p_high_res:
            return self.processor
        high = copy.copy(self.processor)
        high.image = dataclasses.replace(self.processor.image, max_crops=self.high_res_max_crops)
        return high

    def weighting(self, example: Any) -> LossWeighting:
        """The example's loss rule (`chat.loss_weighting`: by mixture, dataset, task)."""
        return loss_weighting(example.task, example.source, self.mixture)

    def __call__(self, example: Any) -> dict[str, np.ndarray]:
        branches = []
        for k, conv in enumerate(example.conversations):
            messages: list[dict[str, Any]] = [{"role": m.role, "content": m.content}
                                              for m in conv.messages]
            if self.system_prompt == "style_and_length_v2" and conv.style and messages:
                messages[0]["content"] = style_and_length_v2(
                    conv.style, self._stage1_prompt(example, k, conv.style, messages[0]["content"]),
                    messages[-1]["content"], self.rng(example, f"style/{k}"))
            elif conv.style and messages:
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
            subtitles = subtitle_text(example.meta.get("subtitles") or "", videos[0].timestamps)
            if subtitles:  # after the video, shared by every branch (chat: a leading "subtitle" message)
                branches = [[{"role": "subtitle", "content": subtitles}, *b] for b in branches]
        return self.processor_for(example).training_example(branches, images, videos, self.weighting(example))

    @staticmethod
    def _stage1_prompt(example: Any, branch: int, style: str, question: str) -> str:
        """The raw prompt Molmo2 pre-training formats: a lower-cased label, nothing for captions, else the text."""
        if style in NO_QUESTION_STYLES:
            return ""
        if style in ("pointing", "point_count") and len(example.points) == len(example.conversations):
            return example.points[branch].label.lower()
        return question
