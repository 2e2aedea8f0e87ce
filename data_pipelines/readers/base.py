"""Shared reader plumbing: rows from parquet/JSONL, per-row skip accounting, PixMo image paths."""

from __future__ import annotations

import collections
import fnmatch
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from PIL import Image

from data_pipelines.schema import BadSample, Example, ImageRef

log = logging.getLogger(__name__)

Row = Mapping[str, Any]
ROW_FILES = (".parquet", ".jsonl", ".json")


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
            yield from json.load(f)
    else:
        raise ValueError(f"cannot read rows from {path}: expected {ROW_FILES}")


def find_files(root: str, patterns: Iterable[str] = ()) -> list[str]:
    """Row files under `root` (sorted), optionally only those matching glob `patterns`."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} not found: download it with "
                                "`python -m data_pipelines.download --out <raw>` first")
    patterns = tuple(patterns)
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), root)
            if n.endswith(ROW_FILES) and (not patterns or any(fnmatch.fnmatch(rel, p)
                                                              for p in patterns)):
                out.append(os.path.join(root, rel))
    return sorted(out)


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
        except (KeyError, TypeError, ValueError, IndexError) as e:
            skipped["malformed_record"] = skipped.get("malformed_record", 0) + 1
            log.debug("malformed row (%r): %s", e, {k: str(v)[:80] for k, v in row.items()})
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


def clip01(v: float) -> float:
    """Molmo2 clips slightly out-of-range PixMo points (`clip_points=True`)."""
    return min(max(float(v), 0.0), 1.0)
