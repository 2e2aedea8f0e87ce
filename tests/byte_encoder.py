"""A stand-in `encode_fn` for pipeline tests: UTF-8 bytes as tokens, tiny real crops.

It has `Molmo2Processor.training_example`'s output contract with none of its cost (no tokenizer to train, 16-px
crops), so the data-pipeline tests (packing, mixing, skips, workers) run in seconds. The product encodes with
`molmo2_jax.processing.encode.ExampleEncoder`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from data_pipelines.packing import MediaField
from data_pipelines.schema import Example
from molmo2_jax.processing.chat import branch_positions, branch_weights, loss_weighting
from molmo2_jax.processing.video import load_video

PAD, EOS, IM_START, IM_END, IM_PATCH, FRAME_START, FRAME_END, USER, ASSISTANT = range(9)
BYTE_OFFSET = 16
MM_TOKENS = (IM_START, IM_END, IM_PATCH, FRAME_START, FRAME_END)
_SPECIAL = {PAD: "<pad>", EOS: "<eos>", IM_START: "<im_start>", IM_END: "<im_end>",
            IM_PATCH: "<im_patch>", FRAME_START: "<frame_start>", FRAME_END: "<frame_end>",
            USER: "<user>", ASSISTANT: "<assistant>"}


@dataclasses.dataclass(frozen=True)
class ByteLevelEncoder:
    """Stand-in encode_fn with `Molmo2Processor.training_example`'s output contract.

    Tokens: UTF-8 bytes (+16) and a few specials; BOS, then the media tokens (shared prefix,
    branch -1), then one branch per conversation (message tree) with position_ids continuing
    after the prefix. target_ids[t] is the next token of the same branch (-1 at a span's end);
    loss_weights follow `chat.loss_weighting` (the demo's synthetic mixture: 1) where the target is an
    assistant byte or its EOS.
    Images: a global and a centre crop of `crop_px` squares in `patch_px` patches (16 x 48
    values), 2x2 pooling -> 8 `<im_patch>` tokens. Video frames: one crop each, 3x3 pooling
    over the 4x4 patch grid (-1 padded) -> 4 tokens per frame.
    """

    crop_px: int = 16
    patch_px: int = 4
    max_frames: int = 8
    mixture: str = "synthetic"

    @property
    def crop_shape(self) -> tuple[int, int]:
        return (self.crop_px // self.patch_px) ** 2, self.patch_px ** 2 * 3

    def media_fields(self, max_crops: int, max_frames: int) -> tuple[MediaField, ...]:
        """Packer fields matching this encoder's crops (images and video frames)."""
        return (MediaField.image(max_crops, self.crop_shape),
                MediaField.video(max_frames, self.crop_shape))

    def _patches(self, pixels: np.ndarray) -> np.ndarray:
        g, p = self.crop_px // self.patch_px, self.patch_px
        im = np.asarray(Image.fromarray(pixels).resize((self.crop_px, self.crop_px),
                                                       Image.BILINEAR), np.float32)
        im = (im - 127.5) / 127.5
        return im.reshape(g, p, g, p, 3).transpose(0, 2, 1, 3, 4).reshape(g * g, p * p * 3)

    def _pooling(self, first_crop: int, window: int) -> np.ndarray:
        g = self.crop_px // self.patch_px
        rows = []
        for r0 in range(0, g, window):
            for c0 in range(0, g, window):
                rows.append([first_crop * g * g + r * g + c if r < g and c < g else -1
                             for r in range(r0, r0 + window) for c in range(c0, c0 + window)])
        return np.asarray(rows, np.int32)

    def _media(self, ex: Example) -> tuple[list[int], dict[str, np.ndarray]]:
        """Prefix tokens after BOS and the media arrays."""
        prefix: list[int] = []
        out: dict[str, np.ndarray] = {}
        if ex.images:
            crops, pooling = [], []
            for img in ex.images:
                h, w = img.array.shape[:2]
                s = min(h, w)
                centre = img.array[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2]
                pooling += [self._pooling(len(crops), 2), self._pooling(len(crops) + 1, 2)]
                crops += [self._patches(img.array), self._patches(centre)]
                prefix += [IM_START] + [IM_PATCH] * sum(len(p) for p in pooling[-2:]) + [IM_END]
            g = self.crop_px // self.patch_px // 2
            out["pixel_values"] = np.stack(crops)                   # [crops, 16, 48]
            out["image_token_pooling"] = np.concatenate(pooling)    # [tokens, 4]
            out["image_grids"] = np.asarray([[g, g, g, g]] * len(ex.images), np.int32)
            out["image_num_crops"] = np.full((len(ex.images),), 2, np.int32)
        if ex.video is not None:
            video = load_video(ex.video.data, max_frames=self.max_frames)  # the library's decoder and sampler
            frames, times = video.frames, video.timestamps
            crops, pooling = [], []
            for i, (frame, t) in enumerate(zip(frames, times)):
                pooling.append(self._pooling(i, 3))
                crops.append(self._patches(frame))
                prefix += self._bytes(f"{t:.1f} ") + [FRAME_START] + [IM_PATCH] * 4 + [FRAME_END]
            out["pixel_values_videos"] = np.stack(crops)            # [frames, 16, 48]
            out["video_token_pooling"] = np.concatenate(pooling)    # [tokens, 9]
            g = -(-self.crop_px // self.patch_px // 3)
            out["video_grids"] = np.asarray([[len(frames), g, g]], np.int32)
        return prefix, out

    def __call__(self, ex: Example) -> dict[str, np.ndarray]:
        prefix, out = self._media(ex)
        prefix = [EOS] + prefix  # BOS = EOS, as in Molmo2
        rule = loss_weighting(ex.task, ex.source, self.mixture)
        ids, targets, weights, branches = [], [], [], []

        def add(tokens: list[int], is_loss: list[bool], branch: int) -> None:
            """One span; weights[t] scores predicting tokens[t + 1] (targets already shifted)."""
            ids.extend(tokens)
            targets.extend(tokens[1:] + [-1])  # -1: no target
            mask = [float(x) for x in is_loss[1:]]
            w = branch_weights(mask, rule, len(ex.conversations)) if branch >= 0 and any(mask) else mask
            weights.extend([float(x) for x in w] + [0.0])
            branches.extend([branch] * len(tokens))

        add(prefix, [False] * len(prefix), -1)
        for k, conv in enumerate(ex.conversations):
            tokens, is_loss = [], []
            for m in conv.messages:
                assistant = m.role == "assistant"
                text = self._bytes(m.content) + ([EOS] if assistant else [])
                tokens += [ASSISTANT if assistant else USER] + text
                is_loss += [False] + [assistant] * len(text)
            add(tokens, is_loss, k)
        out["input_ids"] = np.asarray(ids, np.int32)                 # [T]
        out["target_ids"] = np.asarray(targets, np.int32)            # [T]
        out["loss_weights"] = np.asarray(weights, np.float32)        # [T]
        out["branch_ids"] = np.asarray(branches, np.int32)           # [T]
        out["position_ids"] = branch_positions(out["branch_ids"])   # [T]
        out["mm_token_type_ids"] = np.isin(out["input_ids"], MM_TOKENS).astype(np.int32)
        return out

    @staticmethod
    def _bytes(text: str) -> list[int]:
        return [b + BYTE_OFFSET for b in text.encode("utf-8")]

    @staticmethod
    def decode(ids: np.ndarray) -> str:
        """Token ids -> text, special tokens as <name>, padding dropped."""
        out, buf = [], bytearray()
        for i in map(int, ids):
            if i >= BYTE_OFFSET:
                buf.append(i - BYTE_OFFSET)
                continue
            out.append(buf.decode("utf-8", "replace"))
            buf = bytearray()
            if i != PAD:
                out.append(_SPECIAL.get(i, f"<{i}>"))
        out.append(buf.decode("utf-8", "replace"))
        return "".join(out)
