"""Molmo2 video readers: VideoPoint, track-instruction, Molmo2-Cap, VideoCapQA -> Examples.

Videos are manual downloads: each reader expects `<media_root>/<video_dir>/<video id>.mp4`
(or the row's own file name for tracking) and counts rows whose video is absent.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Iterator, MutableMapping

from data_pipelines.readers.base import Row, clip01, convert_rows
from data_pipelines.schema import (BadSample, Conversation, Example, Message, Points, Task,
                                   Track, VideoRef)
from molmo2_jax.processing import formats


def local_video(media_root: str | None, rel: str, start: float | None = None,
                end: float | None = None) -> VideoRef:
    """VideoRef of a manually downloaded video; BadSample('missing_media') if it is absent."""
    if media_root is not None and not os.path.exists(os.path.join(media_root, rel)):
        raise BadSample("missing_media", f"video {rel} not under {media_root} (manual download)")
    return VideoRef(path=rel, start_s=start, end_s=end)


def _qa(q: str, a: str, style: str) -> Conversation:
    return Conversation([Message("user", q), Message("assistant", a)], style)


def read_molmo2_video_points(rows: Iterable[Row], *, media_root: str | None, source: str,
                             skipped: MutableMapping[str, int], video_dir: str = "videos",
                             min_count: int = 0, max_count: int | None = None
                             ) -> Iterator[Example]:
    """allenai/Molmo2-VideoPoint (video_id, clip_start, clip_end, label, question, count,
    two_fps_timestamps, points [[{x, y}]] 0-100 per timestamp): point-then-count over frames,
    bucketed by count like `vixmo_points_minmax_*`."""
    def convert(row: Row) -> Example | None:
        count = int(row["count"])
        if count < min_count or (max_count is not None and count > max_count):
            return None
        times, per_time = row["two_fps_timestamps"], row["points"]
        if len(times) != len(per_time):
            raise BadSample("bad_annotation", f"{row['video_id']}: {len(times)} timestamps, "
                                              f"{len(per_time)} point lists")
        points = [Points(row["label"], [(clip01(p["x"] / 100), clip01(p["y"] / 100)) for p in pts],
                         time=float(t)) for t, pts in zip(times, per_time)]
        question = row.get("question") or f"Point to and count the {row['label']}."
        video = local_video(media_root, os.path.join(video_dir, f"{row['video_id']}.mp4"),
                            row.get("clip_start"), row.get("clip_end"))
        answer = formats.format_count([(p.time, p.xy) for p in points], row["label"])
        return Example(f"{row['video_id']}:{row['label']}", source, Task.VIDEO_POINTING,
                       [_qa(question, answer, "point_count")],
                       video=video, points=[p for p in points if p.xy], count=count)
    return convert_rows(rows, convert, skipped)


def read_molmo2_track(rows: Iterable[Row], *, media_root: str | None, source: str,
                      skipped: MutableMapping[str, int], task: str = "track",
                      video_dir: str = "videos") -> Iterator[Example]:
    """allenai/molmo2-track-instruction (id, video, width, height, expression,
    frame_trajectories [{frame, time, points [{id, point [x, y] px, occluded}]}]).

    task: `track` (every visible point), `ground` (first and last point per object, Molmo2
    `_filter_all_but_start_end`) or `single_point_track` (the first points are given in the
    question, the answer tracks from there).
    """
    if task not in ("track", "ground", "single_point_track"):
        raise ValueError(f"unknown tracking task {task!r}")

    def convert(row: Row) -> Example:
        w, h = float(row["width"]), float(row["height"])
        paths: dict[int, list[tuple[float, float, float]]] = {}
        for fr in row["frame_trajectories"]:
            for p in fr["points"]:
                if not p.get("occluded"):
                    x, y = p["point"]
                    paths.setdefault(int(p["id"]), []).append(
                        (float(fr["time"]), clip01(x / w), clip01(y / h)))
        if not paths:
            raise BadSample("bad_annotation", f"track {row['id']}: no visible points")
        tracks = [Track(row["expression"], k, sorted(v)) for k, v in sorted(paths.items())]
        shown = [t.points for t in tracks]
        question = f"Track the {row['expression']}."
        if task == "ground":
            shown = [[pts[0], pts[-1]] if len(pts) > 1 else pts for pts in shown]
        elif task == "single_point_track":
            start = formats.format_tracks([pts[:1] for pts in shown], row["expression"])
            question = f"Track the {row['expression']} starting from {start}."
        answer = formats.format_tracks(shown, row["expression"])
        video = local_video(media_root, os.path.join(video_dir, str(row["video"])))
        return Example(str(row["id"]), source, Task.TRACKING, [_qa(question, answer, task)],
                       video=video, tracks=tracks)
    return convert_rows(rows, convert, skipped)


CAPTION_COLUMNS = (("video_caption", "video_short_caption"),
                   ("merged_caption", "video_merged_caption"),
                   ("video_frame_merged_caption", "video_long_caption"))


def read_molmo2_cap(rows: Iterable[Row], *, media_root: str | None, source: str,
                    skipped: MutableMapping[str, int], video_dir: str = "videos",
                    min_score: float = 3, max_captions: int = 4) -> Iterator[Example]:
    """allenai/Molmo2-Cap (video_id, annotation_score, caption columns): the video's captions as
    a message tree (at most `max_captions`), videos with annotation_score < min_score filtered."""
    def convert(row: Row) -> Example | None:
        if row.get("annotation_score") is None or row["annotation_score"] < min_score:
            return None
        convs = [_qa("Describe this video in detail.", row[col], style)
                 for col, style in CAPTION_COLUMNS if row.get(col)][:max_captions]
        if not convs:
            raise BadSample("bad_annotation", f"video {row['video_id']} has no caption")
        video = local_video(media_root, os.path.join(video_dir, f"{row['video_id']}.mp4"))
        return Example(str(row["video_id"]), source, Task.VIDEO_CAPTION, convs, video=video)
    return convert_rows(rows, convert, skipped)


def read_molmo2_video_capqa(rows: Iterable[Row], *, media_root: str | None, source: str,
                            skipped: MutableMapping[str, int], video_dir: str = "videos"
                            ) -> Iterator[Example]:
    """allenai/Molmo2-VideoCapQA (video_id, Question, Answer, NegativeAnswers, Category) and
    VideoSubtitleQA (+ subtitle [{start, end, text}]): multiple choice, options in a fixed
    per-question shuffled order, answer = letter and option (prompt wording is ours)."""
    def convert(row: Row) -> Example:
        options = [row["Answer"], *row["NegativeAnswers"]]
        key = zlib.crc32(f"{row['video_id']}|{row['Question']}".encode())
        order = sorted(range(len(options)), key=lambda i: zlib.crc32(f"{key}:{i}".encode()))
        letters = "ABCDEFGHIJ"
        lines = [f"{letters[j]}. {options[i]}" for j, i in enumerate(order)]
        answer = letters[order.index(0)] + ". " + options[0]
        prompt = row["Question"] + "\n" + "\n".join(lines)
        if row.get("subtitle"):
            subs = "\n".join(f"[{s['start']:.1f}-{s['end']:.1f}] {s['text']}"
                             for s in row["subtitle"])
            prompt = f"Subtitles:\n{subs}\n\n{prompt}"
        video = local_video(media_root, os.path.join(video_dir, f"{row['video_id']}.mp4"))
        return Example(f"{row['video_id']}:{key}", source, Task.VIDEO_QA,
                       [_qa(prompt, answer, "video_mc")], video=video,
                       meta={"category": row.get("Category", "")})
    return convert_rows(rows, convert, skipped)
