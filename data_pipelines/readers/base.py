"""Shared reader plumbing: rows from parquet/JSONL, per-row skip accounting, PixMo image paths."""

from __future__ import annotations

import collections
import fnmatch
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from PIL import Image

from data_pipelines.schema import BadSample, Example, ImageRef

log = logging.getLogger(__name__)

Row = Mapping[str, Any]
ROW_FILES = (".parquet", ".jsonl", ".json")
KNOWN_SPLITS = ("train", "validation", "val", "valid", "dev", "test", "eval", "CapQA",
                "SubtitleQA", "HumanQA")


def iter_rows(path: str, batch_size: int = 1024) -> Iterator[dict[str, Any]]:
    """Rows of a parquet (pyarrow), JSONL or JSON-list file as dicts."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()
    elif path.endswith(".jsonl"):
        with open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    elif path.endswith(".json"):
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, list):
            raise ValueError(f"{path} is not a JSON list of rows (a mapping/metadata file?); "
                             "select the data files with the registry entry's split/data_files")
        yield from data
    else:
        raise ValueError(f"cannot read rows from {path}: expected {ROW_FILES}")


def is_hidden(rel: str) -> bool:
    """True for paths under a dot directory (`.cache/huggingface/` of the hub client, `.git/`)."""
    return any(part.startswith(".") for part in rel.replace(os.sep, "/").split("/"))


def file_split(rel: str) -> str | None:
    """The split an HF data file belongs to, from the hub's naming conventions.

    `data/train-00000-of-00001.parquet`, `<config>/validation-*.parquet`, `test.jsonl`,
    `val/part-0.parquet` -> train / validation / test / val; None when the path names no split.
    """
    parts = rel.replace(os.sep, "/").split("/")
    stem = parts[-1].split(".")[0]
    name = re.split(r"[-_]\d", stem, maxsplit=1)[0]  # "train-00000-of-00001" -> "train"
    for cand in (name, re.split(r"[-_.]", stem)[0], *reversed(parts[:-1])):
        if cand and not re.search(r"\d{5}", cand) and cand in KNOWN_SPLITS:
            return cand
    return None


def _config_names(config: str) -> set[str]:
    return {config, config.replace(" ", "_"), config.replace(" ", "-"), config.replace("_", "-")}


def find_files(root: str, patterns: Iterable[str] = (), *, split: str | None = None,
               configs: Iterable[str] = ()) -> list[str]:
    """Row files under `root` (sorted) of one split and, optionally, some configs.

    Skips everything under dot directories (the hub client's `.cache/huggingface/`). With
    `patterns` (globs relative to `root`), exactly the matching row files are read. Otherwise
    `split` keeps files whose hub name gives that split (`train-00000-of-00001.parquet`,
    `<config>/train/...`); files that name no split are read only when they are the split's
    sole candidates (no file of the repo names any split), so a stray `mapping.json` beside
    `train-*.parquet` is never read. `configs` keeps files under a directory named after one
    of the configs (`comparative reference` also matches `comparative_reference`).
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} not found: download it with "
                                "`python -m data_pipelines.download --out <raw>` first")
    patterns, configs = tuple(patterns), tuple(configs)
    rels = []
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), root)
            if n.endswith(ROW_FILES) and not is_hidden(rel) and n != "dataset_infos.json":
                rels.append(rel)
    if patterns:
        rels = [r for r in rels if any(fnmatch.fnmatch(r, p) for p in patterns)]
    else:
        if configs:
            wanted = set().union(*(_config_names(c) for c in configs))
            rels = [r for r in rels if wanted & set(r.replace(os.sep, "/").split("/")[:-1])]
        if split is not None:
            named = {r: file_split(r) for r in rels}
            rels = ([r for r, s in named.items() if s == split] if any(named.values())
                    else [r for r in rels if not r.endswith(".json")])
    return sorted(os.path.join(root, r) for r in rels)


