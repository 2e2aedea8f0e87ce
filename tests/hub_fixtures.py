"""Small copies of the Molmo2 datasets in their published layouts, served by tests/hub_server.py.

Each builder adds one HF dataset repo to a `StandInHub` (parquet shards named as the hub names
them, `data/<split>-00000-of-00001.parquet`, with the card's column names and types, a README and
the hub client's usual neighbours) and the images its rows point at, and returns ground truth:
which rows must become examples, where their points are (the images carry a coloured marker at
each point so tests can check pixels), and which rows must be skipped and why.

Layouts: allenai/pixmo-cap, pixmo-points, pixmo-count (train/validation/test), CoSyn-point
(train/validation), molmo2-tulu4-classified (cards in shared/molmo2_datasets.md section 6;
CoSyn-point as allenai/molmo2 `CoSynPoint` reads it).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from hub_server import StandInHub, refused_url

MARK = (255, 0, 255)  # marker colour drawn at every ground-truth point
README = b"---\nlicense: odc-by\n---\n# stand-in copy for tests\n"


def parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def marked_image(w: int, h: int, points_px: list[tuple[float, float]], fmt: str = "PNG",
                 seed: int = 0) -> bytes:
    """A w x h image, dark background, a 3x3 MARK square at each (x, y) pixel point."""
    rng = np.random.default_rng(seed)
    arr = (rng.integers(0, 60, (h, w, 3))).astype(np.uint8)
    for x, y in points_px:
        xi, yi = int(round(x)), int(round(y))
        arr[max(yi - 1, 0):yi + 2, max(xi - 1, 0):xi + 2] = MARK
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


@dataclass
class Truth:
    """What a dataset fixture must produce: examples by id and skip counts by reason."""

    points: dict[str, list[list[tuple[float, float]]]] = field(default_factory=dict)  # 0-1
    ids: set[str] = field(default_factory=set)
    held_out_ids: set[str] = field(default_factory=set)  # validation/test: never in training
    skipped: dict[str, int] = field(default_factory=dict)
    failed_images: dict[str, int] = field(default_factory=dict)  # download reasons


def _repo(hub: StandInHub, repo: str, shards: dict[str, pa.Table], extra: dict | None = None):
    files = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n",
             "README.md": README, **{p: parquet(t) for p, t in shards.items()}}
    files.update(extra or {})
    hub.datasets[repo] = files


def pixmo_cap(hub: StandInHub) -> Truth:
    """allenai/pixmo-cap: image_url, caption, transcripts; 4 good images, 1 dead (404), 1 HTML
    page answered 200 and 1 refused connection."""
    t = Truth()
    urls = []
    for i in range(4):
        hub.web[f"cap/{i}.jpg"] = marked_image(48 + 8 * i, 40, [], fmt="JPEG", seed=i)
        urls.append(hub.web_url(f"cap/{i}.jpg"))
        t.ids.add(urls[-1])
    urls += [hub.web_url("cap/dead.jpg"), hub.html_url("cap/parked.jpg"), refused_url("c.jpg")]
    t.skipped["missing_media"] = 3
    t.failed_images = {"http_404": 1, "html_page": 1, "connection_refused": 1}
    table = pa.table({"image_url": urls,
                      "caption": [f"A long caption of picture {i}." for i in range(len(urls))],
                      "transcripts": [[f"spoken words {i}", f"more words {i}"]
                                      for i in range(len(urls))]})
    _repo(hub, "allenai/pixmo-cap", {"data/train-00000-of-00001.parquet": table})
    return t


def pixmo_points(hub: StandInHub) -> dict[str, Truth]:
    """allenai/pixmo-points: one row per (image, label), points [{x, y}] in 0-100, both
    collection methods; a sha256 mismatch, a count/points disagreement (bad row) and an image
    of allenai/pixmo-points-eval (held out of training, as Molmo2)."""
    pointing, counting = Truth(), Truth()
    rows = []
    specs = [("pointing", [(25.0, 50.0), (75.0, 20.0)], "cats"),
             ("pointing", [(10.0, 90.0)], "dogs"),
             ("counting", [(30.0, 30.0), (60.0, 60.0), (90.0, 30.0)], "dots")]
    for i, (method, pts, label) in enumerate(specs):
        w, h = 80 + 10 * i, 60
        data = marked_image(w, h, [(x / 100 * (w - 1), y / 100 * (h - 1)) for x, y in pts],
                            seed=10 + i)
        hub.web[f"points/{i}.png"] = data
        url = hub.web_url(f"points/{i}.png")
        rows.append({"image_url": url, "image_sha256": hashlib.sha256(data).hexdigest(),
                     "points": [{"x": x, "y": y} for x, y in pts], "count": len(pts),
                     "label": label, "collection_method": method})
        truth = pointing if method == "pointing" else counting
        truth.ids.add(url)
        truth.points[url] = [[(x / 100, y / 100) for x, y in pts]]
    # a second label on image 0 whose count disagrees with its points: that branch is dropped
    rows.append({**rows[0], "label": "mice", "count": 5})
    pointing.skipped["bad_annotation"] = 1
    # an image whose bytes differ from the card's sha256
    hub.web["points/tampered.png"] = marked_image(20, 20, [], seed=99)
    rows.append({"image_url": hub.web_url("points/tampered.png"), "image_sha256": "0" * 64,
                 "points": [{"x": 1.0, "y": 1.0}], "count": 1, "label": "x",
                 "collection_method": "counting"})
    counting.skipped["missing_media"] = 1
    counting.failed_images = {"sha256_mismatch": 1}
    # an image of the pointing eval set (allenai/pixmo-points-eval, test): Molmo2 holds it out
    hub.web["points/eval.png"] = marked_image(30, 30, [(10, 10)], seed=77)
    eval_url = hub.web_url("points/eval.png")
    rows.append({"image_url": eval_url, "image_sha256": None, "points": [{"x": 33.0, "y": 33.0}],
                 "count": 1, "label": "eval thing", "collection_method": "pointing"})
    pointing.skipped["held_out_eval"] = counting.skipped["held_out_eval"] = 1  # before method filter
    pointing.held_out_ids.add(eval_url)
    _repo(hub, "allenai/pixmo-points-eval", {"data/test-00000-of-00001.parquet": pa.Table.from_pylist(
        [{"image_url": eval_url, "image_sha256": None, "label": "eval thing",
          "points": [{"x": 33.0, "y": 33.0}]}])})
    schema = pa.schema([("image_url", pa.string()), ("image_sha256", pa.string()),
                        ("points", pa.list_(pa.struct([("x", pa.float64()), ("y", pa.float64())]))),
                        ("count", pa.int64()), ("label", pa.string()),
                        ("collection_method", pa.string())])
    _repo(hub, "allenai/pixmo-points",
          {"data/train-00000-of-00001.parquet": pa.Table.from_pylist(rows, schema)},
          {"metadata.json": json.dumps({"not": "rows"}).encode()})  # a stray JSON: never read
    return {"pixmo_points_train": pointing, "pixmo_points_high_freq_train": counting}


def pixmo_count(hub: StandInHub) -> Truth:
    """allenai/pixmo-count: train/validation/test shards; points {x: [], y: []} in pixels."""
    t = Truth()
    schema = pa.schema([("image_url", pa.string()), ("image_sha256", pa.string()),
                        ("count", pa.int32()),
                        ("points", pa.struct([("x", pa.list_(pa.float32())),
                                              ("y", pa.list_(pa.float32()))])),
                        ("label", pa.string())])
    shards = {}
    for split, n in (("train", 3), ("validation", 1), ("test", 1)):
        rows = []
        for i in range(n):
            w, h = 64 + 16 * i, 48
            pts = [(8.0 + 20 * k + 4 * i, 12.0 + 10 * k) for k in range(i + 1)]
            data = marked_image(w, h, pts, seed=20 + i)
            hub.web[f"count/{split}/{i}.png"] = data
            url = hub.web_url(f"count/{split}/{i}.png")
            rows.append({"image_url": url, "image_sha256": hashlib.sha256(data).hexdigest(),
                         "count": len(pts), "label": "coins",
                         "points": {"x": [p[0] for p in pts], "y": [p[1] for p in pts]}})
            if split == "train":
                t.ids.add(url)
                t.points[url] = [[(x / w, y / h) for x, y in pts]]
            else:
                t.held_out_ids.add(url)
        shards[f"data/{split}-00000-of-00001.parquet"] = pa.Table.from_pylist(rows, schema)
    _repo(hub, "allenai/pixmo-count", shards)
    return t


def cosyn_point(hub: StandInHub) -> Truth:
    """allenai/CoSyn-point: id, image {bytes, path}, questions, answer_points [{x: [], y: []}]
    (0-100), names; train + validation; one row with more x than y values (bad row)."""
    t = Truth()
    schema = pa.schema([("id", pa.string()),
                        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("questions", pa.list_(pa.string())),
                        ("answer_points", pa.list_(pa.struct([("x", pa.list_(pa.float64())),
                                                              ("y", pa.list_(pa.float64()))]))),
                        ("names", pa.list_(pa.string()))])
    shards = {}
    for split, n in (("train", 2), ("validation", 1)):
        rows = []
        for i in range(n):
            w, h = 100, 50 + 10 * i
            qs = [[(20.0, 40.0), (60.0, 80.0)], [(50.0, 50.0)]]
            all_px = [(x / 100 * (w - 1), y / 100 * (h - 1)) for q in qs for x, y in q]
            rid = f"cosyn_{split}_{i}"
            rows.append({"id": rid, "image": {"bytes": marked_image(w, h, all_px, seed=30 + i),
                                              "path": f"{rid}.png"},
                         "questions": ["Point to the bars.", "Point to the title."],
                         "answer_points": [{"x": [p[0] for p in q], "y": [p[1] for p in q]}
                                           for q in qs],
                         "names": ["bars", "title"]})
            if split == "train":
                t.ids.add(rid)
                t.points[rid] = [[(x / 100, y / 100) for x, y in q] for q in qs]
            else:
                t.held_out_ids.add(rid)
        if split == "train":
            rows.append({**rows[0], "id": "cosyn_bad",
                         "answer_points": [{"x": [1.0, 2.0], "y": [1.0]}, {"x": [], "y": []}]})
            t.skipped["bad_annotation"] = 1
        shards[f"data/{split}-00000-of-00001.parquet"] = pa.Table.from_pylist(rows, schema)
    _repo(hub, "allenai/CoSyn-point", shards)
    return t


def tulu(hub: StandInHub) -> Truth:
    """allenai/molmo2-tulu4-classified: id, messages [{role, content}], source, category,
    first_message_qwen3_tokens, empty_messages, has_special_token; one row over the 2,304-token
    cap (filtered) and one with messages null (malformed)."""
    t = Truth()
    rows = []
    for i in range(4):
        rows.append({"id": f"tulu_{i}", "messages": [
            {"role": "user", "content": f"What is {i} plus {i}?"},
            {"role": "assistant", "content": f"It is {2 * i}."}],
            "source": "flan", "category": "math", "first_message_qwen3_tokens": 8,
            "empty_messages": False, "has_special_token": False})
        t.ids.add(f"tulu_{i}")
    rows.append({**rows[0], "id": "tulu_long", "first_message_qwen3_tokens": 5000})
    rows.append({**rows[0], "id": "tulu_null", "messages": None})
    t.skipped = {"filtered": 1, "malformed_record": 1}
    _repo(hub, "allenai/molmo2-tulu4-classified",
          {"data/train-00000-of-00001.parquet": pa.Table.from_pylist(rows)})
    return t


def stage1(hub: StandInHub) -> dict[str, Truth]:
    """Every stage-1 dataset on `hub`: {registry name: ground truth}."""
    cap = pixmo_cap(hub)
    return {"pixmo_cap_with_transcripts": cap, **pixmo_points(hub),
            "pixmo_count_train": pixmo_count(hub), "cosyn_point": cosyn_point(hub),
            "tulu4_max_2304": tulu(hub)}


# --- Molmo2 video sets -------------------------------------------------------------------------

def frame_coded_video(n_frames: int, fps: float = 2.0, size: int = 16) -> bytes:
    """An MP4 whose frame k is a flat colour with red = 3k: the frame shown at a time is readable."""
    from data_pipelines.media import encode_video
    frames = np.zeros((n_frames, size, size, 3), np.uint8)
    for k in range(n_frames):
        frames[k] = (min(3 * k, 255), 90, 160)
    return encode_video(frames, fps)


def frame_at(pixels: np.ndarray) -> int:
    """Inverse of `frame_coded_video`: the frame index a decoded frame shows."""
    return int(round(float(pixels[..., 0].mean()) / 3))


_VP_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("video_source", pa.string()), ("clip_start", pa.float64()),
    ("clip_end", pa.float64()), ("video_duration", pa.float64()), ("label", pa.string()),
    ("question", pa.string()), ("count", pa.int64()), ("category", pa.string()),
    ("two_fps_timestamps", pa.list_(pa.float64())),
    ("points", pa.list_(pa.list_(pa.struct([("x", pa.float64()), ("y", pa.float64())])))),
    ("annotator_unsure", pa.bool_())])


def molmo2_video_point(hub: StandInHub) -> tuple[Truth, dict[str, bytes]]:
    """allenai/Molmo2-VideoPoint: configs as directories (`object/`, `comparative_reference/`),
    split train, generated videos in the repo (`generated_videos/<prefix>-2fps/<id>_2fps.mp4`),
    the YouTube id -> URL mapping JSON at the root. Returns (truth, manual videos: path under
    RAW -> bytes) - the YouTube video a user downloads by hand.

    Truth.points[id] holds the annotated absolute timestamps per point group."""
    t = Truth()
    gen = frame_coded_video(20)             # 10 s generated video, used whole
    long_video = frame_coded_video(84)      # 42 s file standing in for a 100 s video's clip
    rows = {"object": [
        {"video_id": "sora2/gen1", "video_source": "generated", "clip_start": None,
         "clip_end": None, "video_duration": 10.0, "label": "ball", "question": "Point to the ball.",
         "count": 2, "category": "object", "two_fps_timestamps": [1.5, 4.0],
         "points": [[{"x": 25.0, "y": 50.0}], [{"x": 75.0, "y": 50.0}]], "annotator_unsure": False},
        {"video_id": "yt_long", "video_source": "youtube", "clip_start": 30.0, "clip_end": 40.0,
         "video_duration": 100.0, "label": "car", "question": "Point to the cars.", "count": 1,
         "category": "object", "two_fps_timestamps": [33.5],
         "points": [[{"x": 10.0, "y": 20.0}]], "annotator_unsure": False},
        {"video_id": "yt_gone", "video_source": "youtube", "clip_start": 0.0, "clip_end": 5.0,
         "video_duration": 5.0, "label": "dog", "question": "Point to the dog.", "count": 1,
         "category": "object", "two_fps_timestamps": [1.0],
         "points": [[{"x": 10.0, "y": 20.0}]], "annotator_unsure": False}],
        "comparative_reference": [
        {"video_id": "sora2/gen1", "video_source": "generated", "clip_start": None,
         "clip_end": None, "video_duration": 10.0, "label": "bigger ball",
         "question": "Point to the bigger ball.", "count": 1, "category": "comparative reference",
         "two_fps_timestamps": [2.0], "points": [[{"x": 40.0, "y": 40.0}]],
         "annotator_unsure": False}]}
    t.ids = {"sora2/gen1_ball", "yt_long_car", "sora2/gen1_bigger ball"}
    t.points = {"sora2/gen1_ball": [[(1.5,)], [(4.0,)]], "yt_long_car": [[(33.5,)]],
                "sora2/gen1_bigger ball": [[(2.0,)]]}
    t.skipped = {"missing_media": 1}
    shards = {f"{cfg}/train-00000-of-00001.parquet": pa.Table.from_pylist(r, _VP_SCHEMA)
              for cfg, r in rows.items()}
    _repo(hub, "allenai/Molmo2-VideoPoint", shards, {
        "generated_videos/sora2-2fps/gen1_2fps.mp4": gen,
        "youtube_id_to_urls_mapping.json": json.dumps(
            {"yt_long": {"youtube": "https://youtube.com/watch?v=yt_long"}}).encode()})
    manual = {"video_datasets/youtube-cc/youtube-cc-temporal-2fps/yt_long_2fps.mp4": long_video}
    return t, manual


def molmo2_track_instruction(hub: StandInHub) -> tuple[dict[str, Truth], dict[str, bytes]]:
    """allenai/molmo2-track-instruction: configs track / ground / single_point_track, each
    `<config>/train-00000-of-00001.parquet`; clips built by hand as
    `video_datasets/video_track/<Source>/videos/train/<clip>.mp4`. Truth.points[id] holds each
    object's (time, x, y) in 0-1."""
    def row(rid, clip, times_xy):
        return {"id": rid, "video": f"{clip}_full", "clip": clip, "video_dataset": "mose",
                "fps": 2, "sampling_fps": 2, "start_frame": 0, "end_frame": 19, "width": 200,
                "height": 100, "expression": "the red car", "mask_id": ["1"],
                "frame_trajectories": [{"frame": int(t * 2), "time": t, "points": [
                    {"id": 1, "point": [x, y], "occluded": False},
                    {"id": 9, "point": [1.0, 1.0], "occluded": False}]}  # 9: not in mask_id
                    for t, x, y in times_xy]}
    truths, shards = {}, {}
    for task in ("track", "ground", "single_point_track"):
        traj = [(0.5, 20.0, 10.0), (2.0, 100.0, 50.0), (4.5, 180.0, 90.0)]
        rid = f"{task}_1"
        shards[f"{task}/train-00000-of-00001.parquet"] = pa.Table.from_pylist(
            [row(rid, "mose_clip1", traj)])
        truths[f"molmo2_video_{task}"] = Truth(ids={rid}, points={rid: [
            [(t, x / 200, y / 100) for t, x, y in traj]]})
    _repo(hub, "allenai/molmo2-track-instruction", shards)
    manual = {"video_datasets/video_track/MOSE/videos/train/mose_clip1.mp4": frame_coded_video(12)}
    return truths, manual


