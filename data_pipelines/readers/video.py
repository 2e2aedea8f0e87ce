"""Molmo2 video readers: VideoPoint, track-instruction, Molmo2-Cap, VideoCapQA -> Examples.

Videos follow allenai/molmo2's layout under `<media_root>/video_datasets/` (its
VIDEO_DATA_HOME): VideoPoint `<subdir>/<video_id>_2fps.mp4` per `video_source` (generated videos
ship in the HF repo, `generated_videos/`), Molmo2-Cap / CapQA under `youtube-cc/...`, tracking
clips `video_track/<Source>/videos/train/<clip>.mp4`. Rows whose video is absent are counted as
`missing_media`.
"""

from __future__ import annotations

import glob
import math
import os
import zlib
from collections.abc import Iterable, Iterator, MutableMapping, Sequence

from data_pipelines.readers.base import Row, clip01, convert_rows, group_rows, keep_good
from data_pipelines.schema import (BadSample, Conversation, Example, Message, Points, Task,
                                   Track, VideoRef)
from molmo2_jax.processing import formats

VIDEO_ROOT = "video_datasets"
VIDEO_POINT_REPO = os.path.join("hf", "allenai", "Molmo2-VideoPoint")
VIDEO_POINT_SUBDIRS = {  # m2:olmo/data/molmo2_datasets.py VIDEO_POINT_SUBDIRS
    "youtube": ("youtube-cc/youtube-cc-exist-2fps", "youtube-cc/youtube-cc-kw-2fps",
                "youtube-cc/youtube-cc-temporal-2fps"),
    "MammalNet": ("MammalNet/trimmed_video-2fps",),
    "generated": ("generated_videos",),
}
YOUTUBE_CC = ("youtube-cc/youtube-cc-exist", "youtube-cc/youtube-cc-kw",
              "youtube-cc/youtube-cc-temporal")
CAP_FILE_SUBDIRS = ("youtube_temporal/batch_1", "intern/batch_1", "kw_youtube/batch_1")
VIDEO_EXTS = (".mp4", ".webm", ".mkv", ".mov")
# Molmo2 track-instruction sources: video_dataset column -> directory under video_track/
TRACK_SOURCE_DIRS = {"APTv2": "APTv2", "dancetrack": "DanceTrack", "sportsmot": "SportsMOT",
                     "personpath22": "personpath22", "sav": "sav", "mose": "MOSE",
                     "mosev2": "MOSEv2", "vipseg": "VIPSeg", "animaltrack": "animaltrack",
                     "bft": "bft", "soccernet": "SoccerNet", "teamtrack": "TeamTrack",
                     "mot2020": "MOT20", "bdd100k": "bdd100k", "uavdt": "UAVDT",
                     "seadrones": "SeaDronesSee"}
MAX_POINT_CLIP_S = 63  # Molmo2VideoPoint(use_clips_from_metadata=True)


def first_existing(media_root: str | None, candidates: Sequence[str], what: str) -> str:
    """The first candidate path (relative to media_root) that exists; BadSample if none does."""
    if media_root is None:
        return candidates[0]
    for rel in candidates:
        if os.path.exists(os.path.join(media_root, rel)):
            return rel
    raise BadSample("missing_media", f"{what}: none of {list(candidates)[:3]}... under "
                                     f"{media_root} (manual download: `python -m "
                                     "data_pipelines.download --list` says how)")


def local_video(media_root: str | None, rel: str | Sequence[str], start: float | None = None,
                end: float | None = None) -> VideoRef:
    """VideoRef of a downloaded video (first existing of `rel`); BadSample if absent."""
    cands = [rel] if isinstance(rel, str) else list(rel)
    return VideoRef(path=first_existing(media_root, cands, "video"), start_s=start, end_s=end)


def video_point_candidates(video_id: str, video_source: str) -> list[str]:
    """Where Molmo2 looks for a VideoPoint video (`_find_video_point_path_by_id`)."""
    subdirs = VIDEO_POINT_SUBDIRS.get(video_source) or [
        s for group in VIDEO_POINT_SUBDIRS.values() for s in group]
    if "/" in video_id:  # "sora2/x" -> <subdir>/sora2-2fps/x_2fps.mp4
        prefix, name = video_id.rsplit("/", 1)
        rels = [os.path.join(sd, f"{prefix}-2fps", f"{name}_2fps.mp4") for sd in subdirs]
    else:
        rels = [os.path.join(sd, f"{video_id}_2fps.mp4") for sd in subdirs]
    out = [os.path.join(VIDEO_ROOT, r) for r in rels]
    if video_source == "generated" or video_source not in VIDEO_POINT_SUBDIRS:
        out += [os.path.join(VIDEO_POINT_REPO, r) for r in rels]  # shipped in the HF repo
    return out


