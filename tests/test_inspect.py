"""data_pipelines.inspect: packed demo batches decoded to text and drawn to PNGs."""

import numpy as np

from data_pipelines.inspect import crops_to_images, main


def test_crops_to_images_inverts_patchify():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (14, 14, 3)).astype(np.uint8)
    x = (image.astype(np.float32) - 127.5) / 127.5
    patches = x.reshape(2, 7, 2, 7, 3).transpose(0, 2, 1, 3, 4).reshape(1, 4, 147)  # row-major patches
    np.testing.assert_array_equal(crops_to_images(patches, 7)[0], image)


def test_png_mode_writes_one_picture_per_packed_row(tmp_path, capsys):
    assert main(["--config", "configs/demo.py", "--png", str(tmp_path)]) == 0
    pngs = sorted(tmp_path.glob("pack_row*.png"))
    assert len(pngs) == 8  # demo batch size
    assert "--- batch 0 row 7" in capsys.readouterr().out  # every row decoded to text
