"""Train Molmo2: `python -m molmo2_jax.main --config configs/<stage>.py [--workdir DIR] [--inspect]`."""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from data_pipelines.schema import DataError
from molmo2_jax import train
from molmo2_jax.attention import DEFAULT_BLOCK
from molmo2_jax.checkpoints.manager import CheckpointError, CheckpointIO, StopSignals
from molmo2_jax.checkpoints.orbax_io import is_checkpoint, load_params
from molmo2_jax.model import Molmo2, count_params
from molmo2_jax.model_config import preset
from molmo2_jax.sharding import create_sharded, field_sharding, make_mesh

_CONFIG = config_flags.DEFINE_config_file("config", None, "stage config file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics, PNGs)")
_INSPECT = flags.DEFINE_bool("inspect", False, "print config, parameters, mesh, shardings, memory; then exit")
_INSPECT_COMPILE = flags.DEFINE_bool("inspect_compile", True, "--inspect also compiles the real train step on "
                                     "abstract shapes (per-device memory, FLOPs; minutes for nano)")

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(config, mesh, cfg=None) -> Molmo2:
    """Random init (of `cfg`, default the preset), an HF Molmo2 directory, or our checkpoint (`init.checkpoint`)."""
    dtype = DTYPES[config.dtype]
    kw = dict(attention_impl=config.attention_impl, remat=config.remat,
              attention_block_size=config.get("attention_block_size", DEFAULT_BLOCK),
              scan_layers=config.get("scan_layers", True))
    path = config.init.checkpoint
    if not path:
        cfg = cfg or preset(config.model.name)
        return create_sharded(lambda: Molmo2(cfg, dtype=dtype, rngs=nnx.Rngs(config.seed), **kw), mesh)
    if is_checkpoint(path):
        return load_params(path, mesh, dtype, **kw)
    from molmo2_jax.convert import load_hf_molmo2

    return load_hf_molmo2(path, mesh=mesh, dtype=dtype, **kw)


def build_optimizer(config, model: Molmo2) -> nnx.Optimizer:
    lrs = {c: config.learning_rate[c] for c in train.COMPONENTS}
    warmup = {c: dict(config.get("component_warmup_steps", {})).get(c, config.warmup_steps) for c in train.COMPONENTS}
    schedules = train.learning_rate_schedules(lrs, warmup, config.total_steps, config.lr_final_fraction)
    tx = train.make_optimizer(schedules, weight_decay=config.weight_decay, clip=config.grad_clip,
                              max_consecutive_nonfinite=config.max_consecutive_nonfinite)
    if config.get("lora") is not None:  # configs/finetune.py: adapters only, or the components not frozen
        from molmo2_jax.lora import trainable

        return nnx.Optimizer(model, tx, wrt=trainable(config)), schedules
    return nnx.Optimizer(model, tx, wrt=train.trainable_filter(config.freeze_vit)), schedules


class ConsumedState:
    """The data iterator's state after the batches trained on (the prefetcher reads ahead), for Grain's
    checkpoint handler (which saves `get_state()` bytes of non-DatasetIterator items)."""

    def __init__(self, state):
        self.state = state

    def get_state(self) -> bytes:
        return json.dumps(self.state).encode()


