"""Read and write HF safetensors checkpoints (single file or sharded with an index), tensor by tensor."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable

import jax
import numpy as np
from safetensors import safe_open


class SafetensorsDir:
    """Lazy view of every tensor in a checkpoint directory; `get` reads one tensor into host memory."""

    def __init__(self, path: str):
        self.path = path
        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            files = sorted(set(weight_map.values()))
        else:
            files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(path, "*.safetensors")))
            weight_map = {}
        if not files:
            raise FileNotFoundError(f"no *.safetensors files in {path!r}: pass a HuggingFace checkpoint directory")
        self._key_file: dict[str, str] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        for name in files:
            full = os.path.join(path, name)
            if not os.path.exists(full):
                raise FileNotFoundError(f"{full} is listed in the index but missing: re-download the checkpoint")
            try:
                with safe_open(full, "np") as f:
                    for key in f.keys():
                        self._key_file[key] = full
                        self._shapes[key] = tuple(f.get_slice(key).get_shape())
            except Exception as e:  # SafetensorError (truncated/garbled header), OSError
                raise ValueError(f"{full} is not a readable safetensors file ({e}); it may be truncated: "
                                 "re-download the checkpoint") from None
        for key, name in weight_map.items():
            if key not in self._key_file:
                raise KeyError(f"tensor {key!r} is listed in the index for {name} but not stored there")

    def keys(self) -> list[str]:
        return list(self._key_file)

    def __contains__(self, key: str) -> bool:
        return key in self._key_file

    def shape(self, key: str) -> tuple[int, ...]:
        return self._shapes[key]

    def get(self, key: str) -> np.ndarray:
        """One weight as a host numpy array (bf16 kept as ml_dtypes.bfloat16); integer or NaN tensors raise."""
        if key not in self._key_file:
            raise KeyError(f"tensor {key!r} not found in {self.path}")
        cpu = jax.devices("cpu")[0]
        try:
            with jax.default_device(cpu), safe_open(self._key_file[key], "flax") as f:
                stored = f.get_slice(key).get_dtype()  # e.g. "F32", "BF16", "I64" (jax may narrow int64)
                arr = np.asarray(f.get_tensor(key))
        except Exception as e:  # data region shorter than the header says
            raise ValueError(f"cannot read tensor {key!r} from {self._key_file[key]} ({e}); the file may be "
                             "truncated: re-download the checkpoint") from None
        check_tensor(key, arr, self._key_file[key], stored)
        return arr


def check_tensor(name: str, arr: np.ndarray, where: str, stored: str | None = None) -> None:
    """Weights must be finite floating-point tensors: an integer or NaN/Inf one is an error naming it."""
    if not np.issubdtype(np.dtype(arr.dtype), np.floating) and str(arr.dtype) != "bfloat16":
        dtype = {"I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
                 "BOOL": "bool"}.get(stored, str(arr.dtype))
        raise ValueError(f"tensor {name!r} in {where} has dtype {dtype}, not a floating-point weight; "
                         "convert it (or drop it) before loading")
    if not np.isfinite(np.asarray(arr, np.float32)).all():
        raise ValueError(f"tensor {name!r} in {where} contains NaN or Inf values; the checkpoint is corrupt")


def save_sharded(tensors: Iterable[tuple[str, np.ndarray]], out_dir: str, max_shard_bytes: int = 4 << 30) -> None:
    """Write (name, array) pairs as safetensors shards plus `model.safetensors.index.json`."""
    from safetensors.flax import save_file  # jax arrays keep bf16

    os.makedirs(out_dir, exist_ok=True)
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, arr in tensors:
        check_tensor(name, np.asarray(arr), out_dir)
        if size and size + arr.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = arr
        size += arr.nbytes
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        with jax.default_device(jax.devices("cpu")[0]):
            save_file({k: jax.numpy.asarray(v) for k, v in shard.items()}, os.path.join(out_dir, fname),
                      metadata={"format": "pt"})
        for k, v in shard.items():
            weight_map[k] = fname
            total += v.nbytes
    if len(shards) > 1:
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
