"""molmo2_jax/data.py: the packed layout a config implies matches what its processor writes."""

import numpy as np

from configs import demo
from molmo2_jax.data import make_processor, make_train_data, model_config_for, pack_spec


def test_video_pooling_window_follows_the_processor_so_synthetic_tracking_packs(tmp_path):
    """The tiny demo pools video frames 2x2 (Molmo2: 3x3); a tracking example must pack, not be rejected."""
    c = demo.get_config()
    c.data.max_frames = 8
    c.data.num_examples = 16
    c.data.weights = {"tracking": 0.5, "pointing": 0.5}
    c.batch_size = 2
    processor = make_processor(c, str(tmp_path))
    model_cfg = model_config_for(c, processor)
    video = [m for m in pack_spec(c, processor, model_cfg).media if m.pixels == "pixel_values_videos"][0]
    assert video.window == int(np.prod(processor.video.pooling)) == 4
    it = iter(make_train_data(c, processor, model_cfg))
    batch = next(it)
    assert batch["crop_pooling"].shape[-1] == 4  # image and video windows are both 2x2 here: no padding
    assert batch["video_grids"].any(), "no video example was packed"
    assert it.counters.metrics().get("data/skipped_total", 0) == 0