def molmo2_cap(hub: StandInHub) -> tuple[Truth, dict[str, bytes]]:
    """allenai/Molmo2-Cap: splits train and val (`data/<split>-00000-of-00001.parquet`); videos
    from YouTube by hand under video_datasets/youtube-cc/youtube-cc-*/<id>/<file>."""
    cols = ("video_caption", "merged_caption", "video_frame_merged_caption")
    train = [{"video_id": "capA", "annotation_score": 4, **{c: f"{c} of A" for c in cols}},
             {"video_id": "capLow", "annotation_score": 2, **{c: f"{c} low" for c in cols}}]
    val = [{"video_id": "capVal", "annotation_score": 5, **{c: f"{c} val" for c in cols}}]
    _repo(hub, "allenai/Molmo2-Cap", {"data/train-00000-of-00001.parquet": pa.Table.from_pylist(train),
                                      "data/val-00000-of-00001.parquet": pa.Table.from_pylist(val)})
    t = Truth(ids={"capA"}, held_out_ids={"capVal"}, skipped={"filtered": 1})
    video = frame_coded_video(4)
    return t, {"video_datasets/youtube-cc/youtube-cc-kw/capA/capA.mp4": video,
               "video_datasets/youtube-cc/youtube-cc-kw/capVal/capVal.mp4": video}


