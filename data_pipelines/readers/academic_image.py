"""Academic image (and multi-image) QA readers: the Molmo2 `IMAGE_ACADEMIC_DATASETS` -> Examples.

One parametrised reader, `read_image_qa`, covers every schema family of
`m2:olmo/data/academic_image_datasets.py` / `academic_multi_image_datasets.py`; the registry's
reader_kwargs say where a source keeps its image(s) and QA parts (qa.QaSpec). Families:

- message list per image (`Ai2HfDataset`: VQA2, TextVQA, TallyQA; A-OKVQA; OK-VQA `qas`);
- one QA per row (ChartQA, ScienceQA, DocVQA / InfographicVQA / ST-VQA JSON, TabMWP);
- parallel QA lists per image (CoSyn-400K / SynMultiImageQA `qa_pairs`, Mantis-Instruct);
- one question per row grouped per image (DVQA, FigureQA, PlotQA raw annotation files).

AI2D keeps its own reader (`read_ai2d`): its per-image question files and letter-box options.
Image paths keep the upstream layout under the media root (`DATA_HOME` in Molmo2).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np

from data_pipelines.readers.base import Row, convert_rows, group_rows, keep_good
from data_pipelines.readers.qa import (QA_KEYS, QaSpec, field, matches, mc_turn, qa_conversations,
                                      qa_items)
from data_pipelines.schema import BadSample, Conversation, Example, ImageRef, Message, Task


def local_image(media_root: str | None, rel: str) -> ImageRef:
    """ImageRef of a file under the media root; BadSample('missing_media') if it is absent."""
    if media_root is not None and not os.path.exists(os.path.join(media_root, rel)):
        raise BadSample("missing_media", f"image {rel} not under {media_root} (see the "
                                         "dataset's manual steps in `download --list`)")
    return ImageRef(path=rel)


def image_ref(value: Any, media_root: str | None, image_dir: str = "") -> ImageRef:
    """An HF Image cell ({bytes, path}), raw bytes, or a path relative to `image_dir`."""
    if isinstance(value, Mapping) and value.get("bytes"):
        return ImageRef(data=value["bytes"])
    if isinstance(value, (bytes, bytearray)):
        return ImageRef(data=bytes(value))
    if isinstance(value, Mapping):
        value = value.get("path")
    if not value:
        raise BadSample("missing_media", "row has no image")
    return local_image(media_root, os.path.join(image_dir, str(value)))


def holdout_split(rows: Iterable[Row], key: str, n: int, seed: int) -> list[Row]:
    """Rows left for training after Molmo2's custom validation split (ST-VQA: sort by id,
    `RandomState(seed).shuffle`, the first `n` are validation)."""
    rows = sorted(rows, key=lambda r: r[key])
    np.random.RandomState(seed).shuffle(rows)
    return rows[n:]


def read_image_qa(rows: Iterable[Row], *, media_root: str | None, source: str,
                  skipped: MutableMapping[str, int], image: str | None = "image",
                  images: str | None = None, image_template: str | None = None,
                  image_dir: str = "", qa_list: str | list[str] | None = None,
                  group_by: str | None = None, flatten: bool = False,
                  where: Mapping[str, Any] | None = None, require: str | None = None,
                  min_images: int = 1, max_images: int | None = None,
                  weight_field: str | None = None, weights: Mapping[str, float] | None = None,
                  holdout: Mapping[str, Any] | None = None, id_field: str | None = None,
                  table: Mapping[str, Any] | None = None, **qa: Any) -> Iterator[Example]:
    """Image QA rows -> one Example per image (its QAs as a message tree).

    image / images: column of one image / a list (HF Image cells or paths under image_dir);
    image_template: a path built from the row instead (`{_key}.png`); qa_list: column of QA
    dicts, a dict of parallel lists, or a list of parallel-list columns; group_by: merge rows
    of one image; flatten: one Example per QA (OK-VQA); where: {column: value} filter; require:
    a column that must be set (ScienceQA image-only); weight_field + weights: per-example weight
    in meta["example_weight"] (ChartQA human/augmented balance); holdout: {key, n, seed};
    table: how `tables.iter_table` parses the source files (not used by the reader itself).
    The remaining kwargs are a qa.QaSpec (question/answer/options/... paths, mode, style).
    """
    bad = set(qa) - QA_KEYS
    if bad:
        raise TypeError(f"read_image_qa: unknown kwargs {sorted(bad)}")
    spec = QaSpec.of(qa)

    def items(row: Row) -> list[Mapping[str, Any]]:
        if "_qa" in row:  # flattened: one QA per Example
            return [row["_qa"]]
        return qa_items(row, qa_list)

    def media(row: Row) -> list[ImageRef]:
        if image_template is not None:
            return [local_image(media_root, os.path.join(image_dir, image_template.format(**row)))]
        cells = list(field(row, images)) if images else [field(row, image)]
        if not min_images <= len(cells) <= (max_images or len(cells)):
            return []
        return [image_ref(c, media_root, image_dir) for c in cells]

    def keep(row: Row) -> bool:
        return matches(row, where) and (require is None or bool(row.get(require)))

    def convert(group: list[Row]) -> Example | None:
        group = [r for r in group if keep(r)]
        if not group:
            return None
        refs = media(group[0])
        if not refs:
            return None
        convs = [c for r in group
                 for cs in keep_good(items(r), lambda it: qa_conversations(it, spec), skipped)
                 for c in cs]
        if not convs:
            raise BadSample("bad_annotation", f"{source}: no usable question for this image")
        first = group[0]
        ex_id = str(field(first, id_field) if id_field else refs[0].path or first.get("id")
                    or first.get("example_id") or "")
        if "_qa" in first or not ex_id:   # one id per question / per embedded-image row
            ex_id += f":{zlib.crc32(convs[0].messages[0].content.encode()):08x}"
        meta = {}
        if weight_field is not None:
            meta["example_weight"] = float((weights or {})[str(first[weight_field])])
        task = Task.MULTI_IMAGE if len(refs) > 1 or images else Task.VQA
        return Example(ex_id, source, task, convs, images=refs, meta=meta)

    if holdout is not None:
        rows = holdout_split(rows, holdout["key"], int(holdout["n"]), int(holdout["seed"]))
    groups: Iterable[list[Row]] = group_rows(rows, group_by) if group_by else ([r] for r in rows)
    if flatten:
        groups = ([{**r, "_qa": it}] for g in groups for r in g for it in items(r))
    return convert_rows(groups, convert, skipped)


def read_ai2d(rows: Iterable[Row], *, media_root: str | None, source: str,
              skipped: MutableMapping[str, int], image_dir: str = "ai2d/images",
              boxes: str = "both") -> Iterator[Example]:
    """AI2D question files (`ai2d/questions/<image>.json`: imageName, questions {text:
    {answerTexts, correctAnswer, abcLabel, questionId}}), Molmo2 `AI2D(boxes=...)`.

    Questions over lettered boxes whose options are (almost) all letters are asked without
    option labels (style ai2_diagram_no_letter, options upper-cased), the rest as labelled
    multiple choice (style ai2_diagram). `boxes` filters on `has_transparent_box` when the
    file carries it (the builder derives it from the annotations); "both" keeps all.
    """
    def branch(item: tuple[str, Mapping[str, Any]]) -> Conversation:
        question, q = item
        options = [str(o) for o in q["answerTexts"]]
        abc = q.get("abcLabel", False)
        is_abc = [len(o.strip()) == 1 and o.strip().isalpha() for o in options]
        if abc and sum(is_abc) >= len(options) - 1:
            options = [o.upper() if a else o for o, a in zip(options, is_abc)]
            prompt, answer = mc_turn(question, options, q["correctAnswer"], labelled=False)
            style = "ai2_diagram_no_letter"
        else:
            prompt, answer = mc_turn(question, options, q["correctAnswer"])
            style = "ai2_diagram"
        return Conversation([Message("user", prompt), Message("assistant", answer)], style)

    def convert(row: Row) -> Example | None:
        qs = [(t, q) for t, q in row["questions"].items()
              if boxes == "both" or not q.get("abcLabel")
              or q.get("has_transparent_box", True) == (boxes == "transparent")]
        convs = keep_good(qs, branch, skipped)
        if not convs:
            return None
        ref = local_image(media_root, os.path.join(image_dir, row["imageName"]))
        return Example(str(row["imageName"]), source, Task.VQA, convs, images=[ref])
    return convert_rows(rows, convert, skipped)
