"""Stage 3 long-context SFT of nanoMolmo2: the stage-2 mixture with up to 384 frames, 36,864-token packs,
batch 128, 2,000 steps with warmup 200 on a fresh schedule (Molmo2 paper / sft.py long-context settings).

The ViT is FROZEN by default (nanoMolmo2): `--config.freeze_vit=False` trains it. Values: docs/recipe.md.

COMMAND: python -m molmo2_jax.main --config configs/stage3.py --workdir runs/stage3 \
    --config.init.checkpoint=runs/stage2/checkpoints/30000 --config.data.path=data/stage2
"""

from configs.stage2 import get_config as stage2_config


def get_config():
    c = stage2_config()
    c.total_steps = 2_000
    c.warmup_steps = 200
    c.component_warmup_steps = {"connector": 200, "vit": 200, "llm": 200}
    c.batch_size = 128
    c.seq_len = 36_864
    c.data.mixture = "stage3"
    c.data.max_frames = 384
    c.mesh.sequence = 8  # context parallelism: each 36,864-token pack split over 8 devices
    c.attention_impl = "ring"  # zig-zag ring over `sequence`; "ulysses" works too (8 KV heads / 8)
    return c
