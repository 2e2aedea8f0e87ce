"""Training checkpoints: one Orbax step directory holds model + optimizer, each process's Grain iterator
state and the run config, so one step directory is one complete, resumable checkpoint.

    checkpoints/<step>/state/    model + optimizer arrays (Orbax PyTree, async, any mesh)
    checkpoints/<step>/data/     process_<i>-of-<n>.json: Grain iterator state (grain's CheckpointHandler)
    checkpoints/<step>/config/   the run config (JSON) that produced the step

Restore verifies the newest step (every item present, array shapes equal to the model's) and falls
back to the newest good step, moving bad ones to `bad_checkpoints/` and saying which and why.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading

import grain
import jax
import orbax.checkpoint as ocp
from flax import nnx

log = logging.getLogger(__name__)
ITEMS = ("state", "data", "config")


class CheckpointError(Exception):
    """A checkpoint that cannot be used (or written); the message is one line naming the step and the fix."""


def _flat_shapes(tree) -> dict[str, tuple]:
    """{'model.a.b': shape} for the array leaves of a nested dict (or Orbax metadata tree)."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if hasattr(leaf, "shape"):
            out[".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)] = tuple(leaf.shape)
    return out


def shape_mismatches(saved: dict[str, tuple], wanted: dict[str, tuple]) -> list[str]:
    """Human-readable differences between a checkpoint's array shapes and the model's."""
    diffs = [f"{k} {saved[k]} in the checkpoint vs {wanted[k]} in the model"
             for k in wanted if k in saved and saved[k] != wanted[k]]
    diffs += [f"{k} missing from the checkpoint" for k in wanted if k not in saved]
    diffs += [f"{k} in the checkpoint but not in the model" for k in saved if k not in wanted]
    return diffs


def _flat_config(d: dict, prefix: str = "") -> dict:
    """{'data.max_crops': 14, ...} of a nested config dict."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class CheckpointIO:
    """Orbax manager (async, keep-N + keep-every-K) for model + optimizer + data iterator + config."""

    def __init__(self, workdir: str, config, model_filter=...):
        self.model_filter = model_filter  # the model state saved/restored (LoRA: nnx.LoRAParam, the adapters)
        self.workdir = os.path.abspath(workdir)
        self.root = os.path.join(self.workdir, "checkpoints")
        self.config_json = config.to_json()
        self._pending: int | None = None
        self.manager = self._open(config)

    def _open(self, config) -> ocp.CheckpointManager:
        opts = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints,
                                            keep_period=config.keep_every or None, enable_async_checkpointing=True,
                                            create=True)
        return ocp.CheckpointManager(self.root, options=opts, item_names=ITEMS)

    # -- saving --------------------------------------------------------------------------------

    def save(self, step: int, model, optimizer, iterator: grain.DatasetIterator) -> None:
        """Start an async save of `step`; the iterator state is taken now (a synchronous item)."""
        self.poll(wait=self._pending is not None)
        state = {"model": nnx.to_pure_dict(nnx.state(model, self.model_filter)),
                 "optimizer": nnx.to_pure_dict(nnx.state(optimizer))}
        try:
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(iterator),
                config=ocp.args.JsonSave(json.loads(self.config_json))), force=True)
        except Exception as e:
            raise CheckpointError(self._save_failed(step, e)) from e
        self._pending = step

    def poll(self, wait: bool = False) -> None:
        """Raise CheckpointError as soon as a finished background save failed (cheap; call every step)."""
        if self._pending is None or (not wait and self.manager.is_saving_in_progress()):
            return
        step, self._pending = self._pending, None
        try:
            self.manager.wait_until_finished()
            self.manager.check_for_errors()
        except Exception as e:
            raise CheckpointError(self._save_failed(step, e)) from e

    def _save_failed(self, step: int, e: BaseException) -> str:
        good = self.manager.latest_step()
        errno = getattr(e, "errno", None) or getattr(e.__cause__, "errno", None)
        hint = "disk full or file too large" if errno in (27, 28) or "No space" in str(e) else "write failed"
        kept = f"the last complete checkpoint is step {good}" if good is not None else "no checkpoint was written"
        return (f"saving the checkpoint of step {step} under {self.root} failed ({hint}: "
                f"{str(e).splitlines()[0][:300] if str(e) else type(e).__name__}); {kept}; free space and rerun "
                "the same command to resume")

    def close(self) -> None:
        self.poll(wait=True)
        self.manager.close()

    # -- restoring -----------------------------------------------------------------------------

    def _step_problem(self, step: int, wanted: dict[str, tuple]) -> str | None:
        """Why `step` cannot be restored (a missing item or file), or None when it looks complete."""
        d = os.path.join(self.root, str(step))
        data_file = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        for rel in ("_CHECKPOINT_METADATA", "state/_METADATA", "state/manifest.ocdbt", f"data/{data_file}",
                    "config/metadata"):
            if not os.path.exists(os.path.join(d, rel)):
                return f"{rel} is missing"
        try:
            meta = ocp.StandardCheckpointer().metadata(os.path.join(d, "state"))
            saved = _flat_shapes(getattr(meta, "item_metadata", meta).tree)
        except Exception as e:
            return f"its array metadata is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        diffs = shape_mismatches(saved, wanted)
        if diffs:
            raise CheckpointError(self._shape_message(step, diffs))
        return None

    def _shape_message(self, step: int, diffs: list[str]) -> str:
        try:
            with open(os.path.join(self.root, str(step), "config", "metadata")) as f:
                saved = _flat_config(json.load(f))
            now = _flat_config(json.loads(self.config_json))
            changed = [f"{k}={saved.get(k)!r} there vs {now.get(k)!r} now" for k in sorted(set(saved) | set(now))
                       if saved.get(k) != now.get(k) and not k.startswith(("total_steps", "checkpoint_every"))]
            made_by = "; it was written with " + (", ".join(changed[:6]) if changed else "this same config")
        except (OSError, ValueError, TypeError):
            made_by = "; its config/metadata is unreadable"
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        return (f"checkpoint step {step} under {self.root} does not fit this model: {shown}{made_by}. Rerun with "
                "the config that wrote it, or use a new --workdir")

    def _quarantine(self, step: int, why: str) -> None:
        """Move a bad step out of the manager's directory so later saves of that step can happen."""
        dest = os.path.join(self.workdir, "bad_checkpoints", str(step))
        print(f"checkpoint step {step} is unusable ({why}); moved it to {dest}", file=sys.stderr, flush=True)
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.move(os.path.join(self.root, str(step)), dest)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"quarantine_{step}")
        self.manager.reload()

    def restore_latest(self, model, optimizer, iterator: grain.DatasetIterator) -> int | None:
        """Restore the newest good step into model, optimizer and iterator; None when there is none."""
        states = {"model": nnx.state(model, self.model_filter), "optimizer": nnx.state(optimizer)}
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                              {k: nnx.to_pure_dict(v) for k, v in states.items()})
        wanted = _flat_shapes(target)
        skipped = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            why = self._step_problem(step, wanted)
            if why is None:
                try:
                    out = self.manager.restore(step, args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(target), data=grain.checkpoint.CheckpointRestore(iterator)))
                except Exception as e:  # Orbax/TensorStore raise many types for truncated or corrupt files
                    why = f"restore failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            if why is not None:
                self._quarantine(step, why)
                skipped.append(step)
                continue
            for name, obj in (("model", model), ("optimizer", optimizer)):
                nnx.replace_by_pure_dict(states[name], out["state"][name])
                nnx.update(obj, states[name])
            if skipped:
                print(f"resuming from step {step}, the newest good checkpoint (skipped steps {skipped})",
                      file=sys.stderr, flush=True)
            return step
        return None


class StopSignals:
    """SIGTERM/SIGINT set `requested` so the loop can save the current step and exit 0 (preemption).

    A second signal restores the default action and re-sends it, so a stuck run can still be stopped.
    Only installed for single-process runs in the main thread: several processes would have to agree
    on the step to save.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested: str | None = None
        self._old = {}

    def _handle(self, signum, frame):
        if self.requested is not None:
            signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
            os.kill(os.getpid(), signum)
            return
        self.requested = signal.Signals(signum).name
        print(f"received {self.requested}: saving a checkpoint after this step, then exiting", file=sys.stderr,
              flush=True)

    def install(self) -> StopSignals:
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def uninstall(self) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
