"""Mesh construction and the one table that maps logical axis names to mesh axes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "sequence")

# Logical axis -> mesh axis (or tuple of axes, or None = replicated). Parameters are FSDP-sharded
# along their model dimension; batches (`batch_sharding`) along batch (data x fsdp) and length (sequence).
LOGICAL_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", "sequence"),
    ("embed", "fsdp"),
    ("vit_embed", "fsdp"),
    ("vit_feat", "fsdp"),
    ("vocab", None),
    ("mlp", None),
    ("q_heads", None),
    ("kv_heads", None),
    ("vit_mlp", None),
    ("vit_heads", None),
    ("vit_patch", None),
    ("vit_pos", None),
    ("pool_heads", None),
    ("norm", None),
)


def make_mesh(data: int = 1, fsdp: int = -1, sequence: int = 1,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, sequence) mesh; one size may be -1 to take the remaining devices."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = [data, fsdp, sequence]
    if sizes.count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got data={data} fsdp={fsdp} sequence={sequence}")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(f"{len(devices)} devices do not divide into mesh axes {sizes}")
        sizes[sizes.index(-1)] = len(devices) // known
    if int(np.prod(sizes)) != len(devices):
        raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))} needs {int(np.prod(sizes))} devices, "
                         f"have {len(devices)}; set the sizes so their product matches or use -1")
    arr = np.asarray(devices).reshape(sizes)
    return Mesh(arr, MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3)


def logical_to_spec(axes: Sequence[str | None], shape: Sequence[int] | None = None, mesh: Mesh | None = None,
                    rules: Sequence[tuple[str, Any]] = LOGICAL_RULES) -> P:
    """PartitionSpec for logical `axes`; a dimension the mesh axis does not divide stays replicated."""
    table = dict(rules)
    spec, used = [], set()
    for i, name in enumerate(axes):
        target = table.get(name) if name is not None else None
        targets = (target,) if isinstance(target, str) else tuple(target or ())
        targets = tuple(t for t in targets if t not in used)
        if mesh is not None and shape is not None:
            size = int(np.prod([mesh.shape[t] for t in targets])) if targets else 1
            if size > 1 and shape[i] % size:
                targets = ()
        used.update(targets)
        spec.append(None if not targets else targets[0] if len(targets) == 1 else targets)
    return P(*spec)


def _leaf_axes(x: Any) -> tuple[str | None, ...]:
    meta = x.get_metadata() if hasattr(x, "get_metadata") else {}
    axes = meta.get("logical_axes")
    return tuple(axes) if axes is not None else (None,) * len(x.shape)


def variable_sharding(var: Any, mesh: Mesh, rules=LOGICAL_RULES) -> NamedSharding:
    """NamedSharding of one (abstract) variable from its `logical_axes` metadata."""
    return NamedSharding(mesh, logical_to_spec(_leaf_axes(var), var.shape, mesh, rules))


def state_shardings(state: Any, mesh: Mesh, rules=LOGICAL_RULES) -> Any:
    """NamedShardings for every variable of an (abstract) nnx state."""
    return jax.tree.map(lambda x: variable_sharding(x, mesh, rules), state,
                        is_leaf=lambda x: isinstance(x, nnx.Variable))


def create_sharded(make: Callable[[], nnx.Module], mesh: Mesh, rules=LOGICAL_RULES) -> nnx.Module:
    """Build a module directly in its sharded layout (no full host copy of the weights)."""
    abstract = nnx.eval_shape(make)
    graphdef, abs_state = nnx.split(abstract)
    shardings = state_shardings(abs_state, mesh, rules)

    @jax.jit
    def init():
        return nnx.state(make())

    with jax.set_mesh(mesh):
        state = jax.jit(init, out_shardings=shardings)()
    return nnx.merge(graphdef, state)


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """Pin an activation to the layout of its logical `axes` on the current mesh (no-op without a mesh)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_spec(axes, x.shape, mesh))


def batch_axes(ndim: int, seq_axis: int | None = 1) -> tuple[str | None, ...]:
    """Logical axes of a batch array: `batch` first, `length` at `seq_axis` (if any), the rest unnamed."""
    axes: list[str | None] = ["batch"] + [None] * (ndim - 1)
    if seq_axis is not None and ndim > seq_axis:
        axes[seq_axis] = "length"
    return tuple(axes)


def batch_sharding(mesh: Mesh, ndim: int, seq_axis: int | None = 1, rules=LOGICAL_RULES) -> NamedSharding:
    """Batch arrays through the rules table: `batch` (data x fsdp), the sequence dim as `length` (sequence)."""
    return NamedSharding(mesh, logical_to_spec(batch_axes(ndim, seq_axis), rules=rules))


def field_sharding(mesh: Mesh, name: str, ndim: int) -> NamedSharding:
    """A packed-batch field's layout: token fields [B, T] also split T over `sequence`; crop-level fields
    (`crops*`, `pixel_values*`: one crop group per row) only go by `batch`, so a row's crops stay with its tokens."""
    crop_level = name.startswith(("crop", "pixel_values"))
    return batch_sharding(mesh, ndim, 1 if ndim == 2 and not crop_level else None)
