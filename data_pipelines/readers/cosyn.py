"""CoSyn-Point reader (allenai/CoSyn-point: rendered images embedded, questions, answer points)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

from data_pipelines.readers.base import Row, clip01, convert_rows, xy_pairs
from data_pipelines.schema import BadSample, Conversation, Example, ImageRef, Message, Points, Task
from molmo2_jax.processing import formats


def read_cosyn_point(rows: Iterable[Row], *, media_root: str | None, source: str,
                     skipped: MutableMapping[str, int]) -> Iterator[Example]:
    """Columns id, image {bytes, path}, questions [str], answer_points [{x: [..], y: [..]}]
    (card: `sequence: sequence: {x, y}`, i.e. one struct of coordinate lists per question,
    0-100; a list of {x, y} is accepted too), names [str]: one image, one branch per question
    (Molmo2 `CoSynPoint`: `np.stack([points['x'], points['y']], -1)`, point_scale=100, style
    cosyn_point)."""
    def convert(row: Row) -> Example:
        data = (row["image"] or {}).get("bytes")
        if not data:
            raise BadSample("missing_media", f"CoSyn-point {row['id']}: no embedded image bytes")
        questions, answers = row["questions"], row["answer_points"]
        if "names" not in row:
            raise BadSample("bad_annotation", f"CoSyn-point {row['id']}: no `names` column (an "
                                              "old card revision?); Molmo2 reads names as labels")
        names = row["names"]
        if not len(questions) == len(answers) == len(names):
            raise BadSample("bad_annotation", f"CoSyn-point {row['id']}: {len(questions)} "
                                              f"questions, {len(answers)} answers, "
                                              f"{len(names)} names")
        convs, points = [], []
        for q, pts, name in zip(questions, answers, names):
            xy = [(clip01(x / 100), clip01(y / 100))
                  for x, y in xy_pairs(pts, f"CoSyn-point {row['id']}")]
            convs.append(Conversation([Message("user", q), Message(
                "assistant", formats.format_points([(1, xy)], name))], "cosyn_point"))
            points.append(Points(name, xy))
        return Example(row["id"], source, Task.POINTING, convs, images=[ImageRef(data=data)],
                       points=points)
    return convert_rows(rows, convert, skipped)


def _embedded(image: object, rid: str) -> ImageRef:
    data = image.get("bytes") if isinstance(image, dict) else None
    if not data:
        raise BadSample("missing_media", f"CoSyn {rid}: no embedded image bytes")
    return ImageRef(data=data)


def _exp_qa(qa: Row, style: str, use_exp: bool) -> list[Conversation]:
    """Molmo2's CoSyn message list: with explanations the answer is `<explanation> Answer: <a>`
    (`data_formatter`, `"explanation" in example`)."""
    exps = qa.get("explanation") if use_exp else None
    out = []
    for i, (q, a) in enumerate(zip(qa["question"], qa["answer"])):
        text = f"{exps[i]} Answer: {a}" if exps is not None else a
        out.append(Conversation([Message("user", q), Message("assistant", text)], style))
    if not out:
        raise BadSample("bad_annotation", "no question/answer pairs")
    return out


def read_cosyn_qa(rows: Iterable[Row], *, media_root: str | None, source: str,
                  skipped: MutableMapping[str, int], doc_type: str, use_exp: bool = True
                  ) -> Iterator[Example]:
    """allenai/CoSyn-400K config `doc_type` (id, image {bytes, path}, qa_pairs {question: [],
    explanation: [], answer: []}): one image, its QA pairs as a tree (Molmo2 `CoSyn`, style
    cosyn_<doc_type>[_exp])."""
    style = f"cosyn_{doc_type}" + ("_exp" if use_exp else "")

    def convert(row: Row) -> Example:
        return Example(str(row["id"]), source, Task.VQA, _exp_qa(row["qa_pairs"], style, use_exp),
                       images=[_embedded(row["image"], row["id"])])
    return convert_rows(rows, convert, skipped)


def read_cosyn_multidoc(rows: Iterable[Row], *, media_root: str | None, source: str,
                        skipped: MutableMapping[str, int], doc_type: str, use_exp: bool = True,
                        max_images: int | None = 5) -> Iterator[Example]:
    """allenai/Molmo2-SynMultiImageQA config `doc_type` (id, images [{bytes, path}], qa_pairs,
    metadata {num_images}): documents with <= max_images pages (Molmo2 `PixmoMulitDocQa`)."""
    style = f"cosyn_{doc_type}" + ("_exp" if use_exp else "")

    def convert(row: Row) -> Example | None:
        n = (row.get("metadata") or {}).get("num_images", len(row["images"]))
        if max_images is not None and n > max_images:
            return None
        return Example(str(row["id"]), source, Task.MULTI_IMAGE,
                       _exp_qa(row["qa_pairs"], style, use_exp),
                       images=[_embedded(im, row["id"]) for im in row["images"]])
    return convert_rows(rows, convert, skipped)
