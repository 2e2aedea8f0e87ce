"""Tiny random HF reference models (built with transformers, no download) and Molmo2 inputs for them."""

from __future__ import annotations

import dataclasses

import numpy as np

VOCAB = 300
IMAGE_START, IMAGE_END, IMAGE_PATCH, IMAGE_COL, LOW_RES_START = 300, 301, 302, 303, 304
FRAME_START, FRAME_END = 307, 308
VISION_TOKENS = {IMAGE_START, IMAGE_END, IMAGE_PATCH, IMAGE_COL, LOW_RES_START, FRAME_START, FRAME_END}


def tiny_molmo2_hf_config(**text_overrides):
    """A Molmo2Config small enough to run in milliseconds: 56x56 crops (4x4 patches), 3 ViT blocks."""
    from transformers import Molmo2Config

    text = dict(hidden_size=40, num_attention_heads=4, num_key_value_heads=2, head_dim=10, vocab_size=VOCAB,
                additional_vocab_size=128, num_hidden_layers=2, intermediate_size=56,
                rope_parameters=dict(rope_type="default", rope_theta=10000.0))
    text.update(text_overrides)
    return Molmo2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                           num_key_value_heads=4, head_dim=8, image_size=[56, 56], patch_size=14),
        adapter_config=dict(vision_feature_layer=[-1, 0], hidden_size=32, num_attention_heads=4,
                            num_key_value_heads=4, head_dim=8, intermediate_size=48, text_hidden_size=40),
        text_config=text,
        image_start_token_id=IMAGE_START, image_end_token_id=IMAGE_END, image_patch_id=IMAGE_PATCH,
        low_res_image_start_token_id=LOW_RES_START, frame_start_token_id=FRAME_START,
        frame_end_token_id=FRAME_END,
    )


def build_hf_molmo2(path: str, seed: int = 0, **text_overrides):
    """Build, randomise and save a tiny Molmo2ForConditionalGeneration; returns the torch model."""
    import torch
    from transformers import Molmo2ForConditionalGeneration

    torch.manual_seed(seed)
    model = Molmo2ForConditionalGeneration(tiny_molmo2_hf_config(**text_overrides)).eval()
    with torch.no_grad():  # default init leaves norms at 1 / biases at 0: randomise everything
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(path)
    return model


@dataclasses.dataclass
class Inputs:
    """One batch in transformers' Molmo2 input names (numpy)."""

    arrays: dict

    def torch(self) -> dict:
        import torch

        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.arrays.items()}


def _rng_text(rng, n):
    return list(rng.integers(1, VOCAB - 1, n))


def image_inputs(rng, n_images: int = 1, hi_grid=(1, 2), patches_side: int = 4, prompt_len: int = 5) -> Inputs:
    """A prompt with `n_images` images: a low-res crop plus hi_grid high-res crops each (2x2 pooling)."""
    patch_dim = 14 * 14 * 3
    ids, crops, pooling, grids = [0], [], [], []
    pooled_side = patches_side // 2
    for _ in range(n_images):
        ids += _rng_text(rng, 2)
        n_crops = 1 + hi_grid[0] * hi_grid[1]
        base = len(crops) * patches_side * patches_side
        crops += [rng.uniform(-1, 1, (patches_side * patches_side, patch_dim)) for _ in range(n_crops)]
        # low-res: pooled_side^2 tokens over crop 0; one window with padding
        lo = []
        for r in range(pooled_side):
            for c in range(pooled_side):
                idx = [base + (2 * r + dr) * patches_side + 2 * c + dc for dr in (0, 1) for dc in (0, 1)]
                lo.append(idx)
        lo[0][1] = -1
        ids += [LOW_RES_START] + [IMAGE_PATCH] * len(lo) + [IMAGE_END]
        # high-res: rows of pooled tokens drawn from the other crops, each row ends with <im_col>
        hi_h, hi_w = hi_grid[0] * pooled_side, hi_grid[1] * pooled_side
        hi = []
        for r in range(hi_h):
            for c in range(hi_w):
                hi.append(list(base + patches_side * patches_side * rng.integers(1, n_crops)
                               + rng.choice(patches_side * patches_side, 4, replace=False)))
        hi[-1][2:] = [-1, -1]
        ids += [IMAGE_START]
        for r in range(hi_h):
            ids += [IMAGE_PATCH] * hi_w + [IMAGE_COL]
        ids += [IMAGE_END]
        pooling += lo + hi
        grids.append([pooled_side, pooled_side, hi_h, hi_w])
    ids += _rng_text(rng, prompt_len)
    ids = np.asarray([ids], np.int64)
    return Inputs(dict(
        input_ids=ids,
        mm_token_type_ids=np.isin(ids, list(VISION_TOKENS)).astype(np.int64),
        pixel_values=np.asarray(crops, np.float32),
        image_token_pooling=np.asarray(pooling, np.int64),
        image_grids=np.asarray(grids, np.int64),
    ))


def video_inputs(rng, n_frames: int = 3, patches_side: int = 4, prompt_len: int = 4) -> Inputs:
    """A prompt with one video: per frame a timestamp token, <frame_start>, 2x2 pooled (3x3 windows), <frame_end>."""
    patch_dim = 14 * 14 * 3
    frames = rng.uniform(-1, 1, (n_frames, patches_side * patches_side, patch_dim)).astype(np.float32)
    ids, pooling = [0], []
    for f in range(n_frames):
        ids += _rng_text(rng, 1) + [FRAME_START] + [IMAGE_PATCH] * 4 + [FRAME_END]
        base = f * patches_side * patches_side
        for r0 in (0, 2):
            for c0 in (0, 2):
                win = [base + r * patches_side + c if r < patches_side and c < patches_side else -1
                       for r in range(r0 - 1, r0 + 2) for c in range(c0 - 1, c0 + 2)]
                pooling.append([w if w >= base else -1 for w in win])
    ids += _rng_text(rng, prompt_len)
    ids = np.asarray([ids], np.int64)
    return Inputs(dict(
        input_ids=ids,
        mm_token_type_ids=np.isin(ids, list(VISION_TOKENS)).astype(np.int64),
        pixel_values_videos=frames,
        video_token_pooling=np.asarray(pooling, np.int64),
        video_grids=np.asarray([[n_frames, 2, 2]], np.int64),
    ))


def text_inputs(rng, batch: int = 2, length: int = 12) -> Inputs:
    ids = rng.integers(1, VOCAB - 1, (batch, length)).astype(np.int64)
    return Inputs(dict(input_ids=ids))


def torch_logits(model, inputs: Inputs, **kw) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(**inputs.torch(), **kw).logits.float().numpy()


def jax_logits(model, inputs: Inputs, **kw) -> np.ndarray:
    import jax.numpy as jnp

    arrays = {k: jnp.asarray(v) for k, v in inputs.arrays.items()}
    return np.asarray(model(**arrays, **kw), np.float32)
