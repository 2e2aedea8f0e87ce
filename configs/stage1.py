"""Stage 1 pre-training of nanoMolmo2 (allenai/molmo2 launch_scripts/pretrain.py): captions 60% / pointing 30%
(split over PixMo-Points, PixMo-Count, PixMo-Points high-frequency and CoSyn-Point by sqrt(size), the PixMo sets
counted in both counting modes) / text 10%, 2,536-token packs, batch 128, 31k steps.

Shares come from the sizes of the data prepared under `data.path`; a mixture dataset that is not there stops
the run (`--config.data.allow_missing=True` trains without it and reports it). The ViT is FROZEN by default
(nanoMolmo2); Molmo2 itself trains it at 6e-6: `--config.freeze_vit=False` is the one override that does so.
Every value beside the official one and its source: docs/recipe.md (`python -m scripts.make_recipe_doc`).

COMMAND: python -m molmo2_jax.main --config configs/stage1.py --workdir runs/stage1 \
    --config.init.checkpoint=ckpt/nano_init --config.data.path=data/stage1
"""

from configs.common import base_config


def get_config():
    c = base_config()
    c.model.name = "nano"
    c.total_steps = 31_000
    c.warmup_steps = 200
    c.component_warmup_steps = {"connector": 200, "vit": 2000, "llm": 2000}
    c.batch_size = 128
    c.seq_len = 2536
    c.learning_rate.connector = 2e-4
    c.learning_rate.vit = 6e-6
    c.learning_rate.llm = 2e-5
    c.freeze_vit = True  # nanoMolmo2 default; --config.freeze_vit=False trains it as Molmo2 does (6e-6)
    c.z_loss = 1e-4
    c.residual_dropout = 0.0
    c.response_residual_dropout = 0.1
    c.remat = "block"
    # pretrain.py device_train_microbatch_size=4: batch 128 on 8 devices = 4 micro-batches of 4 per device, which
    # fits a 40 GB A100 (docs/benchmarks.md); per-device micro-batch = 128 / devices / grad_accum_steps.
    c.grad_accum_steps = 4
    c.attention_impl = "blockwise"  # flash-style, mask per block: 11.1 vs 13.9 GiB per device for dense `xla`
    c.checkpoint_every = 1000
    c.data.mixture = "stage1"
    c.data.weights = {"captions": 0.6, "pointing": 0.3, "nlp": 0.1}
    c.data.system_prompt = "style_and_length_v2"  # "long_caption 57:", "pointing: dogs", "transcript 31:", ...
    # The ViT runs on every crop slot. allenai/molmo2 budgets 16 crops per pack (57% real at 2,536 tokens: tokens
    # fill first); here the 4 rows of a micro-batch share one stack of 4 x 10 slots: 90% real, no crop dropped.
    c.data.crop_group_rows = 4
    c.data.max_crops = 10  # per row of the group
    return c
