"""Tiny benchmark downloads in their published layouts (RAW/hf/<repo>/..., media where the readers look)."""

from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from data_pipelines.media import encode_video
from molmo2_jax.eval.masks import encode_rle


def _png(h: int = 48, w: int = 64, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _mp4(path: str, frames: int = 4, h: int = 32, w: int = 48) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(len(path))
    with open(path, "wb") as f:
        f.write(encode_video(rng.integers(0, 255, (frames, h, w, 3), dtype=np.uint8), fps=2))


def _parquet(path: str, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _hf(raw: str, repo: str, *parts: str) -> str:
    return os.path.join(raw, "hf", repo, *parts)


def _mask(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def build_raw(raw: str, n: int = 3) -> None:
    """One small published-layout copy of a benchmark per family (and a few more)."""
    # countbench_qa: nielsr/countbench parquet + big_vision questions
    _parquet(_hf(raw, "nielsr/countbench", "data", "train-00000-of-00001.parquet"),
             [{"image": {"bytes": _png(seed=i), "path": None}, "image_url": f"http://x/{i}.jpg", "text": "t",
               "number": 2 + i} for i in range(n)] + [{"image": None, "image_url": "http://x/none.jpg", "text": "t",
                                                      "number": 1}])
    q = os.path.join(raw, "http", "countbench_qa", "countbench_paired_questions.json")
    os.makedirs(os.path.dirname(q), exist_ok=True)
    with open(q, "w") as f:
        json.dump([{"question": f"How many cats are there in picture {i}?"} for i in range(n + 1)], f)
    # pointing_eval_v2: allenai/pixmo-points-eval (URL images in pixmo_images/<sha256(url)>)
    rows = []
    for i in range(n):
        url = f"http://pixmo/{i}.png"
        path = os.path.join(raw, "pixmo_images", hashlib.sha256(url.encode()).hexdigest())
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(_png(seed=10 + i))
        masks = [_mask(48, 64, 5, 5, 20, 20), _mask(48, 64, 30, 20, 60, 45)]
        rows.append({"image_url": url, "image_sha256": None, "label": "squares",
                     "points": [{"x": 20.0, "y": 25.0}, {"x": 70.0, "y": 70.0}],
                     "masks": [m.tolist() for m in masks]})
    _parquet(_hf(raw, "allenai/pixmo-points-eval", "data", "test-00000-of-00001.parquet"), rows)
    # pixmo_count_counting: allenai/pixmo-count validation split, URL images
    count_rows = []
    for i in range(n):
        url = f"http://pixmo/count{i}.png"
        path = os.path.join(raw, "pixmo_images", hashlib.sha256(url.encode()).hexdigest())
        with open(path, "wb") as f:
            f.write(_png(seed=50 + i))
        count_rows.append({"image_url": url, "image_sha256": None, "count": i + 1, "label": "Birds"})
    _parquet(_hf(raw, "allenai/pixmo-count", "data", "validation-00000-of-00001.parquet"), count_rows)
    _parquet(_hf(raw, "allenai/pixmo-count", "data", "train-00000-of-00001.parquet"),
             [{"image_url": "http://pixmo/none.png", "image_sha256": None, "count": 9, "label": "not eval"}])
    # text_vqa: allenai/molmo2-text-vqa rows (image path, message_list) + TextVQA images under RAW/text_vqa
    tv = []
    for i in range(n):
        rel = f"train_images/{i}.png"
        os.makedirs(os.path.join(raw, "text_vqa", "train_images"), exist_ok=True)
        with open(os.path.join(raw, "text_vqa", rel), "wb") as f:
            f.write(_png(seed=60 + i))
        tv.append({"image": rel, "message_list": [{"question": "What does the sign say?", "question_id": f"q{i}",
                                                   "answers": ["stop"] * 7 + ["halt"] * 3}]})
    _parquet(_hf(raw, "allenai/molmo2-text-vqa", "validation", "validation-00000-of-00001.parquet"), tv)
    # point_bench: PointArena data.json + selected_images / selected_masks
    root = _hf(raw, "PointArena/pointarena-data")
    items = []
    for i, cat in enumerate(["counting", "spatial", "counting"][:n]):
        for sub, data in (("selected_images", _png(seed=20 + i)),
                          ("selected_masks", _png_mask(_mask(48, 64, 0, 0, 32, 48)))):
            os.makedirs(os.path.join(root, sub, cat), exist_ok=True)
            with open(os.path.join(root, sub, cat, f"{i}.png"), "wb") as f:
                f.write(data)
        items.append({"image_filename": f"{i}.png", "mask_filename": f"{i}.png", "category": cat,
                      "user_input": f"Point to the left half {i}"})
    items.append({"image_filename": "x.png", "category": "spatial", "user_input": "no mask: dropped"})
    with open(os.path.join(root, "data.json"), "w") as f:
        json.dump(items, f)
    # chart_qa / RealWorldQA: images embedded
    _parquet(_hf(raw, "HuggingFaceM4/ChartQA", "data", "test-00000-of-00001.parquet"),
             [{"image": {"bytes": _png(seed=30 + i), "path": None}, "query": f"What is bar {i}?",
               "label": [str(10 * i)], "human_or_machine": i % 2} for i in range(n)])
    _parquet(_hf(raw, "xai-org/RealworldQA", "data", "test-00000-of-00001.parquet"),
             [{"image": {"bytes": _png(seed=40 + i), "path": None},
               "question": "Which way?\nA. left\nB. right\nPlease answer directly with only the letter of the "
                           "correct option and nothing else." if i % 2 else
               "How many lanes?\nPlease answer directly with a single word or number.",
               "answer": "B" if i % 2 else "2"} for i in range(n)])
    # video_mme: videomme parquet + data/<videoID>.mp4
    _parquet(_hf(raw, "lmms-lab/Video-MME", "videomme", "test-00000-of-00001.parquet"),
             [{"video_id": f"{i:03d}", "duration": "short", "domain": "d", "sub_category": "s", "url": "u",
               "videoID": f"vid{i}", "question_id": f"{i:03d}-1", "task_type": "Counting Problem",
               "question": "How many?", "options": ["A. 1", "B. 2", "C. 3", "D. 4"], "answer": "B"}
              for i in range(n)])
    for i in range(n):
        _mp4(_hf(raw, "lmms-lab/Video-MME", "data", f"vid{i}.mp4"))
    # mvbench: json/<task>.json + video/<folder>/<file>
    mv = _hf(raw, "OpenGVLab/MVBench")
    os.makedirs(os.path.join(mv, "json"), exist_ok=True)
    with open(os.path.join(mv, "json", "action_count.json"), "w") as f:
        json.dump([{"video": f"c{i}.mp4", "question": "How many times?", "candidates": ["1", "2", "3"],
                    "answer": "2"} for i in range(n)], f)
    for i in range(n):
        _mp4(os.path.join(mv, "video", "perception", "videos", f"c{i}.mp4"))
    # Molmo2-VideoCountEval / VideoPointEval: videos as RAW/videos/<id>_2fps.mp4
    for i in range(n):
        _mp4(os.path.join(raw, "videos", f"v{i}_2fps.mp4"))
    _parquet(_hf(raw, "allenai/Molmo2-VideoCountEval", "data", "val-00000-of-00001.parquet"),
             [{"video_id": f"v{i}", "video_source": "youtube", "clip_start": 0.0, "clip_end": 1.5, "count": i,
               "label": "dogs", "question": "How many dogs are there?", "category": "animal",
               "video_duration": 2.0} for i in range(n)])
    m = encode_rle(_mask(32, 48, 10, 5, 30, 25))
    _parquet(_hf(raw, "allenai/Molmo2-VideoPointEval", "data", "val-00000-of-00001.parquet"),
             [{"video_id": f"v{i}", "video_source": "youtube", "width": 48, "height": 32, "video_duration": 2.0,
               "two_fps_timestamps": [0.5, 1.0], "points": [{"x": 20.0, "y": 15.0}, {"x": 22.0, "y": 16.0}],
               "masks": [[{"frame_id": 1, "rle": m}], [{"frame_id": 2, "rle": m}]], "label": "ball"}
              for i in range(n)])
    # Molmo2-VideoTrackEval: rows with per-frame points and RLE masks; clips under RAW/videos/track_eval
    rows = []
    for i in range(n):
        _mp4(os.path.join(raw, "videos", "track_eval", f"clip{i}.mp4"))
        rows.append({"id": f"t{i}", "video": f"full{i}", "clip": f"clip{i}", "fps": 2, "video_dataset": "sav",
                     "start_frame": 0, "end_frame": 3, "w": 48, "h": 32, "exp": "the red car", "mask_id": ["7"],
                     "points": [{"object_id": "7", "points": [[20.0, 15.0], None, [24.0, 16.0], None]}],
                     "masks": [{"object_id": "7", "masks": [m, None, m, None]}]})
    _parquet(_hf(raw, "allenai/Molmo2-VideoTrackEval", "data", "test-00000-of-00001.parquet"), rows)


def _png_mask(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((mask * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# benchmark -> family, for the ones build_raw writes
BUILT = {"countbench_qa": "image_pointing", "pixmo_count_counting": "image_pointing",
         "pointing_eval_v2": "image_pointing", "point_bench": "image_pointing", "chart_qa": "image_qa",
         "real_world_qa_no_instruction": "image_qa", "text_vqa": "image_qa", "video_mme": "video_qa",
         "mvbench": "video_qa", "vixmo_points_count_clip_63s": "video_pointing",
         "vixmo_points_point_eval": "video_pointing", "molmo2_video_track_eval_1fps": "tracking"}
