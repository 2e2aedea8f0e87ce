"""LoRA vs full fine-tuning: per-device memory of the compiled train step (abstract shapes, nothing allocated).

    python benchmarks/bench_finetune_memory.py [--models tiny nano] [--rank 16]

Compiles configs/finetune.py's real step (`step_report.compiled_step_report`) for full fine-tuning
(ViT frozen) and for LoRA (decoder attention + MLP), and prints parameters, trainable parameters,
optimizer state and XLA's argument/temporary/peak bytes per device.
"""

from __future__ import annotations

import argparse

import numpy as np
from flax import nnx

GiB = 2 ** 30


def trainable_count(config, model_cfg) -> tuple[int, int]:
    """(all parameters, trainable parameters) of the model the config fine-tunes, on abstract shapes."""
    import jax.numpy as jnp

    from molmo2_jax import lora
    from molmo2_jax.model import Molmo2

    def make():
        m = Molmo2(model_cfg, rngs=nnx.Rngs(0))
        if config.lora.rank:
            m = lora.apply_lora(m, rank=config.lora.rank, alpha=config.lora.alpha, targets=config.lora.targets,
                                example_inputs={"input_ids": jnp.zeros((1, 8), jnp.int32)})
        return m

    m = nnx.eval_shape(make)
    size = lambda s: sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(s))  # noqa: E731
    return size(nnx.state(m, nnx.Param)), size(nnx.state(m, lora.trainable(config)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["tiny", "nano"])
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=2536)
    args = p.parse_args()
    import configs.finetune
    from molmo2_jax.model_config import preset
    from molmo2_jax.step_report import compiled_step_report

    print("| model | mode | params | trainable | arguments GiB | temporaries GiB | peak GiB | compile s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        for rank in (0, args.rank):
            c = configs.finetune.get_config()
            c.model.name, c.lora.rank, c.batch_size, c.seq_len = name, rank, args.batch, args.seq
            c.dtype = "bfloat16"
            cfg = preset(name)
            total, train = trainable_count(c, cfg)
            r = compiled_step_report(c, model_cfg=cfg)
            mode = f"LoRA r{rank}" if rank else "full (ViT frozen)"
            print(f"| {name} | {mode} | {total:,} | {train:,} | {r['argument_bytes'] / GiB:.3f} | "
                  f"{r['temp_bytes'] / GiB:.3f} | {r['peak_bytes'] / GiB:.3f} | {r['compile_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
