"""Readers for Molmo2's evaluation benchmarks (published layouts) -> canonical Examples.

Prompts and styles follow allenai/molmo2's loaders (`olmo/data/*_datasets.py`) and its data formatter:
where allenai draws a prompt template at random (pointing, counting, tracking) we use the first template
of that style, so a run is deterministic. Everything the metric needs is in `Example.meta` (msgpack-able:
masks as COCO RLE, no float dict keys); the assistant turn holds the reference answer, for reading only.
Rows may carry `_file` (the row file relative to the dataset root), set by `read_benchmark_rows`.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator, MutableMapping, Sequence

import numpy as np

from data_pipelines.readers.base import Row, convert_rows, iter_rows, pixmo_image
from data_pipelines.schema import BadSample, Conversation, Example, ImageRef, Message, Points, Task, VideoRef

POINT_PROMPT = "Point to {label}\nPlease say 'There are none.' if it is not in the image."
COUNT_PROMPT = "How many {label} are there?"
TRACK_PROMPT = "Track {label}."


def _qa(question: str, answer: str, style: str) -> list[Conversation]:
    return [Conversation([Message("user", question), Message("assistant", answer)], style)]


def _embedded_image(value) -> ImageRef:
    """HF `Image` feature ({bytes, path}) or raw bytes -> ImageRef with the bytes."""
    data = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise BadSample("missing_media", "row has no embedded image bytes")
    return ImageRef(data=bytes(data))


def _local(media_root: str | None, rel: str, what: str = "file") -> str:
    """`rel` (relative to the raw root); BadSample('missing_media') if it is not there."""
    if media_root is not None and not os.path.exists(os.path.join(media_root, rel)):
        raise BadSample("missing_media", f"{what} {rel} not under {media_root}")
    return rel


def read_benchmark_rows(files: Sequence[str], root: str) -> Iterator[dict]:
    """Rows of `files` with `_file` = the file's path relative to `root` (MVBench needs its task file)."""
    for f in files:
        rel = os.path.relpath(f, root)
        for row in iter_rows(f):
            yield {**row, "_file": rel} if isinstance(row, dict) else row


# --- image pointing / counting -------------------------------------------------------------------


def read_countbench_qa(rows: Iterable[Row], *, media_root: str | None, source: str,
                       skipped: MutableMapping[str, int],
                       questions: str = "http/countbench_qa/countbench_paired_questions.json") -> Iterator[Example]:
    """nielsr/countbench (image {bytes}, image_url, number) zipped by row with big_vision's questions."""
    path = os.path.join(media_root or "", questions)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: CountBenchQA needs the big_vision question file "
                                "(data_pipelines.benchmarks.COUNTBENCH_QAS) next to the parquet")
    with open(path) as f:
        qs = [q["question"] for q in json.load(f)]
    rows = list(rows)

    def convert(item: tuple[int, Row]) -> Example | None:
        idx, row = item
        if row.get("image") is None:
            return None  # allenai drops rows without an image
        count = int(row["number"])
        return Example(f"countbench_{idx}", source, Task.COUNTING, _qa(qs[idx], str(count), "point_count"),
                       images=[_embedded_image(row["image"])], count=count,
                       meta={"count": count, "image_url": row.get("image_url")})
    return convert_rows(enumerate(rows), convert, skipped)


def read_pixmo_count_eval(rows: Iterable[Row], *, media_root: str | None, source: str,
                          skipped: MutableMapping[str, int]) -> Iterator[Example]:
    """allenai/pixmo-count validation/test (image_url, image_sha256, count, label): point-then-count."""
    def convert(row: Row) -> Example:
        count, label = int(row["count"]), str(row["label"])
        return Example(f"{row['image_url']}:{label}", source, Task.COUNTING,
                       _qa(COUNT_PROMPT.format(label=label.lower()), str(count), "point_count"),
                       images=[pixmo_image(row["image_url"], media_root, row.get("image_sha256"))],
                       count=count, meta={"count": count, "label": label})
    return convert_rows(rows, convert, skipped)


