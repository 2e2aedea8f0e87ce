"""Stage 2 SFT of nanoMolmo2 (allenai/molmo2 launch_scripts/sft.py, mixture "molmo2"): the grouped ~118-dataset
mixture (group rates, sqrt(size) x per-set rate within a group), 16,384-token packs, batch 128.

Shares come from the prepared data under `data.path`; a missing mixture dataset stops the run unless
`--config.data.allow_missing=True`. The ViT is FROZEN by default (nanoMolmo2); Molmo2 trains it at 5e-6:
`--config.freeze_vit=False`. Values vs the official ones: docs/recipe.md.

COMMAND: python -m molmo2_jax.main --config configs/stage2.py --workdir runs/stage2 \
    --config.init.checkpoint=runs/stage1/checkpoints/31000 --config.data.path=data/stage2
"""

from configs.common import base_config


def get_config():
    c = base_config()
    c.model.name = "nano"
    c.total_steps = 30_000
    c.warmup_steps = 200
    c.component_warmup_steps = {"connector": 200, "vit": 200, "llm": 200}
    c.batch_size = 128
    c.seq_len = 16_384
    c.learning_rate.connector = 5e-6
    c.learning_rate.vit = 5e-6
    c.learning_rate.llm = 1e-5
    c.freeze_vit = True  # nanoMolmo2 default; --config.freeze_vit=False trains it as Molmo2 does (5e-6)
    c.z_loss = 1e-4
    c.residual_dropout = 0.1
    c.response_residual_dropout = 0.0
    c.remat = "block"
    c.attention_impl = "blockwise"  # flash-style, mask per block: O(T x block) memory (docs/benchmarks.md)
    c.data.mixture = "stage2"
    c.data.max_frames = 128
    c.data.weights = {}  # the registry's Molmo2 group rates (STAGE_GROUP_RATES[2])
    # image pointing: 30% of examples tiled with up to 24 crops (sft.py override_p_high_res=0.3)
    c.data.high_res_datasets = ("pixmo_multi_points", "pixmo_points_train", "pixmo_count_train",
                                "pixmo_points_high_freq_train", "cosyn_point")
    c.data.p_high_res = 0.3
    c.data.high_res_max_crops = 24
    return c