def youtube_cc_candidates(media_root: str | None, video_id: str) -> list[str]:
    """Molmo2 `_find_video_by_id`: youtube-cc-*/<id>/<file> (folder per video) or <id>.mp4."""
    out = []
    for sd in YOUTUBE_CC:
        folder = os.path.join(VIDEO_ROOT, sd, video_id)
        if media_root is not None:
            out += sorted(os.path.relpath(f, media_root) for f in glob.glob(
                os.path.join(glob.escape(os.path.join(media_root, folder)), "*"))
                if f.endswith(VIDEO_EXTS))
        out.append(os.path.join(folder, f"{video_id}.mp4"))
    return out


def _qa(q: str, a: str, style: str) -> Conversation:
    return Conversation([Message("user", q), Message("assistant", a)], style)


def read_molmo2_video_points(rows: Iterable[Row], *, media_root: str | None, source: str,
                             skipped: MutableMapping[str, int], min_count: int = 0,
                             max_count: int | None = None, fps: float = 2.0) -> Iterator[Example]:
    """allenai/Molmo2-VideoPoint (video_id, video_source, clip_start, clip_end, video_duration,
    label, question, count, two_fps_timestamps, points [[{x, y}]] 0-100 per timestamp):
    point-then-count over frames, bucketed by count like `vixmo_points_minmax_*`.

    As `Molmo2VideoPoint(use_clips_from_metadata=True)`: videos <= 63 s are used whole, longer
    ones as [clip_start, clip_end] (rows without a clip are filtered); timestamps become
    clip-relative (`ts - clip_start`, floored to the 2 fps grid).
    """
    step = 1.0 / fps

    def convert(row: Row) -> Example | None:
        count = int(row["count"])
        if count < min_count or (max_count is not None and count > max_count):
            return None
        times, per_time = list(row["two_fps_timestamps"] or []), list(row["points"] or [])
        if len(times) != len(per_time):
            raise BadSample("bad_annotation", f"{row['video_id']}: {len(times)} timestamps, "
                                              f"{len(per_time)} point lists")
        duration = float(row["video_duration"])
        if duration <= MAX_POINT_CLIP_S:
            start, end = 0.0, duration
        elif row.get("clip_start") is not None and row.get("clip_end") is not None:
            start, end = float(row["clip_start"]), float(row["clip_end"])
        else:
            return None  # long video without a precomputed clip: Molmo2 skips it
        if times and (min(times) < start - 1e-6 or max(times) > end + 1e-6 or end <= start):
            raise BadSample("bad_annotation", f"{row['video_id']}: points at {min(times)}-"
                                              f"{max(times)} s outside the clip {start}-{end} s")
        if any(abs(t / 0.5 - round(t / 0.5)) > 1e-6 for t in times):
            raise BadSample("bad_annotation", f"{row['video_id']}: timestamps not on the 2 fps grid")
        points = [Points(row["label"], sorted((clip01(p["x"] / 100), clip01(p["y"] / 100))
                                              for p in pts),
                         time=math.floor((float(t) - start) / 0.5 + 1e-6) * step)
                  for t, pts in zip(times, per_time)]
        question = row.get("question") or f"Point to and count the {row['label']}."
        answer = formats.format_count([(p.time, p.xy) for p in points], row["label"])
        video = local_video(media_root, video_point_candidates(
            str(row["video_id"]), str(row.get("video_source") or "")), start, end)
        return Example(f"{row['video_id']}_{row['label']}", source, Task.VIDEO_POINTING,
                       [_qa(question, answer, "point_count")],
                       video=video, points=[p for p in points if p.xy], count=count,
                       meta={"video_source": row.get("video_source") or "",
                             "category": row.get("category") or ""})
    return convert_rows(rows, convert, skipped)


def track_clip_path(row: Row, layout: str, video_dir: str) -> str:
    """Molmo2 tracking video paths: track-instruction clips live per source as
    `video_track/<Source>/videos/train/<clip>.mp4` (APTv2: `.../videos/<clip>.mp4`); academic
    MOT sets as `<video_dir>/<video>.mp4`."""
    if layout == "track_instruction":
        src = str(row["video_dataset"])
        base = os.path.join(VIDEO_ROOT, "video_track", TRACK_SOURCE_DIRS.get(src, src), "videos")
        return os.path.join(base if src == "APTv2" else os.path.join(base, "train"),
                            f"{row['clip']}.mp4")
    name = str(row["video"])
    return os.path.join(video_dir, name if name.endswith(VIDEO_EXTS) else name + ".mp4")