# --- CoSyn QA -----------------------------------------------------------------------------------

def cosyn_400k(hub: StandInHub) -> Truth:
    """allenai/CoSyn-400K: configs as directories (`chart/`, `table/`), splits train/validation;
    id, image {bytes, path}, qa_pairs {question, explanation, answer}. Truth for cosyn_chart_exp."""
    qa = pa.struct([("question", pa.list_(pa.string())), ("explanation", pa.list_(pa.string())),
                    ("answer", pa.list_(pa.string()))])
    schema = pa.schema([("id", pa.string()),
                        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("qa_pairs", qa)])
    shards = {}
    for cfg in ("chart", "table"):
        for split in ("train", "validation"):
            rows = [{"id": f"{cfg}_{split}_{i}", "image": {"bytes": marked_image(30, 20, [], seed=i),
                                                           "path": None},
                     "qa_pairs": {"question": [f"What is bar {i}?"], "explanation": ["It reads 4."],
                                  "answer": ["4"]}} for i in range(2)]
            shards[f"{cfg}/{split}-00000-of-00001.parquet"] = pa.Table.from_pylist(rows, schema)
    _repo(hub, "allenai/CoSyn-400K", shards)
    return Truth(ids={"chart_train_0", "chart_train_1"},
                 held_out_ids={"chart_validation_0", "table_train_0"})


def cosyn_multidoc(hub: StandInHub) -> Truth:
    """allenai/Molmo2-SynMultiImageQA config `chart`: id, images [{bytes, path}], qa_pairs,
    metadata {num_images}; a 6-page document is filtered (max 5)."""
    rows = []
    for i, n in enumerate((2, 6)):
        rows.append({"id": f"doc{i}", "images": [{"bytes": marked_image(20, 20, [], seed=k),
                                                  "path": None} for k in range(n)],
                     "qa_pairs": {"question": ["Which page?"], "explanation": ["Page 2 says so."],
                                  "answer": ["2"]}, "metadata": {"num_images": n}})
    _repo(hub, "allenai/Molmo2-SynMultiImageQA",
          {"chart/train-00000-of-00001.parquet": pa.Table.from_pylist(rows)})
    return Truth(ids={"doc0"}, skipped={"filtered": 1})
