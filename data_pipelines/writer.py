"""Canonical examples -> ArrayRecord shards (random access, exact resume via Grain).

Layout: `<root>/<dataset>/<split>-00000.array_record ...` plus `<root>/<dataset>/<split>.json`
(shard list, example count, media root, reader skip counts by reason, origin/revision and the
row files read). Records are `schema.serialize`d. Plain ArrayRecord read by Grain's
`ArrayRecordDataSource`, not TFDS builders: see docs/data.md for why.

A bad row is skipped and counted with its reason; the run exits 1 only when a dataset ends up
with no examples (or could not be read), naming it and why.

    python -m data_pipelines.writer --dataset pixmo_count_train --raw RAW --out PREPARED
    python -m data_pipelines.writer --synthetic 2000 --out PREPARED   # offline demo data
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import logging
from collections.abc import Iterable, MutableMapping

import grain
from array_record.python.array_record_module import ArrayRecordWriter

from data_pipelines import readers, registry, synthetic
from data_pipelines.readers import tables
from data_pipelines.schema import Example, serialize

log = logging.getLogger(__name__)


def write_examples(examples: Iterable[Example], root: str, name: str, split: str = "train",
                   examples_per_shard: int = 10_000, media_root: str | None = None,
                   skipped: MutableMapping[str, int] | None = None,
                   provenance: dict | None = None) -> dict:
    """Writes examples into shards of `examples_per_shard`; returns (and saves) the index."""
    out_dir = os.path.join(root, name)
    os.makedirs(out_dir, exist_ok=True)
    shards: list[dict] = []
    writer, n_in_shard = None, 0

    def close() -> None:
        if writer is not None:
            writer.close()
            shards[-1]["num_examples"] = n_in_shard

    counts = skipped if skipped is not None else {}
    for ex in examples:
        try:
            record = serialize(ex)
        except Exception as e:  # noqa: BLE001 - a bad example is counted, never fatal
            counts["unserializable"] = counts.get("unserializable", 0) + 1
            log.warning("%s: example %s not serializable (%s: %s)", name,
                        getattr(ex, "id", "?"), type(e).__name__, e)
            continue
        if writer is None or n_in_shard == examples_per_shard:
            close()
            fname = f"{split}-{len(shards):05d}.array_record"
            writer = ArrayRecordWriter(os.path.join(out_dir, fname), "group_size:1")
            shards.append({"file": fname})
            n_in_shard = 0
        writer.write(record)
        n_in_shard += 1
    close()
    index = {"dataset": name, "split": split, "shards": shards,
             "num_examples": sum(s["num_examples"] for s in shards),
             "media_root": os.path.abspath(media_root) if media_root else None,
             "skipped": dict(counts), **(provenance or {})}
    with open(os.path.join(out_dir, f"{split}.json"), "w") as f:
        json.dump(index, f, indent=1)
    return index


def load_index(root: str, name: str, split: str = "train") -> dict:
    path = os.path.join(root, name, f"{split}.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: prepare {name!r} first with "
                                f"`python -m data_pipelines.writer --dataset {name} ...`")
    with open(path) as f:
        return json.load(f)


def open_source(root: str, name: str, split: str = "train") -> grain.sources.ArrayRecordDataSource:
    """Random-access source of serialized Examples of one prepared dataset."""
    index = load_index(root, name, split)
    if not index["shards"]:
        raise ValueError(f"prepared dataset {name!r} ({split}) under {root} has no examples")
    return grain.sources.ArrayRecordDataSource(
        [os.path.join(root, name, s["file"]) for s in index["shards"]])


def prepared_datasets(root: str, split: str = "train") -> dict[str, int]:
    """{dataset: num_examples} of everything prepared under `root`."""
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "*", f"{split}.json"))):
        with open(path) as f:
            index = json.load(f)
        out[index["dataset"]] = index["num_examples"]
    return out


def prepare(name: str, raw: str, root: str, examples_per_shard: int = 10_000) -> dict:
    """Runs a registry dataset's reader over its downloaded files and writes shards."""
    spec = registry.get(name)
    if spec.reader is None:
        raise ValueError(f"dataset {name!r} has no reader yet (registry reader=None); write one "
                         "in data_pipelines/readers/ and register it in readers.READERS")
    if spec.repo is None and not spec.data_files:
        raise ValueError(f"dataset {name!r} has no HF repo or data_files to read from; see its "
                         f"notes: {spec.notes}")
    files = tables.table_files(spec, raw)
    if not files:
        where = os.path.join(raw, "hf", spec.repo) if spec.repo else raw
        how = spec.manual or f"`python -m data_pipelines.download --only {name} --out {raw}`"
        raise FileNotFoundError(f"no data files of {spec.origin} under {where}: {how}")
    counts: dict[str, int] = {}
    examples = readers.read(spec.reader, files, media_root=raw, source=name, skipped=counts,
                            exclude_urls=readers.held_out_urls(spec, raw), **spec.reader_kwargs)
    provenance = {"origin": spec.origin, "revision": spec.revision,
                  "files": [os.path.relpath(f, raw) for f in files]}
    return write_examples(examples, root, name, examples_per_shard=examples_per_shard,
                          media_root=raw, skipped=counts,  # counts are final once written
                          provenance=provenance)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="root of prepared data (config data.path)")
    p.add_argument("--dataset", action="append", default=[], help="registry name (repeatable)")
    p.add_argument("--stage", type=int, help="prepare every dataset of a stage that has a reader")
    p.add_argument("--raw", help="download root (python -m data_pipelines.download --out)")
    p.add_argument("--synthetic", type=int, metavar="N", help="write N synthetic examples/task")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    names = list(args.dataset)
    if args.stage is not None:
        names += [s.name for s in registry.stage_datasets(args.stage) if s.reader]
    if names and not args.raw:
        p.error("--raw DIR is required with --dataset/--stage")
    if not names and args.synthetic is None:
        p.error("nothing to do: pass --dataset, --stage or --synthetic")
    empty: dict[str, str] = {}
    for name, src in synthetic.synthetic_sources(args.synthetic or 0, args.seed).items():
        if args.synthetic:
            index = write_examples((src[i] for i in range(len(src))), args.out, name)
            print(f"{name}: {index['num_examples']} examples")
    for name in names:
        try:
            index = prepare(name, args.raw, args.out)
        except Exception as e:  # noqa: BLE001 - one dataset never stops the others
            empty[name] = f"not prepared: {type(e).__name__}: {e}"
            print(f"{name}: {empty[name]}", file=sys.stderr)
            continue
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(index["skipped"].items())) or "none"
        print(f"{name}: {index['num_examples']} examples; skipped: {skipped}")
        if index["num_examples"] == 0:
            empty[name] = (f"0 examples (skipped: {skipped}); a `missing_media` count means the "
                           "images/videos are not downloaded (see `download --list`)")
    if empty:
        print(f"EMPTY ({len(empty)} datasets; training would refuse them):", file=sys.stderr)
        for name, why in empty.items():
            print(f"  {name}: {why}", file=sys.stderr)
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())
