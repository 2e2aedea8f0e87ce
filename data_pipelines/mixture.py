"""Molmo2 stage mixtures: group rates x within-group sqrt(size) x per-set rate, mixed with Grain.

`mixture_weights` implements Molmo2's `DataLoaderConfig._build_mixture`: inside a group a dataset
gets `size_term(len, root_size_factor) * sampling_rate`, normalised within the group, times the
group rate; the result is normalised over all datasets. `stage_weights` applies it to the
registry; `mix` turns a {name: weight} dict (configs pass these as data) into one Grain dataset.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping, Sequence

import grain
import numpy as np

from data_pipelines import registry
from data_pipelines.registry import MixtureEntry


def size_term(size: int, root_size_factor: float | None) -> float:
    """Molmo2 size term: None -> sqrt(len); 0 -> 1; < 1 -> sqrt(len * f); >= 1 -> sqrt(f)."""
    if root_size_factor is None:
        return math.sqrt(size)
    if root_size_factor == 0:
        return 1.0
    if root_size_factor < 1:
        return math.sqrt(size * root_size_factor)
    return math.sqrt(root_size_factor)


# Molmo2 reads these with `counting="both"`: each example is used once as pointing and once as counting,
# so `len()` (and the sqrt(size) term) doubles (allenai/molmo2 olmo/data/get_dataset.py, pixmo_datasets.py).
# Our readers emit both modes, so prepared sizes are already Molmo2's len(); registry sizes (rows) are not.
BOTH_COUNTING_MODES = frozenset({"pixmo_points_train", "pixmo_points_high_freq_train", "pixmo_count_train"})


def molmo2_len(name: str, rows: int) -> int:
    """Molmo2's `len()` of a dataset of `rows` upstream rows: doubled for the `counting="both"` PixMo sets."""
    return 2 * rows if name in BOTH_COUNTING_MODES else rows


def mixture_weights(entries: Sequence[MixtureEntry], group_rates: Mapping[str, float],
                    sizes: Mapping[str, int]) -> dict[str, float]:
    """{dataset: share} summing to 1; entries without a size (not available) are left out.

    `sizes` are Molmo2 `len()`s: prepared example counts, or `molmo2_len` of registry row counts.
    """
    groups: dict[str, dict[str, float]] = {}
    for e in entries:
        if e.group not in group_rates:
            raise ValueError(f"dataset {e.dataset!r} is in group {e.group!r}, which has no rate; "
                             f"rates given for {sorted(group_rates)}")
        if e.dataset not in sizes:
            continue
        if sizes[e.dataset] <= 0:
            raise ValueError(f"dataset {e.dataset!r} has size {sizes[e.dataset]}; drop it from "
                             "`sizes` or prepare it")
        groups.setdefault(e.group, {})[e.dataset] = (
            size_term(sizes[e.dataset], e.root_size_factor) * e.sampling_rate)
    weights: dict[str, float] = {}
    for group, terms in groups.items():
        total = sum(terms.values())
        for name, term in terms.items():
            weights[name] = group_rates[group] * term / total
    if not weights:
        raise ValueError("no dataset of the mixture is available: prepare at least one")
    norm = sum(weights.values())
    return {name: w / norm for name, w in weights.items()}


def _registry_sizes(stage: int) -> dict[str, int]:
    return {s.name: molmo2_len(s.name, s.size) for s in registry.stage_datasets(stage) if s.size is not None}


