"""PixMo readers (allenai/pixmo-*: image URLs + annotations) -> canonical Examples.

Schemas as published on the HF cards (molmo2_datasets.md section 6); behaviour follows
allenai/molmo2 `olmo/data/pixmo_datasets.py`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator, MutableMapping

from data_pipelines.readers.base import (Row, clip01, convert_rows, group_rows, image_size,
                                         keep_good, pixmo_image)
from data_pipelines.schema import (BadSample, Conversation, Example, Message, Points, Task)
from molmo2_jax.processing import formats

CAPTION_PROMPT = "Describe this image in detail."
TRANSCRIPT_PROMPT = "Describe this image as if you were telling someone about it."


def _qa(question: str, answer: str, style: str) -> Conversation:
    return Conversation([Message("user", question), Message("assistant", answer)], style)


def read_pixmo_cap(rows: Iterable[Row], *, media_root: str | None, source: str,
                   skipped: MutableMapping[str, int], transcripts: bool = False
                   ) -> Iterator[Example]:
    """allenai/pixmo-cap (image_url, caption, transcripts): long caption [+ 1 transcript].

    Molmo2's `transcript_and_caption` draws the transcript at random per epoch; here it is
    fixed per image (crc32 of the URL) so shards stay deterministic.
    """
    def convert(row: Row) -> Example:
        convs = [_qa(CAPTION_PROMPT, row["caption"], "long_caption")]
        if transcripts and row["transcripts"]:
            ts = list(row["transcripts"])
            convs.append(_qa(TRANSCRIPT_PROMPT, ts[zlib.crc32(row["image_url"].encode()) % len(ts)],
                             "transcript"))
        return Example(row["image_url"], source, Task.CAPTION, convs,
                       images=[pixmo_image(row["image_url"], media_root)])
    return convert_rows(rows, convert, skipped)


def _point_batches(counts: list[int], max_points: int | None) -> tuple[list[list[int]], int]:
    """PixMoPoints' sub-examples: labels with > max_points points dropped, the rest split greedily so
    no example holds more than max_points points. Returns (index batches, labels dropped)."""
    batches, on, total, dropped = [], [], 0, 0
    for i, n in enumerate(counts):
        if max_points and n > max_points:
            dropped += 1
            continue
        if max_points and total + n > max_points and on:
            batches.append(on)
            on, total = [], 0
        on.append(i)
        total += n
    return batches + ([on] if on else []), dropped


def _modes(url: str, label_points: list[tuple[str, list]], modes: tuple[str, ...], source: str, image,
           tag: str = "") -> Iterator[Example]:
    """One Example per Molmo2 counting mode ("pointing" / "point_count"), one branch per label."""
    for mode in modes:
        convs = [_qa(f"Point to the {label}." if mode == "pointing" else f"How many {label} are there?",
                     formats.format_points([(1, xy)], label) if mode == "pointing"
                     else formats.format_count([(1, xy)], label), mode) for label, xy in label_points]
        count = {"count": len(label_points[0][1])} if mode == "point_count" and len(label_points) == 1 else {}
        yield Example(url if len(modes) == 1 and not tag else f"{url}#{tag}{mode}", source,
                      Task.POINTING if mode == "pointing" else Task.COUNTING, convs, images=[image],
                      points=[Points(label, xy) for label, xy in label_points], **count)


def read_pixmo_points(rows: Iterable[Row], *, media_root: str | None, source: str,
                      skipped: MutableMapping[str, int], collection_method: str | None = None,
                      max_points: int | None = 60, modes: tuple[str, ...] = ("pointing", "point_count")
                      ) -> Iterator[Example]:
    """allenai/pixmo-points (image_url, image_sha256, points [{x, y}] 0-100, count, label,
    collection_method): labels of one image in a message tree, one branch per label.

    As Molmo2's `PixMoPoints(counting="both", max_points=60, max_total_points_per_example=60)`: labels
    with more than 60 points are dropped (counted as `filtered`), an image's labels are split into
    examples of at most 60 points, and each is emitted in both modes (pointing and point_count).
    """
    if collection_method is not None:
        rows = (r for r in rows if r["collection_method"] == collection_method)

    def branch(row: Row) -> tuple[str, list]:
        xy = [(clip01(p["x"] / 100), clip01(p["y"] / 100)) for p in row["points"]]
        if len(xy) != row["count"]:
            raise BadSample("bad_annotation", f"{row['image_url']}: count {row['count']} "
                                              f"but {len(xy)} points")
        return row["label"], xy

    def convert(group: list[Row]) -> list[Example] | None:
        labels = keep_good(group, branch, skipped)
        batches, dropped = _point_batches([len(xy) for _, xy in labels], max_points)
        if dropped:
            skipped["filtered"] = skipped.get("filtered", 0) + dropped
        if not batches:
            return None
        url = group[0]["image_url"]
        image = pixmo_image(url, media_root, group[0].get("image_sha256"))
        return [ex for b, batch in enumerate(batches) for ex in _modes(
            url, [labels[i] for i in batch], modes, source, image, f"{b}:" if len(batches) > 1 else "")]
    for examples in convert_rows(group_rows(rows, "image_url"), convert, skipped):
        yield from examples


def read_pixmo_count(rows: Iterable[Row], *, media_root: str | None, source: str,
                     skipped: MutableMapping[str, int], modes: tuple[str, ...] = ("pointing", "point_count")
                     ) -> Iterator[Example]:
    """allenai/pixmo-count (image_url, image_sha256, count, points {x: [], y: []} in pixels,
    label), in both of Molmo2's `PixMoCount(counting="both")` modes: pointing and point-then-count.
    Pixel points are normalised with the downloaded image's size."""
    def convert(row: Row) -> list[Example]:
        image = pixmo_image(row["image_url"], media_root, row.get("image_sha256"))
        w, h = image_size(media_root, image)
        pts = row.get("points") or {"x": [], "y": []}
        xy = [(clip01(x / w), clip01(y / h)) for x, y in zip(pts["x"], pts["y"])]
        if len(xy) != row["count"]:
            raise BadSample("bad_annotation", f"{row['image_url']}: count {row['count']} but "
                                              f"{len(xy)} points")
        return list(_modes(row["image_url"], [(row["label"], xy)], modes, source, image))
    for examples in convert_rows(rows, convert, skipped):
        yield from examples


