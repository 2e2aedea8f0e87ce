"""Stage 2 SFT of nanoMolmo2: the grouped ~100-dataset mixture, 16,384-token packs.

COMMAND: python -m molmo2_jax.main --config configs/stage2.py --workdir runs/stage2 \
    --config.init.checkpoint=runs/stage1/checkpoints/31000 --config.data.path=data/stage2
"""

from configs.common import base_config


def get_config():
    c = base_config()
    c.model.name = "nano"
    c.total_steps = 30_000
    c.warmup_steps = 200
    c.batch_size = 128
    c.seq_len = 16_384
    c.learning_rate.connector = 5e-6
    c.learning_rate.vit = 5e-6
    c.learning_rate.llm = 1e-5
    c.freeze_vit = True
    c.remat = "block"
    c.data.mixture = "stage2"
    c.data.max_frames = 128
    c.data.weights = {"demo": 0.15, "video_qa": 0.20, "image_qa": 0.25, "tracking": 0.15,
                      "video_pointing": 0.15, "image_pointing": 0.10, "text": 0.10}
    return c
