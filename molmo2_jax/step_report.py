"""What XLA compiles for a stage config's real train step: per-device memory and FLOPs, on abstract shapes.

Nothing is allocated: the model and optimizer are built with `nnx.eval_shape` (outside the mesh: its
logical-axes metadata is not a sharding), every variable and batch
array becomes a `jax.ShapeDtypeStruct` carrying its sharding (logical rules / `batch_sharding`), and the
jitted step is lowered and compiled. With fake CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`) this sizes a GPU run on a laptop.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
from flax import nnx

from molmo2_jax import train
from molmo2_jax.attention import DEFAULT_BLOCK
from molmo2_jax.sharding import field_sharding, make_mesh, variable_sharding

GiB = 2 ** 30


def abstract_batch(config, model_cfg, mesh, num_sources: int = 1) -> dict:
    """ShapeDtypeStructs (with shardings) of one global batch as the packer lays it out for the step."""
    from molmo2_jax.data import pack_spec

    spec = pack_spec(config, None, model_cfg)
    b, s = config.batch_size, spec.seq_len
    shapes = {k: ((b, s), dtype) for k, (dtype, _) in spec.token_fields.items()}
    shapes.update(segment_ids=((b, s), "int32"), positions=((b, s), "int32"), source_ids=((b, s), "int32"))
    if spec.media:  # one crop stack and one pooling table per crop group of spec.rows rows (packing.assemble)
        g = b // spec.rows
        shapes["crops"] = ((g, spec.crop_slots, *spec.media[0].crop_shape), spec.media[0].pixel_dtype)
        shapes["crop_segment_ids"] = ((g, spec.crop_slots), "int32")
        shapes["crop_pooling"] = ((g, spec.pool_rows, spec.pool_window), "int32")
    from molmo2_jax.main import _MODEL_KEYS

    def sds(name, shape, dtype):
        return jax.ShapeDtypeStruct(shape, jnp.dtype(dtype), sharding=field_sharding(mesh, name, len(shape)))

    return {k: sds(k, *v) for k, v in shapes.items() if k in _MODEL_KEYS}


def _abstract_sharded(tree, mesh):
    """Every variable's value -> ShapeDtypeStruct with the sharding its logical axes imply."""
    graphdef, state = nnx.split(tree)

    def to_sds(var):
        raw = var.get_raw_value()
        if not hasattr(raw, "shape"):
            return var  # optax placeholders (masked-out / empty states)
        return var.replace(jax.ShapeDtypeStruct(raw.shape, raw.dtype, sharding=variable_sharding(var, mesh)))

    state = jax.tree.map(to_sds, state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    return nnx.merge(graphdef, state)


def compiled_step_report(config, num_devices: int | None = None, model_cfg=None, scan_layers: bool = True) -> dict:
    """Lower + compile the real train step of `config` on abstract shapes; per-device bytes and FLOPs.

    Returns argument/output/temp/alias/peak bytes per device (`memory_analysis()`), XLA's FLOPs per device
    (`cost_analysis()`; it counts a scanned layer's body once: pass scan_layers=False to compare it with the
    formula), the formula's FLOPs (`model_flops_per_step`), and lower/compile seconds.
    """
    from molmo2_jax.main import DTYPES, build_optimizer
    from molmo2_jax.model import Molmo2
    from molmo2_jax.model_config import preset

    devices = jax.devices()[:num_devices] if num_devices else jax.devices()
    mesh = make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.sequence, devices=devices)
    model_cfg = model_cfg or preset(config.model.name)
    dtype = DTYPES[config.dtype]

    def make():
        model = Molmo2(model_cfg, dtype=dtype, rngs=nnx.Rngs(0), attention_impl=config.attention_impl,
                       remat=config.remat, attention_block_size=config.get("attention_block_size", DEFAULT_BLOCK))
        model.language_model.scan_layers = scan_layers
        if config.get("lora") is not None and config.lora.rank:  # configs/finetune.py: LoRA adapters
            from molmo2_jax.lora import apply_lora

            model = apply_lora(model, rank=config.lora.rank, alpha=config.lora.alpha, targets=config.lora.targets,
                               example_inputs={"input_ids": jnp.zeros((1, 8), jnp.int32)})
        return model, build_optimizer(config, model)[0]

    model, optimizer = _abstract_sharded(nnx.eval_shape(make), mesh)
    with jax.set_mesh(mesh):
        batch = abstract_batch(config, model_cfg, mesh)
        step = train.make_train_step(config.z_loss, config.grad_accum_steps)
        t0 = time.perf_counter()
        lowered = step.lower(model, optimizer, batch)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    report = {
        "devices": len(devices),
        "mesh": dict(mesh.shape),
        "batch_size": config.batch_size,
        "seq_len": config.seq_len,
        "max_crops": config.data.max_crops,
        "dtype": config.dtype,
        "remat": config.remat,
        "grad_accum_steps": config.grad_accum_steps,
        "attention_impl": config.attention_impl,
        "argument_bytes": int(mem.argument_size_in_bytes),
        "output_bytes": int(mem.output_size_in_bytes),
        "alias_bytes": int(mem.alias_size_in_bytes),
        "temp_bytes": int(mem.temp_size_in_bytes),
        "xla_flops_per_device": float(cost.get("flops", 0.0)),
        "formula_flops_per_device": train.model_flops_per_step(model_cfg, config) / len(devices),
        "lower_s": t1 - t0,
        "compile_s": t2 - t1,
    }
    # Donated arguments alias their outputs: peak = arguments + outputs not aliased + temporaries.
    report["peak_bytes"] = (report["argument_bytes"] + report["output_bytes"] - report["alias_bytes"]
                            + report["temp_bytes"])
    return report


def format_report(r: dict) -> str:
    """Human-readable lines of `compiled_step_report`'s dict."""
    accum = r.get("grad_accum_steps", 1)
    per_seq = r["temp_bytes"] / max(r["batch_size"] / r["devices"] / accum, 1)  # sequences per device at once
    return "\n".join([
        f"compiled train step: batch {r['batch_size']} x {r['seq_len']} tokens ({accum} micro-batches), "
        f"{r['max_crops']} crop slots, {r['dtype']}, remat={r['remat']}, attention {r.get('attention_impl')}, "
        f"mesh {r['mesh']}",
        f"  per device: arguments {r['argument_bytes'] / GiB:.2f} GiB, outputs {r['output_bytes'] / GiB:.2f} GiB "
        f"(aliased {r['alias_bytes'] / GiB:.2f}), temporaries {r['temp_bytes'] / GiB:.2f} GiB "
        f"({per_seq / GiB:.2f} GiB per sequence), peak {r['peak_bytes'] / GiB:.2f} GiB",
        f"  FLOPs per device: XLA {r['xla_flops_per_device']:.3e} (a scanned layer counted once), "
        f"formula {r['formula_flops_per_device']:.3e}",
        f"  lower {r['lower_s']:.1f} s, compile {r['compile_s']:.1f} s",
    ])
