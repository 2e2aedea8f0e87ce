"""Molmo2 image preprocessing: load to RGB, overlapping multi-crop tiling + a global low-res view,
patchify, pooling-window index arrays and the image token layout (parity with transformers 5.23).

Shapes for the real model: crops of 378x378 px, 14 px patches -> 27x27 = 729 patches per crop,
each flattened (row, col, channel) to 588 values in [-1, 1]; 2x2 pooling windows -> 14x14 tokens
for the global view. Every size is a field of `ImageConfig`, so tiny test models (28 px crops) work.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from molmo2_jax.processing.errors import MediaError
from molmo2_jax.model_config import Molmo2TokenIds

ImageInput = Any  # a path, encoded bytes, a PIL image or a uint8 [H, W, 3] array


def patches_per_side(base_size: int, patch_size: int) -> int:
    """Patches along a crop's side (images and video frames); the crop must hold whole patches."""
    if base_size % patch_size:
        raise ValueError(f"base_size {base_size} is not a multiple of patch_size {patch_size}")
    return base_size // patch_size


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """Molmo2's image tiling settings (defaults: the released models' preprocessor config)."""

    base_size: int = 378  # crop side (px) and the global view's size
    patch_size: int = 14
    pooling: tuple[int, int] = (2, 2)  # (h, w) patches pooled into one token
    max_crops: int = 8
    overlap_margins: tuple[int, int] = (4, 4)  # patches shared with the neighbouring crops
    use_col_tokens: bool = True  # <im_col> after each row of the high-res tokens
    low_res_col_tokens: bool = False  # <im_col> after each row of the global view (hub: off)
    low_res_start_token: bool = True  # the global view starts with <low_res_im_start>
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    # Pixel budget of one decoded image; larger ones are refused as decompression bombs. The crop grid
    # uses at most max_crops x 378^2 = 1.1 Mpx (the image is resized to it), so 40 Mpx (a 48 Mpx phone
    # photo is 8000x6000; 8K UHD is 33 Mpx) keeps every real photo and bounds decoding at 120 MB of RGB.
    max_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        if self.window_patches <= 0:
            raise ValueError(f"overlap_margins {self.overlap_margins} leave no window in a "
                             f"{self.crop_patches}-patch crop; use smaller margins")
        if self.max_crops < 1:
            raise ValueError("max_crops must be >= 1")

    @property
    def crop_patches(self) -> int:
        return patches_per_side(self.base_size, self.patch_size)

    @property
    def window_patches(self) -> int:
        return self.crop_patches - sum(self.overlap_margins)


@dataclasses.dataclass
class ProcessedImage:
    """One image as the model sees it (pooling indices count from this image's first patch)."""

    pixel_values: np.ndarray  # [crops, patches, patch*patch*3] float32, crop 0 = global view
    pooling: np.ndarray  # [tokens, pool_h*pool_w] int32, -1 = padding
    grid: tuple[int, int, int, int]  # pooled (low_h, low_w, high_h, high_w)


# ------------------------------------------------------------------------------------------------
# Loading