def read_pixmo_points_eval(rows: Iterable[Row], *, media_root: str | None, source: str,
                           skipped: MutableMapping[str, int]) -> Iterator[Example]:
    """allenai/pixmo-points-eval (image_url, points [{x, y}] 0-100, masks [N, H, W] bool, label)."""
    from molmo2_jax.eval.masks import encode_rle

    def convert(row: Row) -> Example:
        masks = np.asarray(row["masks"], dtype=bool)
        if masks.ndim != 3 or len(masks) != len(row["points"]):
            raise BadSample("bad_annotation", f"{row['image_url']}: {len(row['points'])} points but masks "
                                              f"of shape {masks.shape}")
        h, w = masks.shape[1:]
        xy = [(float(p["x"]) / 100, float(p["y"]) / 100) for p in row["points"]]
        label = str(row["label"])
        return Example(f"{row['image_url']}:{label}", source, Task.POINTING,
                       _qa(POINT_PROMPT.format(label=label), "", "pointing"),
                       images=[pixmo_image(row["image_url"], media_root, row.get("image_sha256"))],
                       points=[Points(label, xy)] if xy else [],
                       meta={"masks": [encode_rle(m) for m in masks], "mask_size": [int(w), int(h)],
                             "gt_points": [[x * w, y * h] for x, y in xy]})
    return convert_rows(rows, convert, skipped)


def read_point_bench(rows: Iterable[Row], *, media_root: str | None, source: str,
                     skipped: MutableMapping[str, int],
                     media_dir: str = "hf/PointArena/pointarena-data") -> Iterator[Example]:
    """PointArena data.json (image_filename, mask_filename, category, user_input); rows without a mask dropped."""
    def convert(row: Row) -> Example | None:
        if "mask_filename" not in row:
            return None
        cat = row["category"]
        image = _local(media_root, os.path.join(media_dir, "selected_images", cat, row["image_filename"]), "image")
        mask = _local(media_root, os.path.join(media_dir, "selected_masks", cat, row["mask_filename"]), "mask")
        return Example(f"{cat}/{row['image_filename']}/{row['mask_filename']}", source, Task.POINTING,
                       _qa(row["user_input"], "", "pointing"), images=[ImageRef(path=image)],
                       meta={"mask_path": mask, "category": cat})
    return convert_rows(rows, convert, skipped)


# --- image QA --------------------------------------------------------------------------------------


def read_chart_qa(rows: Iterable[Row], *, media_root: str | None, source: str,
                  skipped: MutableMapping[str, int]) -> Iterator[Example]:
    """HuggingFaceM4/ChartQA (image, query, label [answers], human_or_machine)."""
    counter = iter(range(1 << 62))

    def convert(row: Row) -> Example:
        answers = [str(a) for a in (row["label"] if isinstance(row["label"], list) else [row["label"]])]
        return Example(f"chart_qa_{next(counter)}", source, Task.VQA, _qa(row["query"], answers[0], "chart_qa"),
                       images=[_embedded_image(row["image"])],
                       meta={"answers": answers, "is_human": row.get("human_or_machine") == 0})
    return convert_rows(rows, convert, skipped)


def read_real_world_qa(rows: Iterable[Row], *, media_root: str | None, source: str,
                       skipped: MutableMapping[str, int]) -> Iterator[Example]:
    """xai-org/RealworldQA (image, question, answer), allenai's `no_instruction` mode."""
    counter = iter(range(1 << 62))

    def convert(row: Row) -> Example:
        prompt = str(row["question"])
        if "Please answer directly with a single word or number." in prompt:
            qtype, style, prompt = "short_answer", "eval_short_answer", prompt.split("\n")[0]
        elif "Please answer directly with only the letter of the correct option" in prompt:
            qtype, style = "multiple_choice", "eval_multiple_choice"
        else:
            raise BadSample("bad_annotation", "RealWorldQA question without its answer instruction")
        return Example(f"real_world_qa_{next(counter)}", source, Task.VQA, _qa(prompt, str(row["answer"]), style),
                       images=[_embedded_image(row["image"])],
                       meta={"answer": str(row["answer"]), "question_type": qtype})
    return convert_rows(rows, convert, skipped)


def read_vqa_answers(rows: Iterable[Row], *, media_root: str | None, source: str,
                     skipped: MutableMapping[str, int], media_dir: str = "",
                     style: str = "text_vqa") -> Iterator[Example]:
    """allenai Ai2HfDataset rows (image path, message_list [{question, answers}]): one Example per question."""
    def convert(row: Row) -> list[Example]:
        image = _local(media_root, os.path.join(media_dir, row["image"]), "image")
        out = []
        for k, msg in enumerate(row["message_list"]):
            answers = [str(a) for a in msg["answers"]]
            qid = msg.get("question_id", f"{row['image']}:{k}")
            out.append(Example(str(qid), source, Task.VQA, _qa(msg["question"], answers[0], style),
                               images=[ImageRef(path=image)], meta={"answers": answers}))
        return out
    for group in convert_rows(rows, convert, skipped):
        yield from group


