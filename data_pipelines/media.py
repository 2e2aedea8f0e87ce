"""Image decoding and video opening for the Molmo2 data path (failures become counted BadSamples); media encoding."""

from __future__ import annotations

import io
import os
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from data_pipelines.schema import BadSample, ImageRef, VideoRef

# Decode budget (the same default as molmo2_jax.processing's ImageConfig.max_pixels): a small file must not decode
# to gigabytes. Videos are decoded by molmo2_jax.processing.video.load_video (VideoConfig's budgets).
MAX_IMAGE_PIXELS = 40_000_000


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
