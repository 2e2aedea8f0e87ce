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