def stage_weights(stage: int, sizes: Mapping[str, int] | None = None,
                  group_rates: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per-dataset shares of a Molmo2 stage; `sizes` (of prepared data) override registry sizes.

    Datasets with no known size are left out (their group's rate is shared by the rest of the
    group; a group with none left is dropped and the others renormalised).
    """
    known = _registry_sizes(stage)
    known.update(sizes or {})
    rates = group_rates if group_rates is not None else registry.STAGE_GROUP_RATES[stage]
    return mixture_weights(registry.STAGE_MIXTURES[stage], rates, known)


def _stage_of(mixture_name: str) -> int:
    digits = "".join(c for c in str(mixture_name) if c.isdigit())
    if not digits or int(digits) not in registry.STAGE_MIXTURES:
        raise ValueError(f"data.mixture={mixture_name!r}: expected stage1/stage2/stage3 or "
                         "synthetic")
    return int(digits)


def config_entries(stage: int, weights: Mapping[str, float] | None
                   ) -> tuple[list[MixtureEntry], dict[str, float]]:
    """A config's `data.weights` over a stage -> (entries regrouped by key, {key: rate}).

    Each key is a dataset name, a group of the stage (aliases: image_qa, video_qa, text), or a
    name prefix; empty `weights` = the registry's groups and rates.
    """
    stage_entries = registry.STAGE_MIXTURES[stage]
    if not weights:
        return list(stage_entries), dict(registry.STAGE_GROUP_RATES[stage])
    by_name = {e.dataset: e for e in stage_entries}
    entries: list[MixtureEntry] = []
    taken: set[str] = set()
    for key in weights:
        group = registry.GROUP_ALIASES.get(key, key)
        if key in by_name:
            members = [by_name[key]]
        elif any(e.group == group for e in stage_entries):
            members = [e for e in stage_entries if e.group == group]
        else:
            members = [e for e in stage_entries if e.dataset.startswith(key)]
        if not members:
            raise ValueError(f"data.weights key {key!r} matches no dataset or group of stage "
                             f"{stage}; groups: {sorted(registry.STAGE_GROUP_RATES[stage])}")
        for e in members:
            if e.dataset not in taken:
                taken.add(e.dataset)
                entries.append(dataclasses.replace(e, group=key))
    return entries, {k: float(w) for k, w in weights.items()}


def config_weights(mixture_name: str, weights: Mapping[str, float] | None = None,
                   sizes: Mapping[str, int] | None = None, registry_sizes: bool = True) -> dict[str, float]:
    """Per-dataset shares from a config's `data.mixture` and `data.weights` (weights as data).

    `mixture_name`: "stage1" / "stage2" / "stage3" (or 1/2/3), or "synthetic" / "demo".
    Each key of `weights` is a dataset name, a group of the stage (aliases: image_qa,
    video_qa, text), or a name prefix (e.g. "pixmo_points" covers both PixMo-Points sets);
    a key's weight is shared by its datasets as sqrt(size) x per-set rate (Molmo2's rule).
    Stage datasets no key covers get 0. Empty `weights` = the registry's stage rates.
    `registry_sizes=False` uses `sizes` alone (the trainer: sizes of the prepared data).
    For synthetic mixtures keys are task names ("caption") or "synthetic_<task>".
    """
    from data_pipelines.synthetic import DEMO_WEIGHTS, TASKS
    name = str(mixture_name).lower()
    if name in ("synthetic", "demo"):
        if not weights:
            return dict(DEMO_WEIGHTS)
        out = {}
        for key, w in weights.items():
            full = key if key.startswith("synthetic_") else f"synthetic_{key}"
            if full[len("synthetic_"):] not in TASKS:
                raise ValueError(f"data.weights key {key!r} is no synthetic task; tasks: "
                                 f"{sorted(TASKS)}")
            out[full] = float(w)
        total = sum(out.values())
        return {k: w / total for k, w in out.items()}
    stage = _stage_of(name)
    entries, rates = config_entries(stage, weights)
    known = _registry_sizes(stage) if registry_sizes else {}
    known.update(sizes or {})
    return mixture_weights(entries, rates, known)


class MissingDatasets(ValueError):
    """Datasets of the configured mixture that are not prepared under data.path."""


def resolve_mixture(mixture_name: str, weights: Mapping[str, float] | None, sizes: Mapping[str, int],
                    allow_missing: bool = False) -> tuple[dict[str, float], list[str]]:
    """The trainer's mixture: shares from the prepared sizes, and the mixture datasets that are missing.

    Every dataset of the mixture whose key has a positive weight must be prepared; otherwise this raises
    `MissingDatasets` listing all of them, unless `allow_missing` (they are then dropped and returned).
    """
    entries, rates = config_entries(_stage_of(mixture_name), weights)
    missing = [e.dataset for e in entries if rates[e.group] > 0 and e.dataset not in sizes]
    if missing and not allow_missing:
        raise MissingDatasets(
            f"{len(missing)} dataset(s) of mixture {mixture_name!r} are not prepared under data.path: "
            f"{', '.join(missing)}. Prepare them (python -m data_pipelines.download / data_pipelines.writer), "
            "or train without them with --config.data.allow_missing=True")
    present = {n: s for n, s in sizes.items() if n not in missing}
    return config_weights(mixture_name, weights, sizes=present, registry_sizes=False), missing


class _Tag:
    """(position in the repeated dataset, record) -> (dataset index, record, epoch). Picklable."""

    def __init__(self, index: int, size: int):
        self.index, self.size = index, size

    def __call__(self, position: int, record):
        return self.index, record, position // self.size


def source_seed(seed: int, name: str) -> int:
    """Per-dataset shuffle seed; depends on the name so adding a dataset changes no other order."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2 ** 32


def mix(sources: Mapping[str, Sequence], weights: Mapping[str, float], seed: int = 0,
        shuffle: bool = True) -> tuple[grain.MapDataset, list[str]]:
    """Infinite Grain dataset of (dataset index, record, epoch) drawn in proportion to `weights`.

    Each source is shuffled (reshuffled every epoch) and repeated; Grain's deterministic
    proportional interleave (`MapDataset.mix`) selects the source for each position, so the
    realised shares match the weights to within 1/100 of the smallest weight. `epoch` counts the
    passes over the record's own dataset (the encoder redraws its randomness from it). Returns the
    dataset and the dataset names in index order. Datasets with weight 0 are left out.
    """
    names = [n for n, w in weights.items() if w > 0]
    missing = [n for n in names if n not in sources]
    if missing:
        raise ValueError(f"mixture weights name datasets with no source: {missing}; prepare them "
                         "(python -m data_pipelines.writer ...) or set their weight to 0")
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"negative mixture weight in {dict(weights)}")
    parts = []
    for i, name in enumerate(names):
        if len(sources[name]) == 0:
            raise ValueError(f"dataset {name!r} is empty; remove it from the mixture")
        ds = grain.MapDataset.source(sources[name])
        if shuffle:
            ds = ds.shuffle(seed=source_seed(seed, name))
        parts.append(ds.repeat().map_with_index(_Tag(i, len(sources[name]))))
    return grain.MapDataset.mix(parts, [weights[n] for n in names]), names


def realised_shares(weights: Mapping[str, float], num_samples: int, seed: int = 0
                    ) -> dict[str, float]:
    """Fraction of each dataset among the first `num_samples` draws of `mix(..., weights)`."""
    names = [n for n, w in weights.items() if w > 0]
    ds, _ = mix({n: [n] for n in names}, weights, seed=seed, shuffle=False)
    counts = np.bincount([i for i, _, _ in ds[:num_samples]], minlength=len(names))
    return {n: float(c / num_samples) for n, c in zip(names, counts)}
