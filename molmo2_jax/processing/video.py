"""Molmo2 video input: frame-time sampling (molmo-utils' "uniform_last_frame"), PyAV decoding that
seeks to keyframes and decodes only the frames it needs, and per-frame patches with 3x3 pooling.

Two samplers: training (and our checkpoints) use molmo-utils' (`sample_frame_times`, `load_video`); a
processor read from an HF Molmo2 directory uses transformers 5.23's `Molmo2VideoProcessor.sample_frames`
(`hf_frame_indices`, `load_video_hf`) with that directory's `num_frames` / `max_fps`, so it sees the
frames transformers sees (docs/data.md, "Video frames: training vs HF directories").

Each frame is stretched to one 378x378 crop (27x27 patches) and pooled 3x3 -> 9x9 = 81 tokens,
written as `"{t:.1f} " <frame_start> 81 x <im_patch> <frame_end>` with frames separated by a space
(`VideoConfig.per_frame_special_tokens`; False: allenai sft.py's one <frame_start> ... <frame_end> around all).
"""

from __future__ import annotations

import bisect
import dataclasses
import io
import math
import os
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from molmo2_jax.processing.errors import MediaError
from molmo2_jax.processing.images import normalize, patches_per_side, patchify, pooling_windows, resize_uint8
from molmo2_jax.model_config import Molmo2TokenIds


SAMPLERS = ("molmo_utils", "transformers")


@dataclasses.dataclass(frozen=True)
class VideoConfig:
    """Molmo2's video settings (defaults: the released models; molmo-utils' 384-frame cap)."""

    base_size: int = 378
    patch_size: int = 14
    pooling: tuple[int, int] = (3, 3)
    max_frames: int = 384
    max_fps: float | None = 2.0
    # Decode budgets: pixels of one frame (8K UHD = 33 Mpx) and sampled frames x frame pixels of one
    # video (400 Mpx = 1.1 GiB of RGB, e.g. 384 frames of 1280x800 or 192 of 1080p). Each frame is
    # stretched to one 378x378 crop, so larger inputs only cost memory; a tiny MP4 of huge black frames
    # is refused before decoding instead of allocating gigabytes.
    max_frame_pixels: int = 40_000_000
    max_video_pixels: int = 400_000_000
    use_col_tokens: bool = False
    frame_special_tokens: bool = True  # <frame_start>/<frame_end>, else <im_start>/<im_end>
    # "{t} <frame_start> patches <frame_end>" per frame (transformers, the hub's processor, allenai's legacy
    # configs); False: one <frame_start> before the first time and one <frame_end> after the last frame, as
    # allenai's sft.py `VideoPreprocessorConfig(...)` defaults (per_frame_special_token=False). docs/data.md
    per_frame_special_tokens: bool = True
    sampler: str = "molmo_utils"  # frames of a video file: SAMPLERS (an HF directory: "transformers")
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        patches_per_side(self.base_size, self.patch_size)
        if self.max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"VideoConfig.sampler={self.sampler!r}; use one of {SAMPLERS}")

    @property
    def crop_patches(self) -> int:
        return patches_per_side(self.base_size, self.patch_size)


@dataclasses.dataclass
class VideoFrames:
    """Sampled frames of a video and the time (seconds from the first frame) each one shows."""

    frames: np.ndarray  # [T, H, W, 3] uint8
    timestamps: np.ndarray  # [T] float64

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames)
        self.timestamps = np.asarray(self.timestamps, np.float64)
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"video frames must be uint8 [T, H, W, 3], got {self.frames.dtype} "
                             f"{self.frames.shape}")
        if len(self.frames) == 0 or len(self.frames) != len(self.timestamps):
            raise ValueError(f"need one timestamp per frame and at least one frame, got "
                             f"{len(self.frames)} frames and {len(self.timestamps)} timestamps")


@dataclasses.dataclass
class ProcessedVideo:
    """One video as the model sees it (pooling indices count from this video's first patch)."""

    pixel_values: np.ndarray  # [T, patches, patch*patch*3] float32
    pooling: np.ndarray  # [T*tokens_per_frame, pool_h*pool_w] int32, -1 = padding
    grid: tuple[int, int, int]  # (frames, pooled rows, pooled cols)