# --- video QA --------------------------------------------------------------------------------------


def _video(media_root: str | None, rel: str, start=None, end=None) -> VideoRef:
    return VideoRef(path=_local(media_root, rel, "video"), start_s=start, end_s=end)


def read_video_mme(rows: Iterable[Row], *, media_root: str | None, source: str,
                   skipped: MutableMapping[str, int], media_dir: str = "hf/lmms-lab/Video-MME/data"
                   ) -> Iterator[Example]:
    """lmms-lab/Video-MME parquet (videoID, question_id, duration, task_type, question, options, answer)."""
    def convert(row: Row) -> Example:
        question = "\n".join([
            "Select the best answer to the following multiple-choice question based on the video. Respond with "
            "only the letter (A, B, C, or D) of the correct option.",
            row["question"], "\n".join(row["options"]), "The best answer is:"])
        return Example(f"{row['question_id']}_{row['video_id']}", source, Task.VIDEO_QA,
                       _qa(question, row["answer"], "video_eval_multiple_choice"),
                       video=_video(media_root, os.path.join(media_dir, row["videoID"] + ".mp4")),
                       meta={"answer": row["answer"], "duration": row["duration"],
                             "task_type": row.get("task_type", "")})
    return convert_rows(rows, convert, skipped)


MVBENCH_TASKS = {  # json file -> (task, video folder under video/)
    "action_sequence.json": ("Action Sequence", "star/Charades_v1_480/"),
    "action_prediction.json": ("Action Prediction", "star/Charades_v1_480/"),
    "action_antonym.json": ("Action Antonym", "ssv2_video"),
    "fine_grained_action.json": ("Fine-grained Action", "Moments_in_Time_Raw/videos/"),
    "unexpected_action.json": ("Unexpected Action", "FunQA_test/test/"),
    "object_existence.json": ("Object Existence", "clevrer/video_validation/"),
    "object_interaction.json": ("Object Interaction", "star/Charades_v1_480/"),
    "object_shuffle.json": ("Object Shuffle", "perception/videos/"),
    "moving_direction.json": ("Moving Direction", "clevrer/video_validation/"),
    "action_localization.json": ("Action Localization", "sta/sta_video/"),
    "scene_transition.json": ("Scene Transition", "scene_qa/video/"),
    "action_count.json": ("Action Count", "perception/videos/"),
    "moving_count.json": ("Moving Count", "clevrer/video_validation/"),
    "moving_attribute.json": ("Moving Attribute", "clevrer/video_validation/"),
    "state_change.json": ("State Change", "perception/videos/"),
    "fine_grained_pose.json": ("Fine-grained Pose", "nturgbd/"),
    "character_order.json": ("Character Order", "perception/videos/"),
    "egocentric_navigation.json": ("Egocentric Navigation", "vlnqa/"),
    "episodic_reasoning.json": ("Episodic Reasoning", "tvqa/frames_fps3_hq/"),
    "counterfactual_inference.json": ("Counterfactual Inference", "clevrer/video_validation/"),
}


def read_mvbench(rows: Iterable[Row], *, media_root: str | None, source: str,
                 skipped: MutableMapping[str, int], media_dir: str = "hf/OpenGVLab/MVBench/video"
                 ) -> Iterator[Example]:
    """OpenGVLab/MVBench json/<task>.json rows (video, question, candidates, answer[, start, end])."""
    seen: dict[str, int] = {}

    def convert(row: Row) -> Example:
        task, folder = MVBENCH_TASKS[os.path.basename(row["_file"])]
        options = [str(c) for c in row["candidates"]]
        letter = chr(ord("A") + options.index(row["answer"]))
        question = "\n".join([row["question"], "\n".join(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(options)),
                              "Please respond with only the letter of the correct answer."])
        rel = os.path.join(media_dir, folder, row["video"])
        if task == "Episodic Reasoning":
            rel = os.path.join(rel, "video.mp4")
        k = seen[task] = seen.get(task, -1) + 1
        return Example(f"{task}_{k}", source, Task.VIDEO_QA, _qa(question, letter + ".", "video_eval_multiple_choice"),
                       video=_video(media_root, rel, row.get("start"), row.get("end")),
                       meta={"answer": letter + ".", "task_type": task})
    return convert_rows(rows, convert, skipped)


