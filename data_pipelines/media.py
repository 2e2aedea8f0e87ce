"""Image and video decoding for the Molmo2 data path; failures become counted BadSamples."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from data_pipelines.schema import BadSample, ImageRef, VideoRef

# Decode budgets (the same defaults as molmo2_jax.processing's ImageConfig.max_pixels and
# VideoConfig.max_video_pixels): a small file must not decode to gigabytes.
MAX_IMAGE_PIXELS = 40_000_000
MAX_VIDEO_PIXELS = 400_000_000


def resolve(path: str, root: str | None) -> str:
    """`path` under the media root unless absolute."""
    return path if root is None or os.path.isabs(path) else os.path.join(root, path)


def load_image(ref: ImageRef, root: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decoded RGB pixels [H, W, 3] uint8 from bytes or a path under `root` (at most `max_pixels`)."""
    if ref.data is not None:
        src, what = io.BytesIO(ref.data), "embedded image bytes"
    elif ref.path is not None:
        src = what = resolve(ref.path, root)
        if not os.path.exists(src):
            raise BadSample("missing_media", f"image file {src} not found (download it with "
                                             "`python -m data_pipelines.download`)")
    else:
        raise BadSample("missing_media", f"image {ref.url or ''} was never fetched (no path/data)")
    try:
        with Image.open(src) as im:
            if im.width * im.height > max_pixels:
                raise BadSample("undecodable_media", f"{what} is {im.width}x{im.height} = {im.width * im.height} "
                                                     f"pixels, over the decode budget of {max_pixels}")
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise BadSample("undecodable_media", f"cannot decode {what}: {e}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise BadSample("undecodable_media", f"{what} has zero size")
    return arr  # [H, W, 3]


def encode_png(pixels: np.ndarray) -> bytes:
    """[H, W, 3] uint8 -> PNG bytes (lossless, for synthetic images embedded in records)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _open_video(ref: VideoRef, root: str | None):
    if ref.data is not None:
        return av.open(io.BytesIO(ref.data)), "embedded video bytes"
    if ref.path is None:
        raise BadSample("missing_media", f"video {ref.url or ''} was never fetched (no path/data)")
    path = resolve(ref.path, root)
    if not os.path.exists(path):
        raise BadSample("missing_media", f"video file {path} not found")
    try:
        return av.open(path), path
    except av.FFmpegError as e:
        raise BadSample("undecodable_media", f"cannot open video {path}: {e}")


def decode_video(ref: VideoRef, times: Sequence[float] | None = None, root: str | None = None,
                 threads: int = 1, max_pixels: int = MAX_VIDEO_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """Frames [N, H, W, 3] uint8 at the requested clip-relative `times` (all frames if None).

    Each requested time takes the last decoded frame whose timestamp is <= it (the Molmo2
    sampler asks for uniform times that always include the last frame). Returns (frames, times).
    One decoder thread by default: the pipeline parallelises across examples (Grain workers),
    and FFmpeg's per-stream thread pool costs more than it saves on short clips. Decoding stops
    with BadSample once the kept frames exceed `max_pixels` (frames x height x width).
    """
    container, what = _open_video(ref, root)
    start = ref.start_s or 0.0
    frames, stamps = [], []
    try:
        with container:
            stream = container.streams.video[0]
            stream.thread_count = threads
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) - start if frame.pts is not None else 0.0
                if t < -1e-6 or (ref.end_s is not None and t + start > ref.end_s + 1e-6):
                    continue
                if (len(frames) + 1) * frame.width * frame.height > max_pixels:
                    raise BadSample("undecodable_media", f"{what} decodes to more than {max_pixels} pixels "
                                                         f"({len(frames) + 1} frames of {frame.width}x{frame.height})")
                frames.append(frame.to_ndarray(format="rgb24"))
                stamps.append(t)
    except av.FFmpegError as e:
        raise BadSample("undecodable_media", f"cannot decode {what}: {e}")
    if not frames:
        raise BadSample("undecodable_media", f"{what} has no frames in the requested clip")
    if times is None:
        return np.stack(frames), np.asarray(stamps)
    idx = np.clip(np.searchsorted(np.asarray(stamps), np.asarray(times) + 1e-6) - 1, 0, None)
    return np.stack([frames[i] for i in idx]), np.asarray(times, dtype=np.float64)


def encode_video(frames: np.ndarray, fps: float) -> bytes:
    """[N, H, W, 3] uint8 -> MP4 (H.264, yuv444p so small synthetic colours survive) bytes."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "10", "preset": "ultrafast"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    return buf.getvalue()
