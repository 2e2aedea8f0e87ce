"""Stage 1 pre-training of nanoMolmo2: captions 60% / pointing 30% / text 10%, 2,536-token packs.

COMMAND: python -m molmo2_jax.main --config configs/stage1.py --workdir runs/stage1 \
    --config.init.checkpoint=ckpt/nano_init --config.data.path=data/stage1
"""

from configs.common import base_config


def get_config():
    c = base_config()
    c.model.name = "nano"
    c.total_steps = 31_000
    c.warmup_steps = 200
    c.batch_size = 128
    c.seq_len = 2536
    c.learning_rate.connector = 2e-4
    c.learning_rate.vit = 6e-6
    c.learning_rate.llm = 2e-5
    c.freeze_vit = True  # nanoMolmo2 default; Molmo2 itself trains the ViT at 6e-6
    c.remat = "block"
    c.checkpoint_every = 1000
    c.data.max_crops = 16  # allenai/molmo2's pre-training crop budget per pack (the ViT runs on every slot)
    c.data.mixture = "stage1"
    c.data.weights = {"pixmo_cap": 0.6, "pixmo_points": 0.15, "pixmo_count": 0.05, "cosyn_point": 0.10,
                      "tulu": 0.10}
    return c
