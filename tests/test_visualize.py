"""Point drawing for the generate CLI and the demo."""

import numpy as np
from PIL import Image

from molmo2_jax.visualize import draw_points, grid


def test_points_are_drawn_where_they_are():
    im = Image.new("RGB", (40, 40), (0, 0, 0))
    out = np.asarray(draw_points(im, [{"x": 10, "y": 30, "id": 1}], radius=3))
    assert out[30, 10].sum() > 0 and out[5, 35].sum() == 0
    assert np.asarray(im).sum() == 0  # the input is left untouched


def test_grid_tiles_all_images():
    sheet = grid([Image.new("RGB", (10, 10), (255, 0, 0))] * 5, columns=2, pad=2)
    assert sheet.size == (2 * 12 + 2, 3 * 12 + 2)
    assert np.asarray(sheet)[2 + 12 * 2 + 5, 2 + 5].tolist() == [255, 0, 0]


def test_video_strip_draws_tracks_on_the_frame_with_their_time():
    from molmo2_jax.visualize import draw_video_strip

    frames = np.zeros((3, 32, 32, 3), np.uint8)
    strip = draw_video_strip(frames, np.asarray([0.0, 0.5, 1.0]), [],
                             [{"time": 0.5, "points": {1: (16.0, 16.0)}}], size=32)
    arr = np.asarray(strip)
    pad = 4
    tile = lambda i: arr[pad:pad + 32, pad + i * (32 + pad): pad + i * (32 + pad) + 32]  # noqa: E731
    assert tile(0).sum() == 0 and tile(2).sum() == 0
    assert tile(1)[16, 16].sum() > 0
