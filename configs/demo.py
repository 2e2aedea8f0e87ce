"""Offline demo: the tiny Molmo2 trained from scratch on synthetic shapes (2-core CPU, minutes).

COMMAND: python -m molmo2_jax.main --config configs/demo.py --workdir runs/demo
"""

from configs.common import base_config


def get_config():
    c = base_config()
    c.model.name = "tiny"
    c.total_steps = 300
    c.warmup_steps = 20
    c.batch_size = 8
    c.seq_len = 384
    c.learning_rate.connector = 3e-3
    c.learning_rate.vit = 1e-3
    c.learning_rate.llm = 3e-3
    c.lr_final_fraction = 0.05
    c.freeze_vit = False
    c.weight_decay = 0.01
    c.dtype = "float32"
    c.checkpoint_every = 100
    c.keep_checkpoints = 2
    c.log_every = 10
    c.eval_every = 0
    c.data.mixture = "synthetic"
    c.data.weights = {"caption": 0.2, "pointing": 0.4, "counting": 0.4}
    c.data.max_crops = 48
    c.data.max_crops_per_image = 2
    c.data.num_examples = 20000
    c.data.image_size = 56
    c.data.eval_max_new_tokens = 96
    c.data.eval_examples = 64
    return c
