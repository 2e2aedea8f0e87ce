"""One small reader per upstream schema -> canonical `Example`s (see data_pipelines/schema.py).

A reader is `fn(rows, *, media_root, source, skipped, **kwargs) -> Iterator[Example]`; rows it
cannot use are counted in `skipped[reason]`, never raised. `registry.DatasetSpec.reader` names it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

from data_pipelines.readers.academic_image import read_ai2d, read_image_qa
from data_pipelines.readers.academic_video import (read_academic_video_points, read_qv_highlights,
                                                   read_video_qa, read_video_segments)
from data_pipelines.readers.base import find_files, iter_rows, pixmo_image_path
from data_pipelines.readers.cosyn import read_cosyn_point
from data_pipelines.readers.molmo2_misc import read_hardcodes, read_pixmo_multi_points
from data_pipelines.readers.pixmo import (read_pixmo_cap, read_pixmo_cap_qa, read_pixmo_count,
                                          read_pixmo_multi_image_qa, read_pixmo_points,
                                          read_pixmo_qa)
from data_pipelines.readers.text import read_tulu
from data_pipelines.readers.user_jsonl import read_user_jsonl
from data_pipelines.readers.video import (read_molmo2_cap, read_molmo2_track,
                                          read_molmo2_video_capqa, read_molmo2_video_points)
from data_pipelines.schema import Example

READERS = {
    "pixmo_cap": read_pixmo_cap,
    "pixmo_points": read_pixmo_points,
    "pixmo_count": read_pixmo_count,
    "pixmo_qa": read_pixmo_qa,
    "pixmo_cap_qa": read_pixmo_cap_qa,
    "pixmo_multi_image_qa": read_pixmo_multi_image_qa,
    "cosyn_point": read_cosyn_point,
    "tulu": read_tulu,
    "molmo2_video_points": read_molmo2_video_points,
    "molmo2_track": read_molmo2_track,
    "molmo2_cap": read_molmo2_cap,
    "molmo2_video_capqa": read_molmo2_video_capqa,
    # academic image / video sets, multi-image points, hardcodes (data-b)
    "image_qa": read_image_qa,
    "ai2d": read_ai2d,
    "video_qa": read_video_qa,
    "video_segments": read_video_segments,
    "qv_highlights": read_qv_highlights,
    "academic_video_points": read_academic_video_points,
    "pixmo_multi_points": read_pixmo_multi_points,
    "hardcodes": read_hardcodes,
    # your own fine-tuning data (configs/finetune.py; schema in readers/user_jsonl.py)
    "user_jsonl": read_user_jsonl,
}

__all__ = ["READERS", "dataset_files", "find_files", "held_out_urls", "iter_rows",
           "pixmo_image_path", "read"]


def dataset_files(spec: Any, raw: str) -> list[str]:
    """The row files a registry entry reads from its downloaded HF snapshot: its `data_files`
    globs, else its split and configs (never the hub client's `.cache/`, never other splits)."""
    import os
    return find_files(os.path.join(raw, "hf", spec.repo), spec.data_files, split=spec.split,
                      configs=spec.configs)


def held_out_urls(spec: Any, raw: str) -> set[str]:
    """Image URLs of the eval sets `spec.held_out` names (their test split): never training."""
    import os
    urls: set[str] = set()
    for repo in getattr(spec, "held_out", ()):
        root = os.path.join(raw, "hf", repo)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{root} not found: the eval set {repo} held out of "
                                    f"{spec.name} must be downloaded first (`python -m "
                                    f"data_pipelines.download --only {spec.name}`)")
        for f in find_files(root, split="test"):
            urls.update(r["image_url"] for r in iter_rows(f)
                        if isinstance(r, dict) and r.get("image_url"))
    return urls


def _without(rows: Iterator[Any], urls: set[str], skipped: MutableMapping[str, int]):
    for row in rows:
        if isinstance(row, dict) and row.get("image_url") in urls:
            skipped["held_out_eval"] = skipped.get("held_out_eval", 0) + 1
            continue
        yield row


def read(reader: str, files: Sequence[str], *, media_root: str | None, source: str,
         skipped: MutableMapping[str, int], exclude_urls: set[str] | None = None,
         **kwargs: Any) -> Iterator[Example]:
    """Runs reader `reader` over the rows of `files` (parquet / JSONL / JSON); rows whose
    `image_url` is in `exclude_urls` (held-out eval images) are counted as held_out_eval."""
    if reader not in READERS:
        raise KeyError(f"unknown reader {reader!r}; readers: {sorted(READERS)}")
    from data_pipelines.readers.tables import iter_table  # csv / txt / keyed json / arrow too
    table = kwargs.get("table") or {}
    rows = itertools.chain.from_iterable(iter_table(f, **table) for f in files)
    if exclude_urls:
        rows = _without(rows, exclude_urls, skipped)
    return READERS[reader](rows, media_root=media_root, source=source, skipped=skipped, **kwargs)

# Evaluation benchmarks (data_pipelines/benchmarks.py), appended.
from data_pipelines.readers.eval_sets import EVAL_READERS  # noqa: E402

READERS.update(EVAL_READERS)
