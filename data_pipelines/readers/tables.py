"""Rows from the annotation files academic sets publish outside the HF hub (new generic helper).

`base.iter_rows` reads parquet, JSONL and JSON lists. Original-site annotations also come as
CSV/TSV (How2QA, IntentQA, TGIF, Kinetics, Moments in Time, EPIC-Kitchens), plain text lines
(Charades-STA `vid start end##sentence`), and JSON objects keyed by id or holding the list under
a key (ActivityNet/COIN/YouCook2 `database`, FigureQA/PlotQA `qa_pairs`, TabMWP problems,
CLEVRER, AI2D per-image question files). `iter_table` turns all of them into dict rows.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from typing import Any

from data_pipelines.readers.base import is_hidden, iter_rows

TABLE_FILES = (".csv", ".tsv", ".txt")
KEY = "_key"   # the id a row had in a JSON object keyed by id
FILE = "_file"  # the file a row came from (AI2D: one question file per image)


def iter_table(path: str, record_path: str | None = None, header: bool = True,
               delimiter: str | None = None) -> Iterator[dict[str, Any]]:
    """Dict rows of `path`.

    .arrow: a `save_to_disk` dataset shard; .csv/.tsv: one row per line (header row unless
    header=False: columns "0", "1", ...;
    TGIF's `.csv` files are tab-separated: delimiter); .txt: {"line": text}; .json: a list, or
    the list/object under `record_path` (dotted; ignored for a file that is a list, so one
    setting serves ActivityNet's database and QA files), an object of objects / lists / scalars
    becoming one row per entry with its key in `_key` (a list or scalar in `value`), a mixed
    object one row (AI2D question files); anything else: `base.iter_rows`.
    """
    if path.endswith(".arrow"):  # `datasets.Dataset.save_to_disk` shards (Arrow IPC stream)
        import pyarrow as pa
        with pa.memory_map(path) as src:
            for batch in pa.ipc.open_stream(src):
                yield from batch.to_pylist()
    elif path.endswith((".csv", ".tsv")):
        with open(path, newline="") as f:
            delim = delimiter or ("\t" if path.endswith(".tsv") else ",")
            if header:
                yield from csv.DictReader(f, delimiter=delim)
            else:
                for cells in csv.reader(f, delimiter=delim):
                    yield {str(i): c for i, c in enumerate(cells)}
    elif path.endswith(".txt"):
        with open(path) as f:
            yield from ({"line": ln.rstrip("\n")} for ln in f if ln.strip())
    elif path.endswith(".json"):
        with open(path) as f:
            data = json.load(f)
        for part in (record_path.split(".") if record_path and isinstance(data, dict) else ()):
            data = data[part]
        if isinstance(data, dict):
            keyed = any(all(isinstance(v, t) for v in data.values())
                        for t in (dict, list, (str, int, float)))
            if record_path is None and not keyed:
                yield {**data, FILE: os.path.basename(path)}   # one record per file
                return
            for k, v in data.items():
                yield {**v, KEY: k} if isinstance(v, dict) else {KEY: k, "value": v}
        else:
            yield from data
    else:
        yield from iter_rows(path)


def table_files(spec: Any, raw: str) -> list[str]:
    """Annotation files of a registry entry: its `data_files` globs under RAW/hf/<repo>, or
    under RAW itself for original-site sets (repo None); else the HF split/config files."""
    import glob

    from data_pipelines.readers import dataset_files
    if spec.repo is not None and not spec.data_files:
        return dataset_files(spec, raw)
    root = os.path.join(raw, "hf", spec.repo) if spec.repo else raw
    return sorted({f for p in spec.data_files for f in glob.glob(os.path.join(root, p), recursive=True)
                   if os.path.isfile(f) and not is_hidden(os.path.relpath(f, root))})


def dataset_rows(spec: Any, raw: str) -> Iterator[dict[str, Any]]:
    """Rows of every annotation file of `spec`, parsed as `reader_kwargs["table"]` says."""
    opts = dict(spec.reader_kwargs.get("table") or {})
    for path in table_files(spec, raw):
        yield from iter_table(path, **opts)