class Prefetcher:
    """The next batch read from the data iterator and put on devices in a thread while the current step runs.

    Yields (host batch, device batch, iterator state after this batch), so a checkpoint saves the state of
    the batches actually trained on, not of the one prefetched.
    """

    def __init__(self, iterator, put, depth: int = 2):
        import queue
        import threading

        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._iterator, self._put, self._stop = iterator, put, threading.Event()
        self._thread = threading.Thread(target=self._fill, daemon=True)
        self._thread.start()

    def _fill(self):
        try:
            while not self._stop.is_set():
                host = next(self._iterator)
                self._queue.put((host, self._put(host), self._iterator.get_state()))
        except BaseException as e:  # StopIteration or a data error: re-raised in the training thread
            self._queue.put(e)

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop reading ahead and wait for the thread: a daemon thread still inside JAX or the data reader when
        the interpreter exits aborts the process ("FATAL: exception not rethrown")."""
        import queue

        self._stop.set()
        deadline = time.time() + timeout_s
        while self._thread.is_alive() and time.time() < deadline:
            try:
                self._queue.get(timeout=0.05)  # unblocks a put() on a full queue
            except queue.Empty:
                pass
        self._thread.join(timeout=max(0.0, deadline - time.time()))

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


def inspect(config, model_cfg, mesh, data_fn, compile_step: bool = True) -> None:
    """--inspect: config, parameter counts, mesh, each parameter's sharding, per-device memory, a batch.

    Works on abstract shapes only (no weights are allocated or read), so stage configs can be checked
    on a laptop with fake devices (`./launch.sh --cpu 8 configs/stage1.py --inspect`).
    """
    from molmo2_jax.sharding import variable_sharding

    dtype = DTYPES[config.dtype]
    print(config)
    print(__import__("configs.recipe").recipe.describe(config))  # resolved schedule + mixture (configs/recipe.py)
    print(f"mesh: {dict(mesh.shape)} over {mesh.devices.size} devices")

    def make():
        model = Molmo2(model_cfg, dtype=dtype, rngs=nnx.Rngs(0))
        return model, build_optimizer(config, model)[0]

    model, optimizer = nnx.eval_shape(make)
    for name in ("vision_tower", "connector", "language_model"):
        print(f"params[{name}]: {count_params(getattr(model, name)):,}")
    trainable = nnx.state(model, train.trainable_filter(config.freeze_vit))
    print(f"trainable params: {sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(trainable)):,}")

    def per_device_bytes(state) -> tuple[int, list]:
        total, rows = 0, []
        for path, var in nnx.to_flat_state(state):
            if not hasattr(var.get_raw_value(), "shape"):
                continue  # optax placeholders (masked-out / empty states)
            sharding = variable_sharding(var, mesh)  # the rules table, as create_sharded lays it out
            total += int(np.prod(sharding.shard_shape(var.shape))) * np.dtype(var.dtype).itemsize
            rows.append((".".join(map(str, path)), tuple(var.shape), sharding.spec))
        return total, rows

    param_bytes, rows = per_device_bytes(nnx.state(model, nnx.Param))
    for name, shape, spec in rows:
        print(f"  {name:72s} {str(shape):20s} {spec}")
    opt_bytes, _ = per_device_bytes(nnx.state(optimizer, nnx.OptState))
    grad_bytes, _ = per_device_bytes(trainable)
    print(f"memory per device: params {param_bytes / 2**30:.2f} GiB + optimizer {opt_bytes / 2**30:.2f} GiB "
          f"+ gradients {grad_bytes / 2**30:.2f} GiB (fp32) = "
          f"{(param_bytes + opt_bytes + grad_bytes) / 2**30:.2f} GiB; activations: see the compiled step below")
    if compile_step:
        from molmo2_jax.step_report import compiled_step_report, format_report

        print(format_report(compiled_step_report(config, model_cfg=model_cfg)))
    try:
        batch = next(iter(data_fn()))
        print("batch:", {k: (tuple(v.shape), str(v.dtype)) for k, v in batch.items()})
    except (ValueError, FileNotFoundError) as e:
        print(f"batch: not built ({e})")


class MetricsWriter:
    """metrics.jsonl (one object per logged step) + TensorBoard event files + a console line.

    A resumed run first drops the rows past the restored step (`start_step`), so each step has one row.
    """

    def __init__(self, workdir: str, start_step: int = 0):
        self.path = os.path.join(workdir, "metrics.jsonl")
        if jax.process_index() == 0 and os.path.exists(self.path):
            truncate_metrics(self.path, start_step)
        try:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(os.path.join(workdir, "tb"))
        except ImportError:
            self.tb = None

    def write(self, step: int, metrics: dict) -> None:
        if jax.process_index() != 0:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
        print(f"step {step}: {shown}", flush=True)


def truncate_metrics(path: str, last_step: int) -> int:
    """Keep the rows of metrics.jsonl up to `last_step` (and drop a torn last line); returns rows dropped."""
    kept, dropped = [], 0
    with open(path) as f:
        for line in f:
            try:
                keep = int(json.loads(line)["step"]) <= last_step and line.endswith("\n")
            except (ValueError, KeyError, TypeError):
                keep = False
            if keep:
                kept.append(line)
            else:
                dropped += 1
    if dropped:
        with open(path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(path + ".tmp", path)
    return dropped


class UsageError(ValueError):
    """A bad command line or config value; main prints it as one `error:` line."""


def check_run_config(config, workdir: str) -> None:
    """One-line errors for config values the loop would trip on later (with the fix)."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise UsageError(f"--workdir {workdir} is a file; pass a directory (it is created if missing)")
    for key in ("checkpoint_every", "log_every", "total_steps"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise UsageError(f"config.{key} must be an integer >= 1, got {config[key]!r}")
    if config.dtype not in DTYPES:
        raise UsageError(f"unknown config.dtype {config.dtype!r}; use one of {sorted(DTYPES)}")


def run(config, workdir: str, inspect_only: bool = False, inspect_compile: bool = True) -> dict:
    """The training loop; returns the last logged metrics."""
    from data_pipelines.packing import crop_counts

    from molmo2_jax.data import make_processor, make_train_data, model_config_for

    check_run_config(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    mesh = make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.sequence)
    processor = make_processor(config, workdir)
    model_cfg = model_config_for(config, processor)
    if inspect_only:
        inspect(config, model_cfg, mesh, lambda: make_train_data(config, processor, model_cfg), inspect_compile)
        return {}
    with jax.set_mesh(mesh):
        model = build_model(config, mesh, model_cfg)
    data = make_train_data(config, processor, model.cfg, jax.process_index(), jax.process_count())
    lora = config.get("lora") is not None and config.lora.rank > 0  # configs/finetune.py
    with jax.set_mesh(mesh):
        if lora:
            from molmo2_jax.lora import lora_from_config

            model = lora_from_config(config, model, data)
        optimizer, schedules = build_optimizer(config, model)
    ckpt = CheckpointIO(workdir, config, model_filter=nnx.LoRAParam if lora else ...)  # LoRA: adapters only
    iterator = iter(data)
    start = ckpt.restore_latest(model, optimizer, iterator)
    if start is not None:
        print(f"resumed from step {start}", flush=True)
    start = start or 0
    source_names = list(iterator.counters.names)
    step_fn = train.make_train_step(config.z_loss, config.grad_accum_steps, len(source_names),
                                    (config.get("residual_dropout", 0.0), config.get("response_residual_dropout", 0.0)),
                                    config.seed)
    # the model/optimizer graph is walked once here, not on every call (~45 ms of Python per step on the demo)
    train_step = nnx.cached_partial(step_fn, model, optimizer)
    writer = MetricsWriter(workdir, start)
    flops_per_seq = train.model_flops_per_step(model.cfg, config) / config.batch_size
    peak = train.peak_flops_per_device() * jax.device_count()  # 0 on CPU: no MFU
    last, t0, tokens, seqs, skipped_total = {}, time.time(), 0, 0, 0
    window_start = start  # the step the current logging window follows
    crop_slots, crop_real = 0, 0
    # Device-side accumulators, read only when logging: the host never waits for a step to finish.
    source_sums = jnp.zeros((2, len(source_names)), jnp.float32)
    nonfinite = jnp.zeros((), jnp.int32)
    batches = Prefetcher(iterator,
                         lambda b: {k: global_batch_array(v, mesh, k) for k, v in b.items() if k in _MODEL_KEYS})

    def check_nonfinite(step: int) -> int:
        """Skipped steps since the last check (exact, from the device counter); stops after too many in a row."""
        nonlocal nonfinite
        skipped = int(nonfinite)
        nonfinite = jnp.zeros((), jnp.int32)
        consecutive = train.nonfinite_count(optimizer)
        if skipped:
            print(f"step {step}: {skipped} step(s) with non-finite loss/gradients skipped since the last log "
                  f"({consecutive} in a row now)", flush=True)
        if consecutive >= config.max_consecutive_nonfinite:
            raise RuntimeError(f"{consecutive} consecutive non-finite steps: lower the learning rate or "
                               "check the data (see metrics.jsonl)")
        return skipped

    stop = StopSignals().install()
    try:
        for step in range(start + 1, config.total_steps + 1):
            host_batch, batch, data_state = next(batches)
            with jax.set_mesh(mesh):
                out = train_step(batch)
            tokens += int(np.sum(host_batch["segment_ids"] > 0)) * jax.process_count()
            seqs += len(host_batch["segment_ids"]) * jax.process_count()
            real, slots = crop_counts(host_batch)
            crop_real, crop_slots = crop_real + real, crop_slots + slots
            if "source_ce_sum" in out:
                source_sums = source_sums + jnp.stack([out["source_ce_sum"], out["source_weight"]])
            nonfinite = nonfinite + (~out["finite"]).astype(jnp.int32)
            if step % config.log_every == 0 or step == config.total_steps:
                skipped_total += check_nonfinite(step)
                last = {k: float(out[k]) for k in ("loss", "ce", "accuracy", "grad_norm")}
                dt = time.time() - t0
                step_time = dt / (step - window_start)  # the last window can be shorter than log_every
                last.update({f"lr_{c}": float(schedules[c](step)) for c in train.COMPONENTS},
                            tokens_per_s=tokens / dt, step_time_s=step_time,
                            eta_s=(config.total_steps - step) * step_time,  # training time left at this pace
                            skipped_steps=skipped_total, **iterator.counters.metrics())
                if crop_slots:
                    last["crop_utilisation"] = crop_real / crop_slots  # real ViT crops / crop slots
                if peak:
                    last["mfu"] = seqs * flops_per_seq / dt / peak
                sums = np.asarray(source_sums)
                last.update({f"loss/{n}": float(c / w) for n, c, w in zip(source_names, *sums) if w > 0})
                source_sums = jnp.zeros_like(source_sums)
                writer.write(step, last)
                t0, tokens, seqs, crop_slots, crop_real = time.time(), 0, 0, 0, 0
                window_start = step
            ckpt.poll()
            if step % config.checkpoint_every == 0 or step == config.total_steps or stop.requested:
                skipped_total += check_nonfinite(step)  # never save weights a run of non-finite steps produced
                ckpt.save(step, model, optimizer, ConsumedState(data_state))
            if stop.requested:
                ckpt.close()
                stop.uninstall()
                print(f"{stop.requested}: saved step {step} (model, optimizer, data iterator) under "
                      f"{ckpt.root}; rerun the same command to resume", flush=True)
                return last
            evaluate_now = config.eval_every and step % config.eval_every == 0
            final_demo_eval = step == config.total_steps and config.data.mixture == "synthetic"
            if (evaluate_now or final_demo_eval) and config.data.get("eval_examples", 0) and jax.process_count() == 1:
                from molmo2_jax.evaluate import evaluate_during_training

                scores = evaluate_during_training(config, model, processor, workdir, step)
                writer.write(step, scores)
                last.update(scores)
    finally:
        batches.close()
    ckpt.close()
    stop.uninstall()
    export_for_inference(model, processor, os.path.join(workdir, "model"))
    if config.data.mixture == "synthetic" and jax.process_index() == 0:  # scenes for the README's generate command
        from molmo2_jax.evaluate import write_example_scenes

        write_example_scenes(config, os.path.join(workdir, "examples"))
    return last


def export_for_inference(model, processor, path: str) -> None:
    """The final weights with their processor, loadable by `molmo2_jax.load` / generate / evaluate."""
    from molmo2_jax.checkpoints.orbax_io import save_params

    if hasattr(model, "lora_scale"):  # LoRA: the adapters alone, then W + A·B·alpha/rank
        from molmo2_jax.lora import merge_lora, save_adapters

        save_adapters(os.path.join(os.path.dirname(path), "adapters"), model)
        model = merge_lora(model)
    save_params(path, model)
    if jax.process_index() == 0:
        tok = os.path.join(os.path.dirname(path), "tokenizer.model")
        processor.save(path, tok if os.path.exists(tok) else None)


def global_batch_array(local: np.ndarray, mesh, name: str = "") -> jax.Array:
    """This process's rows of the batch -> the global array sharded over (data x fsdp[, sequence])."""
    sharding = field_sharding(mesh, name, local.ndim)
    if jax.process_count() == 1:
        return jax.device_put(local, sharding)
    return jax.make_array_from_process_local_data(sharding, local)


HUGEPAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def hugepages_restart_env(config, environ=os.environ, platform: str = sys.platform) -> dict | None:
    """The environment to restart this process with for `cpu_hugepages` (None: no restart needed or possible).

    glibc reads GLIBC_TUNABLES only at process start, so `python -m molmo2_jax.main` re-executes itself once with
    the tunable added; the variable being set already ends it (also when the user set it, or glibc ignores it).
    """
    if not config.get("cpu_hugepages", False) or not platform.startswith("linux") or "GLIBC_TUNABLES" in environ:
        return None
    if not os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled"):
        return None
    return dict(environ, GLIBC_TUNABLES=HUGEPAGES_TUNABLE)


def configure_host(config, environ=os.environ) -> int:
    """Process-wide JAX settings a config asks for, before any backend starts; returns the CPU devices set (0: none).

    `cpu_devices` gives way to an explicit device count (XLA_FLAGS' --xla_force_host_platform_device_count, as
    `launch.sh --cpu N` sets) and to multi-process runs, whose launcher decides each process's devices.
    """
    n = int(config.get("cpu_devices", 0))
    explicit = "xla_force_host_platform_device_count" in environ.get("XLA_FLAGS", "")
    if not n or explicit or multi_process_launch(environ):
        return 0
    jax.config.update("jax_num_cpu_devices", n)
    print(f"host: {n} JAX CPU devices, GLIBC_TUNABLES={environ.get('GLIBC_TUNABLES', 'unset')}", flush=True)
    return n


def multi_process_launch(environ=os.environ) -> bool:
    """Whether this process is one of several: explicit JAX_* variables, or SLURM with several tasks."""
    slurm_tasks = int(environ.get("SLURM_NTASKS", "1")) if "SLURM_JOB_ID" in environ else 1
    return "JAX_COORDINATOR_ADDRESS" in environ or slurm_tasks > 1


def init_distributed() -> None:
    """Join a multi-process run (`multi_process_launch`)."""
    env = os.environ
    if not multi_process_launch(env):
        return
    if "JAX_COORDINATOR_ADDRESS" in env:
        if env.get("JAX_PLATFORMS", "") == "cpu":
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                                   num_processes=int(env["JAX_NUM_PROCESSES"]), process_id=int(env["JAX_PROCESS_ID"]))
    else:
        jax.distributed.initialize()


