"""Train Molmo2: `python -m molmo2_jax.main --config configs/<stage>.py [--workdir DIR] [--inspect]`."""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from molmo2_jax import train
from molmo2_jax.checkpoints.orbax_io import is_checkpoint, load_params
from molmo2_jax.model import Molmo2, count_params
from molmo2_jax.model_config import get_config as get_model_config
from molmo2_jax.sharding import batch_sharding, create_sharded, make_mesh, state_shardings

_CONFIG = config_flags.DEFINE_config_file("config", None, "stage config file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics, PNGs)")
_INSPECT = flags.DEFINE_bool("inspect", False, "print config, parameters, mesh, shardings, memory; then exit")

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(config, mesh, cfg=None) -> Molmo2:
    """Random init (of `cfg`, default the preset), an HF Molmo2 directory, or our checkpoint (`init.checkpoint`)."""
    dtype = DTYPES[config.dtype]
    kw = dict(attention_impl=config.attention_impl, remat=config.remat != "none")
    path = config.init.checkpoint
    if not path:
        cfg = cfg or get_model_config(config.model.name)
        return create_sharded(lambda: Molmo2(cfg, dtype=dtype, rngs=nnx.Rngs(config.seed), **kw), mesh)
    if is_checkpoint(path):
        return load_params(path, mesh, dtype, **kw)
    from molmo2_jax.convert import load_hf_molmo2

    return load_hf_molmo2(path, mesh=mesh, dtype=dtype, **kw)


def build_optimizer(config, model: Molmo2) -> nnx.Optimizer:
    lrs = {c: config.learning_rate[c] for c in train.COMPONENTS}
    schedules = train.learning_rate_schedules(lrs, config.warmup_steps, config.total_steps, config.lr_final_fraction)
    tx = train.make_optimizer(schedules, weight_decay=config.weight_decay, clip=config.grad_clip,
                              max_consecutive_nonfinite=config.max_consecutive_nonfinite)
    return nnx.Optimizer(model, tx, wrt=train.trainable_filter(config.freeze_vit)), schedules


def model_flops_per_token(model: Molmo2, seq_len: int) -> float:
    """Training FLOPs per text token: 6 x LLM params + attention (12 x layers x d_attn x seq_len), ViT excluded."""
    t = model.cfg.text
    llm = count_params(model.language_model) - t.embedding_rows * t.hidden_size
    return 6 * llm + 12 * t.num_layers * t.num_heads * t.head_dim * seq_len


def inspect(config, model, optimizer, mesh, data) -> None:
    """--inspect: config, parameter counts, mesh, shardings, per-device memory estimate, a decoded batch."""
    print(config)
    print(f"mesh: {dict(mesh.shape)} over {mesh.devices.size} devices")
    for name in ("vision_tower", "connector", "language_model"):
        print(f"params[{name}]: {count_params(getattr(model, name)):,}")
    params = nnx.state(model, nnx.Param)
    for path, var in nnx.to_flat_state(params):
        print(f"  {'.'.join(map(str, path)):70s} {str(tuple(var.shape)):22s} {var.sharding.spec}")
    per_device = 0
    for x in jax.tree.leaves(nnx.state(optimizer)) + jax.tree.leaves(params):
        if hasattr(x, "addressable_shards") and x.addressable_shards:
            per_device += x.addressable_shards[0].data.nbytes
    print(f"estimated state memory per device (params + optimizer): {per_device / 2**30:.3f} GiB")
    if data is not None:
        batch = next(iter(data))
        print({k: (v.shape, v.dtype) for k, v in batch.items()})


class CheckpointIO:
    """Orbax manager saving params + optimizer, the data iterator state and the config; restores the latest."""

    def __init__(self, workdir: str, config):
        opts = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints,
                                            keep_period=config.keep_every or None, enable_async_checkpointing=True,
                                            create=True)
        self.manager = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=opts,
                                             item_names=("state", "data", "config"))
        self.config_json = config.to_json()

    def save(self, step: int, model, optimizer, data_state) -> None:
        state = {"model": nnx.to_pure_dict(nnx.state(model)), "optimizer": nnx.to_pure_dict(nnx.state(optimizer))}
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
            config=ocp.args.JsonSave(json.loads(self.config_json))))

    def restore_latest(self, model, optimizer):
        step = self.manager.latest_step()
        if step is None:
            return None, None
        states = {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                              {k: nnx.to_pure_dict(v) for k, v in states.items()})
        out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                                 data=ocp.args.JsonRestore()))
        for name, obj in (("model", model), ("optimizer", optimizer)):
            nnx.replace_by_pure_dict(states[name], out["state"][name])
            nnx.update(obj, states[name])
        return step, out["data"]

    def close(self):
        self.manager.wait_until_finished()
        self.manager.close()


