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


def test_prediction_panel_shows_title_legend_truth_and_hit_miss_marks():
    from molmo2_jax.visualize import HIT, MISS, TRUTH, draw_prediction_panel

    im = Image.new("RGB", (64, 64), (0, 0, 0))
    panel = draw_prediction_panel(im, "Point to the red circles.", [(16, 16), (48, 48)], [(8, 8, 24, 24)],
                                  [True, False], size=128)
    arr = np.asarray(panel).astype(int)
    assert panel.width == 128 and panel.height > 128  # title above and legend below the image
    colours = {tuple(c) for c in arr.reshape(-1, 3)}
    assert HIT in colours and MISS in colours and TRUTH in colours
    top = panel.height - 128 - (6 + 13 * 3)  # title band height
    assert tuple(arr[top + 32, 32]) == HIT  # the hit at (16, 16) -> (32, 32) after scaling
    assert (arr[:top] < 128).any()  # the prompt is written in the title band


def test_demo_predictions_png_uses_the_panel(tmp_path):
    from data_pipelines.synthetic import SyntheticSource
    from molmo2_jax.evaluate import _image, draw_predictions, target_boxes
    from molmo2_jax.visualize import HIT, MISS, TRUTH

    ex = SyntheticSource("pointing", 1, seed=3)[0]
    h, w = _image(ex).shape[:2]
    b = target_boxes(ex)[0]
    rec = {"task": "pointing", "points": [{"x": (b.x0 + b.x1) / 2 * w, "y": (b.y0 + b.y1) / 2 * h},
                                          {"x": 1.0, "y": 1.0}]}
    draw_predictions([ex], [rec], str(tmp_path / "p.png"))
    colours = {tuple(c) for c in np.asarray(Image.open(tmp_path / "p.png")).reshape(-1, 3).tolist()}
    assert {HIT, MISS, TRUTH} <= colours