def convert_rows(rows: Iterable[Row], convert: Callable[[Row], Example | None],
                 skipped: MutableMapping[str, int]) -> Iterator[Example]:
    """Applies `convert` per row; BadSample/missing keys are counted in `skipped`, not raised.

    `convert` returns None for rows the recipe filters out (counted as `filtered`).
    """
    for row in rows:
        try:
            ex = convert(row)
        except BadSample as e:
            skipped[e.reason] = skipped.get(e.reason, 0) + 1
            log.debug("skipped row: %s", e)
            continue
        except Exception as e:  # noqa: BLE001 - one bad row never stops a dataset
            skipped["malformed_record"] = skipped.get("malformed_record", 0) + 1
            if skipped["malformed_record"] <= 3:
                log.warning("malformed row skipped (%s: %s): %s", type(e).__name__, e,
                            str(row)[:160])
            continue
        if ex is None:
            skipped["filtered"] = skipped.get("filtered", 0) + 1
        else:
            yield ex


def keep_good(rows: Iterable[Row], convert: Callable[[Row], Any],
              skipped: MutableMapping[str, int]) -> list[Any]:
    """`convert` of each row of a group; a bad row is counted and dropped, not its whole group."""
    out = []
    for row in rows:
        try:
            out.append(convert(row))
        except BadSample as e:
            skipped[e.reason] = skipped.get(e.reason, 0) + 1
        except Exception:  # noqa: BLE001 - a malformed branch drops only itself
            skipped["malformed_record"] = skipped.get("malformed_record", 0) + 1
    return out


def group_rows(rows: Iterable[Row], key: str) -> Iterator[list[Row]]:
    """Rows grouped by `key` (first-appearance order): Molmo2 encodes one image once per tree."""
    groups: dict[Any, list[Row]] = collections.OrderedDict()
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    yield from groups.values()


def pixmo_image_path(url: str) -> str:
    """Where download.py stores a PixMo image URL: `pixmo_images/<sha256(url)>` (as Molmo2)."""
    return os.path.join("pixmo_images", hashlib.sha256(url.encode("utf-8")).hexdigest())


def pixmo_image(url: str, media_root: str | None, sha256: str | None = None) -> ImageRef:
    """ImageRef of a fetched PixMo URL; BadSample('missing_media') if it was not downloaded."""
    ref = ImageRef(path=pixmo_image_path(url), url=url, sha256=sha256)
    if media_root is not None and not os.path.exists(os.path.join(media_root, ref.path)):
        raise BadSample("missing_media", f"{url} not downloaded (see the download summary)")
    return ref


def image_size(media_root: str | None, ref: ImageRef) -> tuple[int, int]:
    """(width, height) from the image header, for sources whose points are in pixels."""
    if media_root is None or ref.path is None:
        raise BadSample("missing_media", f"image {ref.url} needed for its size is not local")
    try:
        with Image.open(os.path.join(media_root, ref.path)) as im:
            return im.size
    except OSError as e:
        raise BadSample("undecodable_media", f"cannot read the size of {ref.path}: {e}")


def xy_pairs(points: Any, what: str) -> list[tuple[float, float]]:
    """(x, y) pairs from either storage of a point list: HF `Sequence({x, y})` (a struct of
    lists `{x: [...], y: [...]}`, what `datasets` returns and molmo2 indexes as points['x']) or
    `List({x, y})` (a list of `{x, y}` structs)."""
    if points is None:
        return []
    if isinstance(points, Mapping):
        xs, ys = list(points["x"] or []), list(points["y"] or [])
        if len(xs) != len(ys):
            raise BadSample("bad_annotation", f"{what}: {len(xs)} x but {len(ys)} y coordinates")
        return [(float(x), float(y)) for x, y in zip(xs, ys)]
    return [(float(p["x"]), float(p["y"])) for p in points]


def clip01(v: float) -> float:
    """Molmo2 clips slightly out-of-range PixMo points (`clip_points=True`)."""
    return min(max(float(v), 0.0), 1.0)