class MetricsWriter:
    """metrics.jsonl (one object per logged step) + TensorBoard event files + a console line."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "metrics.jsonl")
        try:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(os.path.join(workdir, "tb"))
        except ImportError:
            self.tb = None

    def write(self, step: int, metrics: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
        print(f"step {step}: {shown}", flush=True)


def run(config, workdir: str, inspect_only: bool = False) -> dict:
    """The training loop; returns the last logged metrics."""
    from molmo2_jax.data import make_processor, make_train_data, model_config_for

    os.makedirs(workdir, exist_ok=True)
    mesh = make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.sequence)
    processor = make_processor(config, workdir)
    with jax.set_mesh(mesh):
        model = build_model(config, mesh, model_config_for(config, processor))
        optimizer, schedules = build_optimizer(config, model)
    data = make_train_data(config, processor, model.cfg, jax.process_index(), jax.process_count())
    if inspect_only:
        inspect(config, model, optimizer, mesh, data)
        return {}
    ckpt = CheckpointIO(workdir, config)
    start, data_state = ckpt.restore_latest(model, optimizer)
    iterator = iter(data)
    if data_state is not None:
        iterator.set_state(data_state)
        print(f"resumed from step {start}", flush=True)
    start = start or 0
    step_fn = train.make_train_step(config.z_loss, config.grad_accum_steps)
    writer = MetricsWriter(workdir)
    flops_per_token = model_flops_per_token(model, config.seq_len)
    peak = float(os.environ.get("MOLMO2_PEAK_FLOPS", 0)) * jax.device_count()
    last, t0, tokens, skipped_total = {}, time.time(), 0, 0
    for step in range(start + 1, config.total_steps + 1):
        host_batch = next(iterator)
        batch = {k: jax.device_put(v, batch_sharding(mesh, v.ndim, 1 if v.ndim == 2 else None))
                 for k, v in host_batch.items() if k in _MODEL_KEYS}
        with jax.set_mesh(mesh):
            out = step_fn(model, optimizer, batch)
        tokens += int(np.sum(host_batch["segment_ids"] > 0))
        if not bool(out["finite"]):
            skipped_total += 1
            consecutive = train.nonfinite_count(optimizer)
            print(f"step {step}: non-finite loss/gradients, update skipped ({consecutive} in a row)", flush=True)
            if consecutive >= config.max_consecutive_nonfinite:
                raise RuntimeError(f"{consecutive} consecutive non-finite steps: lower the learning rate or "
                                   "check the data (see metrics.jsonl)")
        if step % config.log_every == 0 or step == config.total_steps:
            dt = time.time() - t0
            last = {k: float(out[k]) for k in ("loss", "ce", "accuracy", "grad_norm")}
            last.update({f"lr_{c}": float(schedules[c](step)) for c in train.COMPONENTS},
                        tokens_per_s=tokens / dt, step_time_s=dt / config.log_every, skipped_steps=skipped_total,
                        **getattr(iterator, "metrics", lambda: {})())
            if peak:
                last["mfu"] = tokens * flops_per_token / dt / peak
            writer.write(step, last)
            t0, tokens = time.time(), 0
        if step % config.checkpoint_every == 0 or step == config.total_steps:
            ckpt.save(step, model, optimizer, iterator.get_state())
        evaluate_now = config.eval_every and step % config.eval_every == 0
        if evaluate_now or (step == config.total_steps and config.data.mixture == "synthetic"):
            from molmo2_jax.evaluate import evaluate_during_training

            scores = evaluate_during_training(config, model, processor, workdir, step)
            writer.write(step, scores)
            last.update(scores)
    ckpt.close()
    export_for_inference(model, processor, os.path.join(workdir, "model"))
    return last


def export_for_inference(model, processor, path: str) -> None:
    """The final weights with their processor, loadable by `molmo2_jax.load` / generate / evaluate."""
    from molmo2_jax.checkpoints.orbax_io import save_params
    from molmo2_jax.data import save_processor

    save_params(path, model)
    tok = os.path.join(os.path.dirname(path), "tokenizer.model")
    save_processor(processor, path, tok if os.path.exists(tok) else None)


_MODEL_KEYS = ("input_ids", "target_ids", "loss_mask", "loss_weights", "branch_ids", "mm_token_type_ids",
               "segment_ids", "positions", "pixel_values", "image_token_pooling", "pixel_values_videos",
               "video_token_pooling")


def main(argv):
    del argv
    config = _CONFIG.value
    if config is None:
        print("error: --config is required, e.g. --config configs/demo.py", file=sys.stderr)
        return 2
    if "JAX_COORDINATOR_ADDRESS" in os.environ or "SLURM_JOB_ID" in os.environ and \
            int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        jax.distributed.initialize()
    name = os.path.splitext(os.path.basename(config_flags.get_config_filename(flags.FLAGS["config"])))[0]
    workdir = _WORKDIR.value or os.path.join("runs", name)
    run(config, workdir, _INSPECT.value)
    return 0


if __name__ == "__main__":
    app.run(main)