def read_long_video_bench(rows: Iterable[Row], *, media_root: str | None, source: str,
                          skipped: MutableMapping[str, int],
                          media_dir: str = "hf/longvideobench/LongVideoBench/videos") -> Iterator[Example]:
    """LongVideoBench lvb_val.json (video_path, question, candidates, correct_choice, duration_group, ...)."""
    def convert(row: Row) -> Example:
        options = [str(c) for c in row["candidates"]]
        letter = chr(ord("A") + int(row["correct_choice"]))
        question = "\n".join([row["question"], "\n".join(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(options)),
                              "Answer with the option's letter from the given choices directly."])
        return Example(f"{row['video_id']}_{row['id']}", source, Task.VIDEO_QA,
                       _qa(question, letter, "video_eval_multiple_choice"),
                       video=_video(media_root, os.path.join(media_dir, row["video_path"])),
                       meta={"answer": letter, "options": options, "duration_group": row.get("duration_group"),
                             "question_category": row.get("question_category", "")})
    return convert_rows(rows, convert, skipped)


# --- video pointing / counting ---------------------------------------------------------------------


def _point_video(media_root: str | None, media_dir: str, video_id: str, start=None, end=None) -> VideoRef:
    """allenai keeps these videos at 2 fps as <video_id>_2fps.mp4; <video_id>.mp4 is accepted too."""
    for name in (f"{video_id}_2fps.mp4", f"{video_id}.mp4"):
        rel = os.path.join(media_dir, name)
        if media_root is None or os.path.exists(os.path.join(media_root, rel)):
            return VideoRef(path=rel, start_s=start, end_s=end)
    raise BadSample("missing_media", f"video {video_id} (_2fps).mp4 not under {os.path.join(media_root, media_dir)}")


def read_molmo2_video_count_eval(rows: Iterable[Row], *, media_root: str | None, source: str,
                                 skipped: MutableMapping[str, int], media_dir: str = "videos") -> Iterator[Example]:
    """allenai/Molmo2-VideoCountEval (video_id, clip_start, clip_end, count, label, question, category)."""
    def convert(row: Row) -> Example:
        count = int(row["count"])
        return Example(f"{row['video_id']}_{row['label']}", source, Task.VIDEO_POINTING,
                       _qa(row["question"], str(count), "video_count"),
                       video=_point_video(media_root, media_dir, row["video_id"], row.get("clip_start"),
                                          row.get("clip_end")),
                       count=count, meta={"count": count, "subset": row.get("category", "")})
    return convert_rows(rows, convert, skipped)


def read_molmo2_video_point_eval(rows: Iterable[Row], *, media_root: str | None, source: str,
                                 skipped: MutableMapping[str, int], media_dir: str = "videos") -> Iterator[Example]:
    """allenai/Molmo2-VideoPointEval (video_id, width, height, video_duration, two_fps_timestamps,
    points [{x, y}] pixels, masks [[{frame_id, rle}]] per point, label); mask time = frame_id / 2."""
    def convert(row: Row) -> Example:
        w, h = float(row["width"]), float(row["height"])
        times = [float(t) for t in row["two_fps_timestamps"]]
        if len(times) != len(row["points"]) or len(row["masks"]) != len(row["points"]):
            raise BadSample("bad_annotation", f"{row['video_id']}: timestamps, points and masks differ in length")
        triplets = [[t, float(p["x"]), float(p["y"])] for t, p in zip(times, row["points"])]
        tubelets = [[[m["frame_id"] / 2.0, m["rle"]] for m in frame_masks] for frame_masks in row["masks"]]
        label = str(row["label"])
        points = [Points(label, [(x / w, y / h)], time=t) for t, x, y in triplets]
        return Example(f"{row['video_id']}_{label}", source, Task.VIDEO_POINTING,
                       _qa(f"How many \"{label}\" are there in the video?", "", "video_point_count"),
                       video=_point_video(media_root, media_dir, row["video_id"]), points=points,
                       meta={"gt_triplets": triplets, "tubelets": tubelets, "duration": float(row["video_duration"]),
                             "width": w, "height": h})
    return convert_rows(rows, convert, skipped)


# --- tracking --------------------------------------------------------------------------------------