def load_image(src: ImageInput, max_pixels: int = ImageConfig.max_pixels) -> np.ndarray:
    """Decode `src` to uint8 RGB [H, W, 3], applying EXIF orientation; bad files raise MediaError."""
    if isinstance(src, np.ndarray):
        return _array_to_rgb(src)
    if isinstance(src, Image.Image):
        return _pil_to_rgb(_exif_transpose(src), "<PIL image>")
    if isinstance(src, (bytes, bytearray, memoryview)):
        name, opener = "<bytes>", (lambda: io.BytesIO(bytes(src)))
    elif isinstance(src, (str, os.PathLike)):
        name = os.fspath(src)
        if not os.path.exists(name):
            raise MediaError(name, "no such file")
        if os.path.getsize(name) == 0:
            raise MediaError(name, "empty file (0 bytes)")
        opener = lambda: name  # noqa: E731
    else:
        raise TypeError(f"cannot load an image from {type(src).__name__}; pass a path, bytes, "
                        "a PIL image or a uint8 [H, W, 3] array")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(opener())
        w, h = img.size
        if w * h > max_pixels:
            raise MediaError(name, f"decompression bomb: {w}x{h} = {w * h} pixels exceeds the "
                                   f"limit of {max_pixels}")
        if w == 0 or h == 0:
            raise MediaError(name, f"image has no pixels ({w}x{h})")
        img.load()
    except MediaError:
        raise
    except UnidentifiedImageError:
        raise MediaError(name, "not an image (format not recognised)") from None
    except Image.DecompressionBombError as e:
        raise MediaError(name, f"decompression bomb: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise MediaError(name, f"corrupt or truncated image ({e})") from None
    return _pil_to_rgb(_exif_transpose(img), name)


def _exif_transpose(img: Image.Image) -> Image.Image:
    """Rotate/flip per the EXIF orientation tag (a broken EXIF block leaves the image as is)."""
    try:
        if img.getexif().get(0x0112, 1) == 1:  # upright: skip Pillow's copy
            return img
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - malformed EXIF must not make a readable image unreadable
        return img


def _pil_to_rgb(img: Image.Image, name: str) -> np.ndarray:
    """RGB uint8 [H, W, 3]; alpha is composited onto white (as transformers), 16-bit gray is scaled."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if img.mode != "F":
            arr = arr / 257.0  # 0..65535 -> 0..255
        gray = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if "A" in img.getbands() or "a" in img.getbands() or img.info.get("transparency") is not None:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    try:
        return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    except (OSError, ValueError) as e:
        raise MediaError(name, f"cannot convert mode {img.mode} to RGB ({e})") from None


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """Accept uint8 [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (alpha onto white)."""
    if arr.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8 [H, W, 3], got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"image arrays must be [H, W, 3] (or 1/4 channels), got {arr.shape}")
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.shape[2] == 4:
        return _pil_to_rgb(Image.fromarray(arr, "RGBA"), "<array>")
    return np.ascontiguousarray(arr)


# ------------------------------------------------------------------------------------------------
# Resize (bit-exact with torch's CPU bilinear, align_corners=False, no antialias)


def _linear_weights(in_size: int, out_size: int) -> tuple[np.ndarray, ...]:
    """Source indices (i0, i1) and float32 weights (l0, l1) per output pixel, as torch computes them."""
    if in_size == out_size:
        i = np.arange(out_size)
        return i, i, np.ones(out_size, np.float32), np.zeros(out_size, np.float32)
    scale = np.float32(in_size) / np.float32(out_size)
    # fma(scale, i + 0.5, -0.5) rounded once to float32 (the product is exact in float64)
    src = (np.float64(scale) * (np.arange(out_size) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (np.float32(1) - l1).astype(np.float32), l1


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fused multiply-add a*b + c with one rounding (float32 products are exact in float64)."""
    out = a.astype(np.float64)
    out *= b
    out += c
    return out.astype(np.float32)


_ROW_CHUNK = 32  # output rows per step: keeps float64 temporaries small (no page-fault churn)


def _bilinear_separable(img: np.ndarray, h: tuple[np.ndarray, ...],
                        w: tuple[np.ndarray, ...]) -> np.ndarray:
    """torch's generic kernel for the output rows whose (i0, i1, l0, l1) are `h`: W, then H."""
    h0, h1, lh0, lh1 = h
    w0, w1, lw0, lw1 = w
    n, channels = len(h0), img.shape[2]
    # Interpolate each needed source row along W once ([R, out_w*C], channels fastest) ...
    rows, inverse = np.unique(np.concatenate([h0, h1]), return_inverse=True)
    src = np.take(img, rows, axis=0).reshape(len(rows), -1)  # [R, W*C]
    left, right = (np.take(src, (i[:, None] * channels + np.arange(channels)).reshape(-1),
                           axis=1).astype(np.float32) for i in (w0, w1))
    c, d = np.repeat(lw0, channels)[None], np.repeat(lw1, channels)[None]
    horizontal = _fma(left, c, right * d)
    # ... then combine the two source rows of every output row along H.
    top, bottom = horizontal[inverse[:n]], horizontal[inverse[n:]]
    return _fma(top, lh0[:, None], bottom * lh1[:, None]).reshape(n, len(w0), channels)


def _bilinear_corners(img: np.ndarray, h: tuple[np.ndarray, ...],
                      w: tuple[np.ndarray, ...]) -> np.ndarray:
    """torch's channels-last kernel: the four corners summed with products of the 1-D weights."""
    (h0, h1, lh0, lh1), (w0, w1, lw0, lw1) = h, w
    rows0, rows1 = np.take(img, h0, axis=0), np.take(img, h1, axis=0)  # [n, W, C]
    x00, x01 = (np.take(rows0, i, axis=1).astype(np.float32) for i in (w0, w1))  # [n, out_w, C]
    x10, x11 = (np.take(rows1, i, axis=1).astype(np.float32) for i in (w0, w1))
    a, b = lh0[:, None, None], lh1[:, None, None]
    c, d = lw0[None, :, None], lw1[None, :, None]
    out = _fma(x00, a * c, x01 * (a * d))
    out = _fma(x10, b * c, out)
    return _fma(x11, b * d, out)


def _resize(img: np.ndarray, out_h: int, out_w: int, dtype: type) -> np.ndarray:
    """Bilinear resize in row chunks; uint8 output is rounded half to even and clamped."""
    h = _linear_weights(img.shape[0], out_h)
    w = _linear_weights(img.shape[1], out_w)
    # torch picks its channels-last kernel for small outputs (NCHW input, several threads)
    kernel = _bilinear_corners if out_h + out_w <= 128 else _bilinear_separable
    out = np.empty((out_h, out_w, img.shape[2]), dtype)
    for r in range(0, out_h, _ROW_CHUNK):
        rows = kernel(img, tuple(x[r:r + _ROW_CHUNK] for x in h), w)
        out[r:r + _ROW_CHUNK] = np.clip(np.rint(rows), 0, 255) if dtype == np.uint8 else rows
    return out


def resize_bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of uint8 [H, W, C] to float32 [out_h, out_w, C], matching torch bit for bit.

    torch's CPU kernel (align_corners=False, no antialias, several threads, NCHW input)
    interpolates along W then H with fused multiply-adds; for outputs with out_h + out_w <= 128
    it sums the four corners with precomputed 2-D weights instead. Both are reproduced exactly.
    """
    return _resize(img, out_h, out_w, np.float32)


def resize_uint8(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize on float, then round (half to even) and clamp back to uint8, as Molmo2 does."""
    if img.shape[:2] == (out_h, out_w):
        return img
    return _resize(img, out_h, out_w, np.uint8)


def normalize(img: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 -> float32 (x/255 - mean)/std, computed as torch does: (x - 255*mean) / (255*std).

    The last axis is channels, or flattened patches whose channel index runs fastest.
    """
    m = np.resize(np.asarray(mean, np.float32) * np.float32(255), img.shape[-1])
    s = np.resize(np.asarray(std, np.float32) * np.float32(255), img.shape[-1])
    return (img.astype(np.float32) - m) / s


# ------------------------------------------------------------------------------------------------
# Tiling and pooling


def select_tiling(height: int, width: int, window: int, max_crops: int) -> tuple[int, int]:
    """Crop grid (rows, cols) for a (height, width) image minus margins; Molmo2's choice rule.

    Candidates th*tw <= max_crops sorted by (area, th); scale = min(th*window/height,
    tw*window/width) in float32. If every scale is < 1 take the largest, else the smallest >= 1.
    """
    tilings = sorted(((th, tw) for th, tw in itertools.product(range(1, max_crops + 1), repeat=2)
                      if th * tw <= max_crops), key=lambda t: (t[0] * t[1], t[0]))
    sizes = (np.asarray(tilings, np.int32) * np.int32(window)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        scales = (sizes / np.asarray([height, width], np.float32)).min(axis=1)
    if np.all(scales < 1):
        return tilings[int(np.argmax(scales))]
    return tilings[int(np.argmin(np.where(scales < 1, np.float32(10e9), scales)))]


def crop_geometry(height: int, width: int, cfg: ImageConfig) -> tuple[int, int, int, int]:
    """Tiling (rows, cols) and the canvas (height, width) in pixels the image is stretched to."""
    window = cfg.window_patches * cfg.patch_size
    margin = sum(cfg.overlap_margins) * cfg.patch_size
    th, tw = select_tiling(height - margin, width - margin, window, cfg.max_crops)
    return th, tw, th * window + margin, tw * window + margin


def pooling_windows(index_grid: np.ndarray, pool_h: int, pool_w: int) -> tuple[np.ndarray, int, int]:
    """Group a [h, w] patch-index grid into [rows*cols, pool_h*pool_w] windows, -1-padded centred."""
    h, w = index_grid.shape
    pad_h, pad_w = (-h) % pool_h, (-w) % pool_w
    grid = np.pad(index_grid, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)),
                  constant_values=-1)
    rows, cols = grid.shape[0] // pool_h, grid.shape[1] // pool_w
    windows = grid.reshape(rows, pool_h, cols, pool_w).transpose(0, 2, 1, 3)
    return windows.reshape(rows * cols, pool_h * pool_w), rows, cols


def stack_pooling(poolings, patches, width: int | None = None, xp=np):
    """Pooling tables of crop stacks laid end to end -> one table over the concatenated crops.

    poolings: tables [tokens_i, W_i] indexing their own stack's flattened crops (-1 = pad); patches: each
    stack's crops * patches_per_crop. Each table is shifted by the patches of the stacks before it and
    -1-padded to `width` (default: the widest). The one offset rule of every crop layout (processor,
    packer, model); xp = numpy on the host, jax.numpy inside the model.
    """
    width = max(t.shape[-1] for t in poolings) if width is None else width
    out, offset = [], 0
    for table, n in zip(poolings, patches):
        shifted = xp.where(table >= 0, table + offset, -1)
        out.append(xp.pad(shifted, ((0, 0), (0, width - table.shape[-1])), constant_values=-1))
        offset += int(n)
    return xp.concatenate(out).astype(xp.int32)


def patchify(crops: np.ndarray, patch: int) -> np.ndarray:
    """[n, S, S, C] -> [n, (S/patch)^2, patch*patch*C], patches row-major, pixels (row, col, chan)."""
    n, s, _, c = crops.shape
    k = s // patch
    x = crops.reshape(n, k, patch, k, patch, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, k * k, patch * patch * c)


def high_res_index_grid(th: int, tw: int, cfg: ImageConfig) -> np.ndarray:
    """Patch indices (into the th*tw crops) of the canvas, interior overlap margins removed."""
    cp = cfg.crop_patches
    left, right = cfg.overlap_margins
    grid = np.arange(th * tw * cp * cp, dtype=np.int32).reshape(th, tw, cp, cp)
    if left:
        grid[1:, :, :left, :] = -1
        grid[:, 1:, :, :left] = -1
    if right:
        grid[:-1, :, -right:, :] = -1
        grid[:, :-1, :, -right:] = -1
    flat = grid.transpose(0, 2, 1, 3).reshape(-1)
    rows = th * cfg.window_patches + left + right
    return flat[flat >= 0].reshape(rows, -1)  # [canvas_h/patch, canvas_w/patch]


def process_image(img: np.ndarray, cfg: ImageConfig = ImageConfig()) -> ProcessedImage:
    """Global view + overlapping crops of a uint8 [H, W, 3] image, patchified, with pooling indices."""
    height, width = img.shape[:2]
    th, tw, canvas_h, canvas_w = crop_geometry(height, width, cfg)
    s, window = cfg.base_size, cfg.window_patches * cfg.patch_size

    canvas = resize_uint8(img, canvas_h, canvas_w)
    crops = [resize_uint8(img, s, s)] + [canvas[i * window:i * window + s, j * window:j * window + s]
                                         for i in range(th) for j in range(tw)]
    patches = patchify(np.stack(crops), cfg.patch_size)  # [1+th*tw, P, p*p*3] uint8, global first
    pixel_values = normalize(patches, cfg.mean, cfg.std)

    ph, pw = cfg.pooling
    cp = cfg.crop_patches
    low, low_h, low_w = pooling_windows(np.arange(cp * cp, dtype=np.int32).reshape(cp, cp), ph, pw)
    high, high_h, high_w = pooling_windows(high_res_index_grid(th, tw, cfg), ph, pw)
    high = np.where(high >= 0, high + cp * cp, -1)  # crop 0 is the global view
    pooling = np.concatenate([low, high]).astype(np.int32)
    return ProcessedImage(pixel_values, pooling, (low_h, low_w, high_h, high_w))


def image_grid(height: int, width: int, cfg: ImageConfig = ImageConfig()) -> tuple[int, int, int, int]:
    """Pooled (low_h, low_w, high_h, high_w) for an image size, without touching pixels."""
    _, _, canvas_h, canvas_w = crop_geometry(height, width, cfg)
    ph, pw = cfg.pooling
    cp = cfg.crop_patches
    return (-(-cp // ph), -(-cp // pw), -(-(canvas_h // cfg.patch_size) // ph),
            -(-(canvas_w // cfg.patch_size) // pw))


def image_token_ids(grid: tuple[int, int, int, int], cfg: ImageConfig,
                    ids: Molmo2TokenIds) -> np.ndarray:
    """Token layout of one image: the global view's rows, then the high-res rows (int32 [T])."""
    low_h, low_w, high_h, high_w = grid
    low_row = [ids.image_patch] * low_w + ([ids.image_col] if cfg.low_res_col_tokens else [])
    high_row = [ids.image_patch] * high_w + ([ids.image_col] if cfg.use_col_tokens else [])
    start = ids.low_res_image_start if cfg.low_res_start_token else ids.image_start
    tokens = ([start] + low_row * low_h + [ids.image_end]
              + [ids.image_start] + high_row * high_h + [ids.image_end])
    return np.asarray(tokens, np.int32)