def sample_frame_times(duration_s: float, max_frames: int, max_fps: float | None = 2.0) -> np.ndarray:
    """Molmo2's training sampler (molmo-utils `sample_times`, "uniform_last_frame").

    At most `max_fps` frames per second from t=0, plus the last instant `duration_s`; when that
    would exceed `max_frames`, `max_frames` times evenly spaced over [0, duration_s] instead.
    A 10 s clip at 2 fps gives 0.0, 0.5, ..., 9.5, 10.0 (21 times).
    """
    if not duration_s >= 0:
        raise ValueError(f"duration must be >= 0 seconds, got {duration_s}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if max_fps is not None:
        if (max_frames - 1) / max_fps >= duration_s:
            times = np.arange(0.0, stop=duration_s, step=1 / max_fps)
            return np.concatenate([times, [duration_s]], axis=0)
    return np.linspace(0, duration_s, num=max_frames, endpoint=True, dtype=np.float64)


def frame_indices_for_times(pts_s: np.ndarray, duration_s: float, times: np.ndarray,
                            offset_s: float) -> np.ndarray:
    """Index of the frame on screen at each time (`times + offset_s`), as molmo-utils picks it."""
    ends = np.concatenate([pts_s[1:], [duration_s]])  # each frame shows until the next one starts
    idx = np.searchsorted(ends, times + offset_s, side="right")
    return np.minimum(idx, len(pts_s) - 1)


def load_video(src: str | os.PathLike | bytes, max_frames: int = VideoConfig.max_frames,
               max_fps: float | None = VideoConfig.max_fps,
               clip: tuple[float, float] | None = None, max_frame_pixels: int = VideoConfig.max_frame_pixels,
               max_video_pixels: int = VideoConfig.max_video_pixels) -> VideoFrames:
    """Decode the frames Molmo2 samples from a video (a path or encoded bytes) with PyAV.

    Frame times follow molmo-utils' PyAV loader (duration = last frame + one frame period, times
    relative to the clip start); only the frames needed are decoded, seeking to keyframes. The
    frame size and frames x pixels are checked against the budgets before anything is decoded.
    """
    import av

    name, source = _open_source(src)
    try:
        with av.open(source) as container:
            stream, width, height = _video_stream(container, name, max_frame_pixels)
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise MediaError(name, "unknown frame rate")
            tb = stream.time_base
            # Demux (no decoding) to learn every frame's timestamp and where the keyframes are.
            packets = sorted((p.pts, p.is_keyframe) for p in container.demux(stream)
                             if p.pts is not None and p.size > 0)
            if not packets:
                raise MediaError(name, "video has no frames")
            pts = [p for p, _ in packets]
            keyframes = [p for p, key in packets if key] or [pts[0]]
            end = pts[-1] * tb + 1 / Fraction(rate)
            if stream.duration is not None and stream.duration * tb >= pts[-1]:
                end = stream.duration * tb  # molmo-utils compares seconds with raw pts here
            video_duration = float(end - pts[0] * tb)
            duration, offset = video_duration, float(pts[0] * tb)
            if clip is not None:
                start_s, end_s = clip
                if not 0 <= start_s < min(end_s, video_duration):
                    raise MediaError(name, f"clip {clip} is empty or starts after the video's "
                                           f"end ({video_duration:.2f} s)")
                duration, offset = min(end_s, video_duration) - start_s, start_s
            times = sample_frame_times(duration, max_frames, max_fps)
            pts_s = np.asarray([float(p * tb) for p in pts])
            idx = frame_indices_for_times(pts_s, video_duration, times, offset)
            total = len(set(idx.tolist())) * width * height
            if total > max_video_pixels:
                raise MediaError(name, f"{len(set(idx.tolist()))} sampled frames of {width}x{height} need "
                                       f"{total} pixels, over the budget of {max_video_pixels} "
                                       "(VideoConfig.max_video_pixels; or lower max_frames)")
            decoded = _decode_at(container, stream, sorted({pts[i] for i in idx}), keyframes, name)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as e:
        raise MediaError(name, f"corrupt or unsupported video ({e})") from None
    return VideoFrames(np.stack([decoded[pts[i]] for i in idx]), times)


def _decode_at(container, stream, wanted: Sequence[int], keyframes: Sequence[int],
               name: str) -> dict[int, np.ndarray]:
    """RGB frames with the given pts (sorted), seeking to a keyframe only when that skips decoding."""
    out: dict[int, np.ndarray] = {}
    frames = None
    position = None  # pts of the last decoded frame
    for target in wanted:
        key = keyframes[max(bisect.bisect_right(keyframes, target) - 1, 0)]
        if frames is None or position is None or key > position:
            container.seek(key, stream=stream, backward=True, any_frame=False)
            frames = container.decode(stream)
        for frame in frames:
            if frame.pts is None:
                continue
            position = frame.pts
            if frame.pts >= target:
                if (frame.width, frame.height) != (stream.codec_context.width, stream.codec_context.height):
                    raise MediaError(name, f"frame at pts {target} is {frame.width}x{frame.height}, not the "
                                           "stream's declared size (refused: it would escape the pixel budget)")
                out[target] = frame.to_ndarray(format="rgb24")
                break
        else:
            raise MediaError(name, f"could not decode the frame at pts {target}")
    return out


def hf_frame_indices(total_num_frames: int, video_fps: float, duration_s: float, num_frames: int,
                     max_fps: float | None = 2.0) -> np.ndarray:
    """transformers 5.23 `Molmo2VideoProcessor.sample_frames`: `num_frames` uniform indices, at most `max_fps`/s.

    The cap applies only when the video's own fps is above `max_fps`; the last frame is not kept.
    Indices are `torch.arange(0, total, total / target).int()` (float32), reproduced bit for bit; where
    that arange overshoots to index `total` (transformers 5.23 then raises IndexError) the index is dropped.
    """
    if total_num_frames < 1:
        raise ValueError(f"the video has {total_num_frames} frames")
    target = num_frames
    if max_fps is not None and video_fps > max_fps:
        target = min(target, int(duration_s * max_fps))
    target = max(min(target, total_num_frames), 1)
    step = total_num_frames / target
    n = math.ceil(total_num_frames / step)  # torch's arange length, computed in double
    idx = (np.arange(n, dtype=np.float64) * step).astype(np.float32).astype(np.int64)  # float32 values, .int()
    return idx[idx < total_num_frames]


def load_video_hf(src: str | os.PathLike | bytes, num_frames: int = 64, max_fps: float | None = 2.0,
                  max_frame_pixels: int = VideoConfig.max_frame_pixels,
                  max_video_pixels: int = VideoConfig.max_video_pixels) -> VideoFrames:
    """The frames transformers' Molmo2 processor samples from a video file, with its timestamps (index / fps).

    Metadata as transformers' PyAV reader takes it: frame count from the stream header (counted by
    demuxing when the header has none), fps = the stream's average rate, duration = frames / fps; frames
    in decoding order from the start, the i-th decoded frame being index i.
    """
    import av

    name, source = _open_source(src)
    try:
        with av.open(source) as container:
            stream, width, height = _video_stream(container, name, max_frame_pixels)
            rate = stream.average_rate
            if not rate:
                raise MediaError(name, "unknown frame rate")
            total = stream.frames or sum(1 for p in container.demux(stream) if p.size > 0)
            if not total:
                raise MediaError(name, "video has no frames")
            fps = float(rate)
            idx = hf_frame_indices(total, fps, total / fps, num_frames, max_fps)
            if len(idx) * width * height > max_video_pixels:
                raise MediaError(name, f"{len(idx)} sampled frames of {width}x{height} exceed the budget of "
                                       f"{max_video_pixels} pixels (VideoConfig.max_video_pixels; or lower num_frames)")
            container.seek(0)
            wanted, frames = set(idx.tolist()), {}
            for i, frame in enumerate(container.decode(video=0)):
                if i > idx[-1]:
                    break
                if i in wanted:
                    frames[i] = frame.to_ndarray(format="rgb24")
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as e:
        raise MediaError(name, f"corrupt or unsupported video ({e})") from None
    missing = sorted(wanted - frames.keys())
    if missing:
        raise MediaError(name, f"the stream header counts {total} frames but frame {missing[0]} could not be decoded")
    if any(f.shape[:2] != (height, width) for f in frames.values()):
        raise MediaError(name, "a frame's size differs from the stream's declared size (refused: it would escape "
                               "the pixel budget)")
    return VideoFrames(np.stack([frames[i] for i in idx]), idx / fps)


def _video_stream(container, name: str, max_frame_pixels: int):
    """(first video stream, width, height) of an open container; MediaError if none or over the frame budget."""
    if not container.streams.video:
        raise MediaError(name, "no video stream")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > max_frame_pixels:
        raise MediaError(name, f"frames of {width}x{height} = {width * height} pixels exceed the "
                               f"per-frame budget of {max_frame_pixels} (VideoConfig.max_frame_pixels)")
    return stream, width, height


def _open_source(src: str | os.PathLike | bytes) -> tuple[str, str | io.BytesIO]:
    """(name for errors, what av.open reads) of a path or encoded bytes; MediaError if missing or empty."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(src))
        if not source.getbuffer().nbytes:
            raise MediaError("<bytes>", "empty file (0 bytes)")
        return "<bytes>", source
    name = os.fspath(src)
    if not os.path.exists(name):
        raise MediaError(name, "no such file")
    if os.path.getsize(name) == 0:
        raise MediaError(name, "empty file (0 bytes)")
    return name, name


def process_video(video: VideoFrames, cfg: VideoConfig = VideoConfig()) -> ProcessedVideo:
    """Each frame stretched to one crop, patchified, with 3x3 pooling indices per frame."""
    s = cfg.base_size
    frames = np.stack([resize_uint8(f, s, s) for f in video.frames])  # [T, S, S, 3] uint8
    pixel_values = normalize(patchify(frames, cfg.patch_size), cfg.mean, cfg.std)  # [T, P, p*p*3]
    cp = cfg.crop_patches
    per_frame, rows, cols = pooling_windows(np.arange(cp * cp, dtype=np.int32).reshape(cp, cp),
                                            *cfg.pooling)
    offsets = (np.arange(len(frames), dtype=np.int32) * cp * cp)[:, None, None]
    pooling = np.where(per_frame[None] >= 0, per_frame[None] + offsets, -1)
    return ProcessedVideo(pixel_values, pooling.reshape(-1, per_frame.shape[1]).astype(np.int32),
                          (len(frames), rows, cols))


def subtitle_text(subtitles: str | Sequence[Sequence[Any]], timestamps: Sequence[float],
                  window_s: float = 1.0) -> str:
    """Molmo2's video-preprocessor subtitle block (subtitle_mode "frame_1"), written right after the video.

    `subtitles`: a string (used as is) or [start_s, end_s, text] items, times from the clip start; an item
    is kept when it comes within `window_s` of a sampled frame time. "" when nothing is kept.
    """
    if isinstance(subtitles, str):
        return f"subtitle\n{subtitles}" if subtitles else ""
    lines = [f"{float(s):.1f} - {float(e):.1f} {text}\n" for s, e, text in subtitles
             if any(not (float(e) < t - window_s or t + window_s < float(s)) for t in timestamps)]
    return "subtitle\n" + "".join(lines) if lines else ""


def video_token_segments(timestamps: Sequence[float], grid: tuple[int, int, int],
                         cfg: VideoConfig, ids: Molmo2TokenIds) -> list[str | np.ndarray]:
    """The video's prompt as text pieces (frame times) and token-id arrays (frames), in order."""
    _, rows, cols = grid
    start, end = ((ids.frame_start, ids.frame_end) if cfg.frame_special_tokens
                  else (ids.image_start, ids.image_end))
    row = [ids.image_patch] * cols + ([ids.image_col] if cfg.use_col_tokens else [])
    if not cfg.per_frame_special_tokens:  # allenai VideoPreprocessorConfig(per_frame_special_token=False)
        patches = np.asarray(row * rows, np.int32)
        segments: list[str | np.ndarray] = [np.asarray([start], np.int32)]
        for k, t in enumerate(timestamps):
            segments += [(" " if k else "") + f"{t:.1f} ", patches]
        return segments + [np.asarray([end], np.int32)]
    frame_tokens = np.asarray([start] + row * rows + [end], np.int32)
    segments = []
    for k, t in enumerate(timestamps):
        segments.append((" " if k else "") + f"{t:.1f} ")
        segments.append(frame_tokens)
    return segments
