"""Compiled per-device memory of the real stage-2 / stage-3 train step (nano, abstract shapes, fake devices).

One sequence per data-parallel rank (stage 2: batch 8 over fsdp 8; stage 3: batch 1 over sequence 8), the
stage config's remat and dtype, for the attention implementations asked for. Nothing is allocated.

COMMAND: XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
    python -m benchmarks.memory_stages --stage 3 --impl ring,xla
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

GiB = 2 ** 30


def stage_config(stage: int, impl: str, devices: int = 8):
    """The stage config at one sequence per data-parallel rank on `devices` devices."""
    from configs.stage2 import get_config as stage2
    from configs.stage3 import get_config as stage3

    c = stage2() if stage == 2 else stage3()
    c.attention_impl = impl
    ranks = devices // c.mesh.sequence
    c.mesh.fsdp = ranks
    c.batch_size = ranks
    return c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", type=int, choices=(2, 3), required=True)
    p.add_argument("--impl", default="blockwise", help="comma-separated attention_impl values")
    args = p.parse_args()
    from molmo2_jax.model_config import preset
    from molmo2_jax.step_report import compiled_step_report

    for impl in args.impl.split(","):
        c = stage_config(args.stage, impl)
        try:
            r = compiled_step_report(c, model_cfg=preset(c.model.name))
        except Exception as e:  # a path that cannot compile (e.g. out of host memory) is a row, not a crash
            r = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        r.update(stage=args.stage, attention_impl=impl, sequence=c.mesh.sequence)
        if "peak_bytes" in r:
            print(f"stage {args.stage} {impl:9s} mesh {r['mesh']} batch {r['batch_size']} x {r['seq_len']}: "
                  f"peak {r['peak_bytes'] / GiB:.1f} GiB per device (arguments {r['argument_bytes'] / GiB:.1f}, "
                  f"temporaries {r['temp_bytes'] / GiB:.1f}); compile {r['compile_s']:.0f} s", flush=True)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
