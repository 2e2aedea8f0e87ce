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