def read_pixmo_qa(rows: Iterable[Row], *, media_root: str | None, source: str,
                  skipped: MutableMapping[str, int]) -> Iterator[Example]:
    """allenai/pixmo-ask-model-anything (image_url, image_sha256, question, answer): QA pairs of
    one image as a message tree."""
    def convert(group: list[Row]) -> Example:
        url = group[0]["image_url"]
        return Example(url, source, Task.VQA,
                       [_qa(r["question"], r["answer"], "user_qa") for r in group],
                       images=[pixmo_image(url, media_root, group[0].get("image_sha256"))])
    return convert_rows(group_rows(rows, "image_url"), convert, skipped)


_TURN = re.compile(r"\s*(\[USER\]|\[ASSISTANT\])\s*")


def parse_cap_qa_turns(question: str, answer: str) -> list[Message]:
    """PixMo-Cap-QA `question` is '[USER] q [ASSISTANT] a ... [USER] q [ASSISTANT]'; `answer`
    is the last assistant turn."""
    parts = _TURN.split(question)
    inner = parts[1:-1]
    if parts[0] or parts[-1] or len(inner) % 4 != 3:
        raise BadSample("bad_annotation",
                        f"unexpected [USER]/[ASSISTANT] layout: {question[:80]!r}")
    msgs = []
    for i in range(0, len(inner), 4):
        user, tag, reply = inner[i + 1], inner[i + 2], inner[i + 3] if i + 3 < len(inner) else None
        if inner[i] != "[USER]" or tag != "[ASSISTANT]" or not user or reply == "":
            raise BadSample("bad_annotation", f"empty or misplaced turn in {question[:80]!r}")
        msgs.append(Message("user", user))
        if reply is not None:
            msgs.append(Message("assistant", reply))
    return msgs + [Message("assistant", answer)]


def read_pixmo_cap_qa(rows: Iterable[Row], *, media_root: str | None, source: str,
                      skipped: MutableMapping[str, int]) -> Iterator[Example]:
    """allenai/pixmo-cap-qa (image_url, question with [USER]/[ASSISTANT] turns, answer)."""
    def convert(group: list[Row]) -> Example | None:
        convs = keep_good(group, lambda r: Conversation(
            parse_cap_qa_turns(r["question"], r["answer"]), "synthetic_qa"), skipped)
        if not convs:
            return None
        url = group[0]["image_url"]
        return Example(url, source, Task.VQA, convs, images=[pixmo_image(url, media_root)])
    return convert_rows(group_rows(rows, "image_url"), convert, skipped)


def read_pixmo_multi_image_qa(rows: Iterable[Row], *, media_root: str | None, source: str,
                              skipped: MutableMapping[str, int], min_images: int = 2,
                              max_images: int = 5) -> Iterator[Example]:
    """allenai/Molmo2-MultiImageQA (image_urls, qa_pairs {question: [], answer: []})."""
    def convert(row: Row) -> Example | None:
        urls = list(row["image_urls"])
        if not min_images <= len(urls) <= max_images:
            return None
        qa = row["qa_pairs"]
        convs = [_qa(q, a, "correction_qa") for q, a in zip(qa["question"], qa["answer"])]
        return Example("|".join(urls), source, Task.MULTI_IMAGE, convs,
                       images=[pixmo_image(u, media_root) for u in urls])
    return convert_rows(rows, convert, skipped)