def _rle_or_none(m):
    """A per-frame mask entry: COCO RLE dict, a {"mask": rle} wrapper, or None."""
    if isinstance(m, dict) and "mask" in m:
        m = m["mask"]
    return m if isinstance(m, dict) and "counts" in m else None


def read_molmo2_track_eval(rows: Iterable[Row], *, media_root: str | None, source: str,
                           skipped: MutableMapping[str, int], media_dir: str = "videos",
                           masks_dir: str | None = None, sampling_fps: int = 1) -> Iterator[Example]:
    """Point-track eval rows in either published layout, with per-frame GT masks.

    Molmo2-VideoTrackEval: id, clip, fps, w, h, exp, mask_id, points [{object_id, points [[x, y] | None per
    frame]}], masks [{object_id, masks [rle | None per frame]}]; GT kept every fps // sampling_fps frames.
    MeViS / Ref-YT-VOS / Ref-DAVIS (allenai/molmo2-<set>): id, video, qid, expression, width, height, fps,
    mask_id, frame_trajectories [{frame, time, points [{id, point, occluded}]}]; masks from
    `masks_dir/<video>/<qid>.json` ({object index: [rle per frame]}).
    """
    def convert(row: Row) -> Example:
        fps = float(row["fps"])
        mask_ids = [str(m) for m in row["mask_id"]]
        index = {m: i for i, m in enumerate(mask_ids)}
        frames: dict[int, list[list[float]]] = {}
        if "frame_trajectories" in row:
            label, w, h, video_rel = row["expression"], row["width"], row["height"], str(row["video"])
            for fr in row["frame_trajectories"]:
                for p in fr["points"]:
                    if str(p["id"]) in index and not p.get("occluded"):
                        frames.setdefault(int(fr["frame"]), []).append([index[str(p["id"])], *map(float, p["point"])])
            if masks_dir is None:
                raise BadSample("bad_annotation", "academic tracking rows need masks_dir (MasksRLE json)")
            mpath = os.path.join(media_root or "", masks_dir, video_rel, f"{row['qid']}.json")
            if not os.path.exists(mpath):
                raise BadSample("missing_media", f"GT masks {mpath} not found")
            with open(mpath) as f:
                per_object = json.load(f)
            masks = [[_rle_or_none(m) for m in per_object[k]] for k in sorted(per_object, key=int)]
        else:
            label, w, h, video_rel = row["exp"], row["w"], row["h"], str(row["clip"])
            step = max(int(fps // sampling_fps), 1)
            for obj in row["points"]:
                k = index[str(obj["object_id"])]
                for frame, pt in enumerate(obj["points"]):
                    if pt and frame % step == 0:
                        frames.setdefault(frame, []).append([k, float(pt[0]), float(pt[1])])
            by_id = {str(m["object_id"]): m["masks"] for m in row["masks"]}
            masks = [[_rle_or_none(m) for m in by_id.get(mid, [])] for mid in mask_ids]
        video = _video(media_root, os.path.join(media_dir, video_rel + ".mp4"))
        gt = [[f, pts] for f, pts in sorted(frames.items())]
        return Example(str(row["id"]), source, Task.TRACKING, _qa(TRACK_PROMPT.format(label=label), "",
                                                                  "video_point_track_per_frame"),
                       video=video, meta={"fps": fps, "width": float(w), "height": float(h), "gt_frames": gt,
                                          "masks": masks})
    return convert_rows(rows, convert, skipped)


def mask_from_png(data: bytes | str) -> np.ndarray:
    """PointBench mask PNG -> bool [H, W] (any channel > 127, as allenai `PointBench.load_mask`)."""
    from PIL import Image

    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        arr = np.asarray(im)
    return arr > 127 if arr.ndim == 2 else np.any(arr > 127, axis=2)


EVAL_READERS = {
    "countbench_qa": read_countbench_qa,
    "pixmo_count_eval": read_pixmo_count_eval,
    "pixmo_points_eval": read_pixmo_points_eval,
    "point_bench": read_point_bench,
    "chart_qa": read_chart_qa,
    "real_world_qa": read_real_world_qa,
    "vqa_answers": read_vqa_answers,
    "video_mme": read_video_mme,
    "mvbench": read_mvbench,
    "long_video_bench": read_long_video_bench,
    "molmo2_video_count_eval": read_molmo2_video_count_eval,
    "molmo2_video_point_eval": read_molmo2_video_point_eval,
    "molmo2_track_eval": read_molmo2_track_eval,
}
