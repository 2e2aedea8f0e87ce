"""Image loading (EXIF, colour modes, bad files) and Molmo2's crops, resize, patches and pooling."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from molmo2_jax.processing.errors import MediaError
from molmo2_jax.processing.images import (ImageConfig, crop_geometry, high_res_index_grid,
                                          image_grid, image_token_ids, load_image, patchify,
                                          pooling_windows, process_image, resize_bilinear,
                                          resize_uint8, select_tiling)
from molmo2_jax.model_config import Molmo2TokenIds


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------
# Loading


def test_exif_orientation_is_applied(tmp_path):
    arr = _noise(10, 20)  # h=10, w=20
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.png"
    Image.fromarray(arr).save(path, exif=exif)
    assert np.array_equal(load_image(str(path)), np.rot90(arr, k=-1))


def test_colour_modes_become_rgb(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    assert np.array_equal(load_image(gray), np.repeat(gray[:, :, None], 3, axis=2))

    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # transparent red -> white background
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black -> mid gray
    out = load_image(rgba)
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [0, 0, 255]
    assert abs(int(out[0, 2, 0]) - 127) <= 1

    cmyk = tmp_path / "cmyk.tif"
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(cmyk)
    assert load_image(str(cmyk))[0, 0].tolist() == [255, 0, 0]

    deep = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 32896, 65535]], np.uint16)).save(deep)
    assert load_image(str(deep))[0, :, 0].tolist() == [0, 128, 255]

    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 255, 0] + [0, 0, 0] * 255)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 1
    assert load_image(palette).tolist() == [[[0, 255, 0], [255, 255, 255]]]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size but carries (almost) no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("kind", ["truncated_jpeg", "empty", "text", "bomb", "missing"])
def test_bad_image_files_raise_media_error_naming_the_file(tmp_path, kind):
    path = tmp_path / f"{kind}.img"
    if kind == "truncated_jpeg":
        full = tmp_path / "full.jpg"
        Image.fromarray(_noise(64, 64)).save(full, quality=90)
        path.write_bytes(full.read_bytes()[:600])
        reason = "truncated"
    elif kind == "empty":
        path.write_bytes(b"")
        reason = "empty file"
    elif kind == "text":
        path.write_text("this is not an image\n" * 10)
        reason = "not an image"
    elif kind == "bomb":
        path.write_bytes(_png_header_only(30000, 30000))
        reason = "decompression bomb"
    else:
        reason = "no such file"
    with pytest.raises(MediaError, match=reason) as err:
        load_image(str(path))
    assert str(path) in str(err.value) and err.value.path == str(path)


def test_pixel_limit_is_configurable(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(_noise(40, 50)).save(path)
    assert load_image(str(path), max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(MediaError, match="decompression bomb"):
        load_image(str(path), max_pixels=1999)


# ------------------------------------------------------------------------------------------------
# Resize


@pytest.mark.torch_ref
@pytest.mark.parametrize("shape", [(480, 640, 378, 378), (1200, 150, 2240, 378),
                                   (10, 10, 378, 378), (60, 40, 28, 28), (7, 300, 378, 1176)])
def test_resize_matches_torch_bilinear_bit_for_bit(shape):
    torch = pytest.importorskip("torch")
    h, w, oh, ow = shape
    img = _noise(h, w, seed=h)
    torch.set_num_threads(2)  # transformers' default; torch's 1-thread kernel rounds differently
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float().contiguous()
    ref = torch.nn.functional.interpolate(t, size=(oh, ow), mode="bilinear", align_corners=False,
                                          antialias=False)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(resize_bilinear(img, oh, ow), ref)
    assert np.array_equal(resize_uint8(img, oh, ow), np.clip(np.rint(ref), 0, 255).astype(np.uint8))


# ------------------------------------------------------------------------------------------------
# Tiling, pooling and token layout


def test_tiling_of_the_reference_example():
    cfg = ImageConfig()
    assert crop_geometry(600, 900, cfg) == (2, 3, 644, 910)
    assert select_tiling(600 - 112, 900 - 112, 266, 8) == (2, 3)
    grid = image_grid(600, 900, cfg)
    assert grid == (14, 14, 23, 33)
    tokens = image_token_ids(grid, cfg, Molmo2TokenIds())
    assert len(tokens) == 982 and (tokens == Molmo2TokenIds().image_patch).sum() == 955


@pytest.mark.parametrize("size,expected", [
    ((400, 400), (2, 2)), ((378, 378), (1, 1)), ((1200, 150), (5, 1)), ((10, 10), (1, 1)),
    ((3000, 4000), (2, 3)),
    ((100, 5000), (1, 1)),  # thinner than the 112 px margins: negative scales, one crop
])
def test_select_tiling_picks_the_smallest_upscale(size, expected):
    assert crop_geometry(*size, ImageConfig())[:2] == expected


def test_pooling_windows_pad_with_minus_one_centred():
    windows, rows, cols = pooling_windows(np.arange(9).reshape(3, 3), 2, 2)
    assert (rows, cols) == (2, 2)
    assert windows.tolist() == [[0, 1, 3, 4], [2, -1, 5, -1], [6, 7, -1, -1], [8, -1, -1, -1]]
    windows, rows, cols = pooling_windows(np.arange(16).reshape(4, 4), 3, 3)
    assert windows[0].tolist() == [-1, -1, -1, -1, 0, 1, -1, 4, 5]


def test_high_res_grid_drops_interior_margins():
    cfg = ImageConfig()
    grid = high_res_index_grid(2, 3, cfg)
    assert grid.shape == (644 // 14, 910 // 14)
    assert len(np.unique(grid)) == grid.size
    local = grid % 729
    row, col = local // 27, local % 27
    crop = grid // 729
    # crops not on the top/left edge never contribute their first 4 rows/cols, etc.
    assert np.all(row[crop >= 3] >= 4) and np.all(col[crop % 3 > 0] >= 4)
    assert np.all(row[crop < 3] < 23) and np.all(col[crop % 3 < 2] < 23)


def test_process_image_layout():
    cfg = ImageConfig()
    img = _noise(500, 800)
    out = process_image(img, cfg)
    assert out.pixel_values.shape == (7, 729, 588) and out.pixel_values.dtype == np.float32
    assert out.pixel_values.min() >= -1 and out.pixel_values.max() <= 1
    assert out.grid == (14, 14, 23, 33)
    assert out.pooling.shape == (14 * 14 + 23 * 33, 4)
    assert out.pooling.max() < 7 * 729 and out.pooling.min() == -1
    # crop 0 is the whole image stretched to 378x378; patch 0 holds its top-left 14x14 pixels
    glob = (resize_uint8(img, 378, 378).astype(np.float32) - 127.5) / 127.5
    assert np.array_equal(out.pixel_values[0], patchify(glob[None], 14)[0])
    assert np.array_equal(out.pixel_values[0, 0].reshape(14, 14, 3), glob[:14, :14])
    # every high-res patch is pooled exactly once
    high = out.pooling[196:]
    assert np.array_equal(np.sort(high[high >= 0]), np.unique(high[high >= 0]))


def test_token_layout_flags():
    ids = Molmo2TokenIds()
    grid = (2, 2, 3, 4)
    on = image_token_ids(grid, ImageConfig(), ids).tolist()
    assert on[:7] == [ids.low_res_image_start] + [ids.image_patch] * 4 + [ids.image_end,
                                                                          ids.image_start]
    assert on[7:12] == [ids.image_patch] * 4 + [ids.image_col] and on[-1] == ids.image_end
    assert len(on) == 1 + 4 + 1 + 1 + 3 * 5 + 1
    cfg = ImageConfig(low_res_col_tokens=True, low_res_start_token=False, use_col_tokens=False)
    off = image_token_ids(grid, cfg, ids).tolist()
    assert off[:4] == [ids.image_start, ids.image_patch, ids.image_patch, ids.image_col]
    assert ids.image_col not in off[8:]


def test_tiny_config_for_small_models():
    cfg = ImageConfig(base_size=28, patch_size=14, pooling=(2, 2), max_crops=4,
                      overlap_margins=(0, 0))
    out = process_image(_noise(60, 40), cfg)
    th, tw, _, _ = crop_geometry(60, 40, cfg)
    assert out.pixel_values.shape == (1 + th * tw, 4, 588)
    assert out.grid == (1, 1, th, tw)
    assert out.pooling.tolist()[0] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="overlap_margins"):
        ImageConfig(base_size=28, patch_size=14)
