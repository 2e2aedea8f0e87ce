"""`Molmo2Processor`: text + images + videos -> the numpy arrays Molmo2 consumes (transformers' names).

    processor = Molmo2Processor.from_pretrained("path/to/Molmo2-4B")   # or Molmo2Processor(tokenizer)
    batch = processor(text="<|image|><|im_start|>user\\nPoint to the dog.<|im_end|>\\n"
                           "<|im_start|>assistant\\n", images=["dog.jpg"])
    batch = processor.chat("Point to the dog.", images=["dog.jpg"])   # same, prompt built for you

Output (batch of one): input_ids / attention_mask / mm_token_type_ids [1, T]; pixel_values
[crops, patches, 588]; image_token_pooling [tokens, 4] (-1 = pad, indices global over the crops of
all images); image_grids [images, 4]; image_num_crops [images]; pixel_values_videos [frames,
patches, 588]; video_token_pooling [tokens, 9]; video_grids [videos, 3]. `<|image|>`/`<|video|>` in
the text mark where each image's/video's tokens go, in order; BOS is prepended when missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np

from molmo2_jax.processing import chat as chat_lib
from molmo2_jax.processing.images import (ImageConfig, ImageInput, ProcessedImage, image_token_ids, stack_pooling,
                                          load_image, process_image)
from molmo2_jax.model_config import Molmo2TokenIds
from molmo2_jax.processing.tokenizer import IMAGE_PROMPT, VIDEO_PROMPT, HFTokenizer, Tokenizer, load_tokenizer
from molmo2_jax.processing.video import (ProcessedVideo, VideoConfig, VideoFrames, load_video, load_video_hf,
                                         process_video, video_token_segments)

VideoInput = Any  # a path, a VideoFrames, or a (frames [T, H, W, 3] uint8, timestamps [T]) pair
PROCESSOR_FILE = "processor.json"
HF_VIDEO_NUM_FRAMES, HF_VIDEO_MAX_FPS = 64, 2  # transformers 5.23 Molmo2VideoProcessor class defaults


class Molmo2Processor:
    """Tokenizes a prompt and expands each image/video placeholder into Molmo2's vision tokens."""

    def __init__(self, tokenizer: Tokenizer, image: ImageConfig = ImageConfig(),
                 video: VideoConfig = VideoConfig(),
                 token_ids: Molmo2TokenIds | None = None) -> None:
        self.tokenizer = tokenizer
        self.image = image
        self.video = video
        self.token_ids = Molmo2TokenIds.from_tokenizer(tokenizer) if token_ids is None else token_ids

    @classmethod
    def from_pretrained(cls, hf_dir: str, tokenizer: Tokenizer | None = None) -> "Molmo2Processor":
        """Read an HF Molmo2 directory: tokenizer.json + preprocessor/video/processor configs.

        Settings missing from the files take transformers' class defaults (e.g. column tokens
        after the low-res rows when `use_single_crop_col_tokens` is absent), as transformers does.
        """
        tok = tokenizer if tokenizer is not None else HFTokenizer.from_pretrained(hf_dir)
        proc = _read_json(hf_dir, "processor_config.json")
        img = {**_read_json(hf_dir, "preprocessor_config.json"), **proc.get("image_processor", {})}
        vid = {**_read_json(hf_dir, "video_preprocessor_config.json"),
               **proc.get("video_processor", {})}
        col = proc.get("image_use_col_tokens", True)
        low_col = proc.get("use_single_crop_col_tokens")
        image = ImageConfig(
            **_vision_fields(img, ImageConfig()),
            max_crops=img.get("max_crops", ImageConfig.max_crops),
            overlap_margins=tuple(img.get("overlap_margins", ImageConfig.overlap_margins)),
            use_col_tokens=col,
            low_res_col_tokens=col if low_col is None else low_col,
            low_res_start_token=proc.get("use_single_crop_start_token", True),
        )
        _check_hf_video_config(hf_dir, vid)
        video = VideoConfig(
            **_vision_fields(vid, VideoConfig()),
            # transformers' Molmo2VideoProcessor: class defaults num_frames 64 and max_fps 2, its own sampler
            max_frames=int(vid.get("num_frames") or HF_VIDEO_NUM_FRAMES),
            max_fps=vid.get("max_fps", HF_VIDEO_MAX_FPS),
            sampler="transformers",
            use_col_tokens=proc.get("video_use_col_tokens", False),
            frame_special_tokens=proc.get("use_frame_special_tokens", True),
        )
        return cls(tok, image, video)

    def save(self, path: str, tokenizer_file: str | None = None) -> None:
        """Write the settings (`processor.json`, and a copy of the tokenizer file, if any) next to the weights."""
        os.makedirs(path, exist_ok=True)
        name = None
        if tokenizer_file:
            name = os.path.basename(tokenizer_file)
            shutil.copy(tokenizer_file, os.path.join(path, name))
        with open(os.path.join(path, PROCESSOR_FILE), "w") as f:
            json.dump({"tokenizer": name, "image": dataclasses.asdict(self.image),
                       "video": dataclasses.asdict(self.video),
                       "token_ids": dataclasses.asdict(self.token_ids)}, f, indent=2)

    @staticmethod
    def can_load(path: str) -> bool:
        """Whether `path` holds our `processor.json` or an HF `tokenizer.json`."""
        return any(os.path.exists(os.path.join(path, f)) for f in (PROCESSOR_FILE, "tokenizer.json"))

    @classmethod
    def load(cls, path: str) -> "Molmo2Processor":
        """Inverse of `save` (no tokenizer file: Qwen3's built-in vocabulary); an HF directory via `from_pretrained`."""
        if not os.path.exists(os.path.join(path, PROCESSOR_FILE)):
            if os.path.exists(os.path.join(path, "tokenizer.json")):
                return cls.from_pretrained(path)
            raise FileNotFoundError(f"{path} has neither {PROCESSOR_FILE} nor tokenizer.json; save the processor "
                                    "there with Molmo2Processor.save(path)")
        with open(os.path.join(path, PROCESSOR_FILE)) as f:
            d = json.load(f)
        tok = load_tokenizer(os.path.join(path, d["tokenizer"]) if d["tokenizer"] else None)

        def tup(x: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in x.items()}

        return cls(tok, ImageConfig(**tup(d["image"])), VideoConfig(**tup(d["video"])),
                   Molmo2TokenIds(**d["token_ids"]))

    # --------------------------------------------------------------------------------------------
    # Inference

    def __call__(self, text: str | None = None, images: Sequence[ImageInput] | None = None,
                 videos: Sequence[VideoInput] | None = None) -> dict[str, np.ndarray]:
        """Arrays for one prompt; `text` holds one `<|image|>`/`<|video|>` per image/video."""
        images, videos = list(images or []), list(videos or [])
        processed_images, frames, processed_videos = self._process_media(images, videos)
        out = self._media_arrays(processed_images, processed_videos)
        if text is None:
            return out
        n_img, n_vid = text.count(IMAGE_PROMPT), text.count(VIDEO_PROMPT)
        if (n_img, n_vid) != (len(images), len(videos)):
            raise ValueError(
                f"the prompt has {n_img} {IMAGE_PROMPT} and {n_vid} {VIDEO_PROMPT} placeholders "
                f"but {len(images)} images and {len(videos)} videos were given; put one "
                "placeholder per image/video in the text, or build it with processor.chat(...)")
        ids = self._encode_with_media(text, processed_images, processed_videos, frames)
        out.update(self._token_arrays(ids, batch=True))
        return out

    def apply_chat_template(self, messages: Sequence[chat_lib.Message],
                            num_images: int | None = None, num_videos: int | None = None,
                            add_generation_prompt: bool = True) -> str:
        """Molmo2's chat prompt for `messages` (media placeholders first), without BOS."""
        return chat_lib.render_chat(messages, num_images, num_videos, add_generation_prompt)

    def chat(self, prompt: str | Sequence[chat_lib.Message],
             images: Sequence[ImageInput] | None = None,
             videos: Sequence[VideoInput] | None = None) -> dict[str, np.ndarray]:
        """Arrays for a question (or a message list) about the given media, ready to generate."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        text = self.apply_chat_template(messages, len(images or []), len(videos or []))
        return self(text=text, images=images, videos=videos)

    # --------------------------------------------------------------------------------------------
    # Training

    def training_example(self, branches: Sequence[Sequence[chat_lib.Message]],
                         images: Sequence[ImageInput] | None = None,
                         videos: Sequence[VideoInput] | None = None,
                         weighting: chat_lib.LossWeighting = chat_lib.SFT_WEIGHTING,
                         ) -> dict[str, np.ndarray]:
        """One (possibly branched) training example with its media expanded, unbatched.

        Returns input_ids, target_ids, loss_weights, branch_ids, position_ids, mm_token_type_ids
        (all [T]) and the media arrays of `__call__`.
        """
        images, videos = list(images or []), list(videos or [])
        text = chat_lib.encode_training_example(self.tokenizer, branches, len(images),
                                                len(videos), weighting)
        processed_images, frames, processed_videos = self._process_media(images, videos)
        image_blocks = iter([image_token_ids(p.grid, self.image, self.token_ids)
                             for p in processed_images])
        video_blocks = iter([self._encode_segments(video_token_segments(
            f.timestamps, p.grid, self.video, self.token_ids))
            for f, p in zip(frames, processed_videos)])
        # Input tokens per original position: a placeholder becomes its media's tokens.
        placeholders = {self.token_ids.image_prompt: image_blocks,
                        self.token_ids.video_prompt: video_blocks}
        blocks = [next(placeholders[t]) if t in placeholders else np.asarray([t], np.int32)
                  for t in text.input_ids.tolist()]
        lens = np.asarray([len(b) for b in blocks])
        ends = np.cumsum(lens) - 1  # where each text position's block ends: it carries that position's target
        input_ids = np.concatenate(blocks).astype(np.int32)
        target_ids = np.append(input_ids[1:], 0).astype(np.int32)  # inside a media block: the next token
        targets = np.asarray(text.target_ids, np.int32).copy()
        # a text target that is the next position's placeholder: predict its media's first token
        ahead = np.flatnonzero(np.isin(targets[:-1], list(placeholders)) & (text.input_ids[1:] == targets[:-1]))
        targets[ahead] = input_ids[ends[ahead] + 1]
        target_ids[ends] = targets
        loss_weights = np.zeros(len(input_ids), np.float32)
        loss_weights[ends] = text.loss_weights
        out = {"input_ids": input_ids, "target_ids": target_ids, "loss_weights": loss_weights,
               "branch_ids": np.repeat(np.asarray(text.branch_ids, np.int32), lens)}
        out["position_ids"] = chat_lib.branch_positions(out["branch_ids"])
        out["mm_token_type_ids"] = self._token_arrays(out["input_ids"], batch=False)["mm_token_type_ids"]
        out.update(self._media_arrays(processed_images, processed_videos))
        return out

    # --------------------------------------------------------------------------------------------
    # Internals

    def _process_media(self, images: Sequence[ImageInput], videos: Sequence[VideoInput]
                       ) -> tuple[list[ProcessedImage], list[VideoFrames], list[ProcessedVideo]]:
        """Load and process every image and video (decoding/sampling video files)."""
        processed_images = [process_image(load_image(x, self.image.max_pixels), self.image)
                            for x in images]
        frames = [self._video_frames(v) for v in videos]
        return processed_images, frames, [process_video(f, self.video) for f in frames]

    def load_video(self, path: str | os.PathLike | bytes) -> VideoFrames:
        """The frames this processor samples from a video file: molmo-utils' sampler (training, our
        checkpoints) or, for a processor read from an HF directory, transformers' (`VideoConfig.sampler`)."""
        cfg = self.video
        if cfg.sampler == "transformers":
            return load_video_hf(path, cfg.max_frames, cfg.max_fps, max_frame_pixels=cfg.max_frame_pixels,
                                 max_video_pixels=cfg.max_video_pixels)
        return load_video(path, cfg.max_frames, cfg.max_fps, max_frame_pixels=cfg.max_frame_pixels,
                          max_video_pixels=cfg.max_video_pixels)

    def _video_frames(self, video: VideoInput) -> VideoFrames:
        """Sampled frames of a path (`load_video`) or pre-sampled frames with timestamps."""
        if isinstance(video, VideoFrames):
            return video
        if isinstance(video, (str, os.PathLike, bytes)):
            return self.load_video(video)
        if isinstance(video, tuple) and len(video) == 2:
            return VideoFrames(*video)
        raise TypeError(f"cannot use a {type(video).__name__} as a video; pass a path, a "
                        "VideoFrames or a (frames [T, H, W, 3] uint8, timestamps [T]) pair")

    def _encode_segments(self, segments: Sequence[str | np.ndarray]) -> np.ndarray:
        """Concatenate token arrays and encoded text, merging adjacent text before encoding."""
        parts: list[np.ndarray] = []
        pending = ""
        for seg in segments:
            if isinstance(seg, str):
                pending += seg
                continue
            if pending:
                parts.append(np.asarray(self.tokenizer.encode(pending), np.int32))
                pending = ""
            parts.append(np.asarray(seg, np.int32))
        if pending:
            parts.append(np.asarray(self.tokenizer.encode(pending), np.int32))
        return np.concatenate(parts) if parts else np.zeros(0, np.int32)

    def _encode_with_media(self, text: str, images: Sequence[ProcessedImage],
                           videos: Sequence[ProcessedVideo],
                           frames: Sequence[VideoFrames]) -> np.ndarray:
        """Token ids of `text` with BOS and every placeholder replaced by its media's tokens."""
        bos = self.tokenizer.bos_token
        segments: list[str | np.ndarray] = []
        if not text.startswith(bos):
            segments.append(np.asarray([self.token_ids.bos], np.int32))
        img_iter, vid_iter = iter(images), iter(zip(frames, videos))
        pos = 0
        while True:
            i, v = text.find(IMAGE_PROMPT, pos), text.find(VIDEO_PROMPT, pos)
            if i < 0 and v < 0:
                segments.append(text[pos:])
                break
            if v < 0 or 0 <= i < v:
                segments.append(text[pos:i])
                segments.append(image_token_ids(next(img_iter).grid, self.image, self.token_ids))
                pos = i + len(IMAGE_PROMPT)
            else:
                segments.append(text[pos:v])
                f, p = next(vid_iter)
                segments.extend(video_token_segments(f.timestamps, p.grid, self.video,
                                                     self.token_ids))
                pos = v + len(VIDEO_PROMPT)
        return self._encode_segments(segments)

    def _token_arrays(self, ids: np.ndarray, batch: bool) -> dict[str, np.ndarray]:
        """input_ids, attention_mask and mm_token_type_ids (1 on vision structure/patch tokens)."""
        ids = np.asarray(ids, np.int32)
        mm = np.isin(ids, self.token_ids.vision_ids).astype(np.int32)
        out = {"input_ids": ids, "attention_mask": np.ones_like(ids), "mm_token_type_ids": mm}
        return {k: v[None] for k, v in out.items()} if batch else out

    @staticmethod
    def _media_arrays(images: Sequence[ProcessedImage],
                      videos: Sequence[ProcessedVideo]) -> dict[str, np.ndarray]:
        """Concatenated pixels, pooling indices offset into the concatenation, and grids."""
        out: dict[str, np.ndarray] = {}
        if images:
            out["pixel_values"] = np.concatenate([p.pixel_values for p in images])
            out["image_token_pooling"] = stack_pooling([p.pooling for p in images],
                                                       [np.prod(p.pixel_values.shape[:2]) for p in images])
            out["image_grids"] = np.asarray([p.grid for p in images], np.int32)
            out["image_num_crops"] = np.asarray([len(p.pixel_values) for p in images], np.int32)
        if videos:
            out["pixel_values_videos"] = np.concatenate([p.pixel_values for p in videos])
            out["video_token_pooling"] = stack_pooling([p.pooling for p in videos],
                                                       [np.prod(p.pixel_values.shape[:2]) for p in videos])
            out["video_grids"] = np.asarray([p.grid for p in videos], np.int32)
        return out


