"""Molmo2 multi-image pointing (allenai/molmo2-pixmo-multi-points) and hardcodes readers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

from data_pipelines.readers.academic_image import local_image
from data_pipelines.readers.base import Row, clip01, convert_rows
from data_pipelines.schema import BadSample, Conversation, Example, Message, Points, Task
from molmo2_jax.processing import formats


def _xy01(p) -> tuple[float, float]:
    """A 0-100 point given as {x, y} or [x, y] -> clipped fractions (`clip_points=True`)."""
    x, y = (p["x"], p["y"]) if isinstance(p, dict) else p
    return clip01(x / 100), clip01(y / 100)


def read_pixmo_multi_points(rows: Iterable[Row], *, media_root: str | None, source: str,
                            skipped: MutableMapping[str, int], max_images: int = 5
                            ) -> Iterator[Example]:
    """allenai/molmo2-pixmo-multi-points (images: PixMo image paths under DATA_HOME, labels,
    normalized_labels, points: per image [{x, y}] 0-100): Molmo2 `PixMoMultiPoints`, one
    branch per distinct label over all images (style multi_image_pointing), points clipped.

    Upstream draws the label, the image subset and point/count wording per epoch; here every
    label is asked once over "all images" so shards are deterministic.
    """
    def convert(row: Row) -> Example:
        paths, norm, labels = list(row["images"]), row["normalized_labels"], row["labels"]
        if not len(paths) == len(norm) == len(row["points"]):
            raise BadSample("bad_annotation", f"{len(paths)} images, {len(norm)} labels, "
                                              f"{len(row['points'])} point lists")
        if len(paths) > max_images:
            return None
        refs = [local_image(media_root, p) for p in paths]
        convs, points = [], []
        for label in dict.fromkeys(norm):
            readable = labels[norm.index(label)]
            per_image = [[_xy01(p) for p in pts] if lab == label else []
                         for lab, pts in zip(norm, row["points"])]
            answer = formats.format_points([(i + 1, xy) for i, xy in enumerate(per_image)],
                                           readable)
            convs.append(Conversation([Message("user", f"Point to all {readable} in all images."),
                                       Message("assistant", answer)], "multi_image_pointing"))
            points += [Points(readable, xy, image=i) for i, xy in enumerate(per_image) if xy]
        return Example("|".join(paths), source, Task.MULTI_IMAGE, convs, images=refs,
                       points=points)
    return convert_rows(rows, convert, skipped)


def read_hardcodes(rows: Iterable[Row], *, media_root: str | None, source: str,
                   skipped: MutableMapping[str, int]) -> Iterator[Example]:
    """allenai/molmo2-hardcodes (questions [str], response, images [path]): Molmo2
    `Molmo2HardCodes`, one example per (question, image) with style user_qa.

    Hardcodes without an image stay text-only here; upstream pairs them with a random
    image / video / multi-image / none input (.25/.25/.15/.35) at load time.
    """
    def expand(row: Row) -> Iterator[Row]:
        for q in row["questions"]:
            for image in (row.get("images") or [None]):
                yield {"question": q, "answer": row["response"], "image": image}

    def convert(item: Row) -> Example:
        conv = Conversation([Message("user", item["question"]),
                             Message("assistant", item["answer"])], "user_qa")
        images = [local_image(media_root, item["image"])] if item["image"] else []
        ex_id = f"{item['question']}|{item['image'] or ''}"
        return Example(ex_id, source, Task.VQA if images else Task.TEXT, [conv], images=images,
                       meta={"pair_with_random_media": not images})
    return convert_rows((it for r in rows for it in expand(r)), convert, skipped)