def read_molmo2_track(rows: Iterable[Row], *, media_root: str | None, source: str,
                      skipped: MutableMapping[str, int], task: str = "track",
                      layout: str = "academic", video_dir: str = VIDEO_ROOT
                      ) -> Iterator[Example]:
    """allenai/molmo2-track-instruction and allenai/molmo2-<set> (id, video, clip,
    video_dataset, width, height, expression, mask_id, frame_trajectories [{frame, time,
    points [{id, point [x, y] px, occluded}]}]); times are clip-relative seconds.

    task: `track` (every visible point), `ground` (first and last point per object, Molmo2
    `_filter_all_but_start_end`) or `single_point_track` (the first points are given in the
    question, the answer tracks from there). Points of ids not in `mask_id` are dropped.
    """
    if task not in ("track", "ground", "single_point_track"):
        raise ValueError(f"unknown tracking task {task!r}")

    def convert(row: Row) -> Example:
        w, h = float(row["width"]), float(row["height"])
        keep = {str(m) for m in row["mask_id"]} if row.get("mask_id") is not None else None
        paths: dict[int, list[tuple[float, float, float]]] = {}
        for fr in sorted(row["frame_trajectories"], key=lambda f: f["frame"]):
            for p in fr["points"]:
                if not p.get("occluded") and (keep is None or str(p["id"]) in keep):
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
        video = local_video(media_root, track_clip_path(row, layout, video_dir))
        return Example(str(row["id"]), source, Task.TRACKING, [_qa(question, answer, task)],
                       video=video, tracks=tracks,
                       meta={"video_dataset": str(row.get("video_dataset") or "")})
    return convert_rows(rows, convert, skipped)


CAPTION_COLUMNS = (("merged_caption", "video_merged_caption"),  # Molmo2Captions order
                   ("video_caption", "video_short_caption"),
                   ("video_frame_merged_caption", "video_long_caption"))
CORRUPT_CAP_VIDEOS = frozenset({"0OfUqrbRa2Y", "mTXBQzptWAg", "NyuA4FatDQk", "a_", "gsfIHiBB6xE",
                                "bXApJtAf6Qo", "N8BlpYSpgg4"})  # Molmo2Captions.CORRUPT_VIDEO_IDS


def cap_video_candidates(media_root: str | None, video_id: str) -> list[str]:
    """Molmo2 `_find_video_cap_path_by_id`, the YouTube subdirs: folder-per-video youtube-cc-*,
    then file-per-video `<subdir>/<id>.mp4`."""
    return youtube_cc_candidates(media_root, video_id) + [
        os.path.join(VIDEO_ROOT, sd, f"{video_id}{ext}") for sd in CAP_FILE_SUBDIRS
        for ext in VIDEO_EXTS]


def read_molmo2_cap(rows: Iterable[Row], *, media_root: str | None, source: str,
                    skipped: MutableMapping[str, int], min_score: float = 3,
                    max_captions: int = 4) -> Iterator[Example]:
    """allenai/Molmo2-Cap (video_id, annotation_score, caption columns): the video's captions as
    a message tree (at most `max_captions`), videos with annotation_score < min_score filtered."""
    def convert(row: Row) -> Example | None:
        if (row.get("annotation_score") is None or row["annotation_score"] < min_score
                or row["video_id"] in CORRUPT_CAP_VIDEOS):
            return None
        convs = [_qa("Describe this video in detail.", row[col], style)
                 for col, style in CAPTION_COLUMNS if row.get(col)][:max_captions]
        if not convs:
            raise BadSample("bad_annotation", f"video {row['video_id']} has no caption")
        video = local_video(media_root, cap_video_candidates(media_root, str(row["video_id"])))
        return Example(str(row["video_id"]), source, Task.VIDEO_CAPTION, convs, video=video)
    return convert_rows(rows, convert, skipped)


def read_molmo2_video_capqa(rows: Iterable[Row], *, media_root: str | None, source: str,
                            skipped: MutableMapping[str, int]) -> Iterator[Example]:
    """allenai/Molmo2-VideoCapQA (video_id, Question, Answer, NegativeAnswers, Category) and
    VideoSubtitleQA (+ subtitle [{start, end, text}]): as `Molmo2SynCaptionsQA` /
    `Molmo2SynCaptionsSubtitleQA`, one example per video with one multiple-choice branch per question
    (style video_multiple_choice); options in a fixed per-question shuffled order, answer = letter and
    option. The video's subtitles (its first row's, shared by all) go to `meta["subtitles"]`, written
    after the video by the encoder as Molmo2's video preprocessor does."""
    def branch(row: Row) -> Conversation:
        options = [row["Answer"], *row["NegativeAnswers"]]
        key = zlib.crc32(f"{row['video_id']}|{row['Question']}".encode())
        order = sorted(range(len(options)), key=lambda i: zlib.crc32(f"{key}:{i}".encode()))
        letters = "ABCDEFGHIJ"
        lines = [f"{letters[j]}. {options[i]}" for j, i in enumerate(order)]
        answer = letters[order.index(0)] + ". " + options[0]
        prompt = row["Question"] + "\n" + "\n".join(lines)
        return _qa(prompt, answer, "video_multiple_choice")

    def convert(group: list[Row]) -> Example | None:
        vid = str(group[0]["video_id"])
        video = local_video(media_root, youtube_cc_candidates(media_root, vid))
        convs = keep_good(group, branch, skipped)
        if not convs:
            return None
        meta = {"category": group[0].get("Category") or ""}
        if group[0].get("subtitle"):
            meta["subtitles"] = [[float(s["start"]), float(s["end"]), s["text"]] for s in group[0]["subtitle"]]
        return Example(f"molmo2_syn_qa_{vid}", source, Task.VIDEO_QA, convs, video=video, meta=meta)
    return convert_rows(group_rows(rows, "video_id"), convert, skipped)