def _read_json(directory: str, name: str) -> dict[str, Any]:
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _check_hf_video_config(hf_dir: str, vid: dict[str, Any]) -> None:
    """Refuse video settings of an HF directory that transformers honours but this processor does not."""
    unsupported = {k: vid[k] for k, bad in (("fps", lambda v: v is not None),
                                            ("do_sample_frames", lambda v: v is False),
                                            ("do_rescale", lambda v: v is False),
                                            ("do_normalize", lambda v: v is False)) if k in vid and bad(vid[k])}
    if unsupported:
        raise ValueError(f"{os.path.join(hf_dir, 'video_preprocessor_config.json')}: {unsupported} is not "
                         "supported (only num_frames/max_fps sampling of normalised frames); remove the setting")


def _vision_fields(cfg: dict[str, Any], default: ImageConfig | VideoConfig) -> dict[str, Any]:
    """base_size / patch_size / pooling / mean / std from an HF (video) preprocessor config."""
    size = cfg.get("size", {"height": default.base_size, "width": default.base_size})
    if isinstance(size, dict):
        if size.get("height") != size.get("width"):
            raise ValueError(f"Molmo2 needs square crops, config has size {size}")
        size = size["height"]
    return dict(
        base_size=int(size),
        patch_size=int(cfg.get("patch_size", default.patch_size)),
        pooling=tuple(cfg.get("pooling_size", default.pooling)),
        mean=tuple(cfg.get("image_mean", default.mean)),
        std=tuple(cfg.get("image_std", default.std)),
    )