_MODEL_KEYS = ("input_ids", "source_ids", "target_ids", "loss_weights", "branch_ids", "mm_token_type_ids",
               "segment_ids", "positions", "crops", "crop_pooling", "crop_segment_ids")


def main(argv):
    del argv
    config = _CONFIG.value
    if config is None:
        print("error: --config is required, e.g. --config configs/demo.py", file=sys.stderr)
        return 2
    env = hugepages_restart_env(config) if _ENTRY_POINT else None
    if env is not None:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)  # same command, interpreter options
    configure_host(config)
    init_distributed()
    name = os.path.splitext(os.path.basename(config_flags.get_config_filename(flags.FLAGS["config"])))[0]
    workdir = _WORKDIR.value or os.path.join("runs", name)
    try:
        run(config, workdir, _INSPECT.value, _INSPECT_COMPILE.value)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)  # a failed async save leaves Orbax tasks that would log tracebacks below the error at exit
    return 0


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with a bad `--config.<key>` override as one `error:` line (did-you-mean included)."""
    import re

    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        message = str(e)
    except (AttributeError, KeyError, TypeError, ValueError) as e:  # ml_collections override errors
        message = str(e.args[0] if e.args else e)
    typo = re.search(r'Did you mean "([\w.]+)" instead of "([\w.]+)"', message)
    if typo:
        good, bad = typo.groups()
        given = next((a.split("=")[0] for a in argv if a.startswith("--config.") and f".{bad}" in a), bad)
        message = f'unknown config key {given}; did you mean "{good}"?'
    else:
        message = " ".join(message.replace("\\n", " ").split())
    print(f"error: {message} (the keys are in configs/common.py and the stage config)", file=sys.stderr)
    sys.exit(2)


_ENTRY_POINT = False  # True under `python -m molmo2_jax.main`: only then may main() restart the process

if __name__ == "__main__":
    sys.modules.setdefault("molmo2_jax.main", sys.modules[__name__])  # `import molmo2_jax.main` must not redefine flags
    _ENTRY_POINT = True
    app.run(main, flags_parser=parse_flags)
