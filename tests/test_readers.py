"""Readers over small files in each real upstream schema, and ArrayRecord shards of their output."""

import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from data_pipelines import readers, registry, writer
from data_pipelines.readers import pixmo_image_path
from data_pipelines.schema import Task, deserialize, validate


def _png(w=40, h=20):
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _put_image(raw, url, w=40, h=20):
    path = raw / pixmo_image_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png(w, h))


def _read(reader, rows_or_path, raw, **kw):
    path = rows_or_path
    if isinstance(rows_or_path, list):
        path = str(raw / f"{reader}.parquet")
        pq.write_table(pa.Table.from_pylist(rows_or_path), path)
    skipped = {}
    out = list(readers.read(reader, [path], media_root=str(raw), source=reader, skipped=skipped,
                            **kw))
    for ex in out:
        validate(ex)
    return out, skipped


def test_pixmo_cap_caption_and_transcript_tree_and_missing_images_counted(tmp_path):
    _put_image(tmp_path, "http://a/1.jpg")
    rows = [{"image_url": "http://a/1.jpg", "caption": "A grey square.",
             "transcripts": ["um a grey thing", "grey"]},
            {"image_url": "http://a/never-downloaded.jpg", "caption": "x", "transcripts": []}]
    out, skipped = _read("pixmo_cap", rows, tmp_path, transcripts=True)
    assert skipped == {"missing_media": 1}
    (ex,) = out
    assert ex.task == Task.CAPTION and ex.images[0].path == pixmo_image_path("http://a/1.jpg")
    assert [c.style for c in ex.conversations] == ["long_caption", "transcript"]
    assert ex.conversations[0].messages[1].content == "A grey square."
    assert ex.conversations[1].messages[1].content in ("um a grey thing", "grey")


def test_pixmo_points_groups_labels_of_one_image_and_filters_by_method(tmp_path):
    _put_image(tmp_path, "u1")
    rows = [
        {"image_url": "u1", "image_sha256": "s", "points": [{"x": 50.0, "y": 25.0}], "count": 1,
         "label": "dog", "collection_method": "pointing"},
        {"image_url": "u1", "image_sha256": "s", "points": [{"x": 10.0, "y": 90.0},
                                                            {"x": 100.4, "y": 5.0}],
         "count": 2, "label": "cats", "collection_method": "pointing"},
        {"image_url": "u1", "image_sha256": "s", "points": [], "count": 0, "label": "birds",
         "collection_method": "counting"},
    ]
    (ex,), skipped = _read("pixmo_points", rows, tmp_path, collection_method="pointing", modes=("pointing",))
    assert [p.label for p in ex.points] == ["dog", "cats"]
    assert ex.points[1].xy == [(0.1, 0.9), (1.0, 0.05)]  # percent -> fraction, clipped
    assert ex.conversations[1].messages[1].content == \
        '<points coords="1 1 100 900 2 1000 050">cats</points>'
    assert ex.images[0].sha256 == "s"


def test_pixmo_count_normalises_pixel_points_with_the_image_size(tmp_path):
    _put_image(tmp_path, "u", w=200, h=100)
    rows = [{"image_url": "u", "image_sha256": "s", "count": 2, "label": "boats",
             "points": {"x": [20.0, 100.0], "y": [50.0, 10.0]}},
            {"image_url": "u", "image_sha256": "s", "count": 3, "label": "bad",
             "points": {"x": [1.0], "y": [1.0]}}]
    (ex,), skipped = _read("pixmo_count", rows, tmp_path, modes=("point_count",))
    assert skipped == {"bad_annotation": 1}
    assert ex.count == 2 and ex.points[0].xy == [(0.1, 0.5), (0.5, 0.1)]
    assert ex.conversations[0].messages[1].content == \
        'Counting the <points coords="1 1 100 500 2 500 100">boats</points> shows a total of 2.'


def test_ask_model_anything_and_cap_qa_become_message_trees(tmp_path):
    _put_image(tmp_path, "u")
    (ama,), _ = _read("pixmo_qa", [
        {"image_url": "u", "image_sha256": "s", "question": "What?", "answer": "This."},
        {"image_url": "u", "image_sha256": "s", "question": "Why?", "answer": "Because."}],
        tmp_path)
    assert len(ama.conversations) == 2 and ama.conversations[1].messages[0].content == "Why?"
    (capqa,), skipped = _read("pixmo_cap_qa", [
        {"image_url": "u", "question": "[USER] Hi? [ASSISTANT] Yes. [USER] More? [ASSISTANT]",
         "answer": "Sure.", "__index_level_0__": 0},
        {"image_url": "u", "question": "no tags", "answer": "x", "__index_level_0__": 1}],
        tmp_path)
    assert [m.content for m in capqa.conversations[0].messages] == ["Hi?", "Yes.", "More?",
                                                                    "Sure."]
    assert skipped == {"bad_annotation": 1}


def test_multi_image_qa_keeps_2_to_5_images(tmp_path):
    for u in "abcdef":
        _put_image(tmp_path, u)
    rows = [{"image_urls": ["a", "b"], "qa_pairs": {"question": ["Same?"], "answer": ["No."]}},
            {"image_urls": ["a"], "qa_pairs": {"question": ["One?"], "answer": ["Yes."]}},
            {"image_urls": list("abcdef"), "qa_pairs": {"question": ["Six?"], "answer": ["Y"]}}]
    (ex,), skipped = _read("pixmo_multi_image_qa", rows, tmp_path)
    assert len(ex.images) == 2 and skipped == {"filtered": 2}


def test_cosyn_point_reads_embedded_images_and_percent_points(tmp_path):
    rows = [{"id": "c1", "image": {"bytes": _png(), "path": None},
             "questions": ["Where is the title?"], "answer_points": [{"x": [50.0], "y": [10.0]}],
             "names": ["title"]},
            {"id": "c2", "image": {"bytes": None, "path": None}, "questions": ["q"],
             "answer_points": [{"x": [], "y": []}], "names": ["n"]}]
    (ex,), skipped = _read("cosyn_point", rows, tmp_path)
    assert ex.images[0].data == _png() and ex.points[0].xy == [(0.5, 0.1)]
    assert ex.conversations[0].messages[1].content == \
        '<points coords="1 1 500 100">title</points>'
    assert skipped == {"missing_media": 1}


def test_tulu_applies_the_molmo2_filters(tmp_path):
    path = tmp_path / "tulu.jsonl"
    rows = [
        {"id": 1, "messages": [{"role": "user", "content": "2+2?"},
                               {"role": "assistant", "content": "4"}],
         "source": "s", "category": "math", "first_message_qwen3_tokens": 5,
         "empty_messages": False, "has_special_token": False},
        {"id": 2, "messages": [{"role": "user", "content": "long"},
                               {"role": "assistant", "content": "x"}],
         "source": "s", "category": "c", "first_message_qwen3_tokens": 5000,
         "empty_messages": False, "has_special_token": False},
        {"id": 3, "messages": [{"role": "system", "content": "be nice"},
                               {"role": "user", "content": "hi"}],
         "source": "s", "category": "c", "first_message_qwen3_tokens": 5,
         "empty_messages": False, "has_special_token": False},
        {"id": 4, "messages": [], "source": "s", "category": "c",
         "first_message_qwen3_tokens": 0, "empty_messages": True, "has_special_token": False},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    (ex,), skipped = _read("tulu", str(path), tmp_path, max_first_message_tokens=2304)
    assert ex.task == Task.TEXT and ex.conversations[0].messages[1].content == "4"
    assert skipped == {"filtered": 3}


def _video(raw, rel):
    path = raw / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"video bytes are not decoded by readers")


def test_molmo2_video_points_bucket_by_count_and_format_timestamps(tmp_path):
    _video(tmp_path, "video_datasets/youtube-cc/youtube-cc-kw-2fps/v1_2fps.mp4")
    row = {"video_id": "v1", "video_source": "youtube", "clip_start": 0.0, "clip_end": 10.0,
           "video_duration": 10.0, "label": "balls", "question": "Point to the balls.",
           "count": 2, "category": "object", "two_fps_timestamps": [0.5, 1.0],
           "points": [[{"x": 10.0, "y": 20.0}], [{"x": 30.0, "y": 40.0}]],
           "annotator_unsure": False}
    (ex,), _ = _read("molmo2_video_points", [row, {**row, "video_id": "gone"}], tmp_path,
                     max_count=5)
    assert ex.video.path == "video_datasets/youtube-cc/youtube-cc-kw-2fps/v1_2fps.mp4"
    assert ex.count == 2
    assert ex.conversations[0].messages[1].content == ('Counting the <points coords="0.5 1 100 '
                                                       '200;1.0 2 300 400">balls</points> shows '
                                                       'a total of 2.')
    _, skipped = _read("molmo2_video_points", [row], tmp_path, min_count=6)
    assert skipped == {"filtered": 1}
    # a 100 s video is used as its [30, 40] s clip: times become clip-relative
    long = {**row, "video_duration": 100.0, "clip_start": 30.0, "clip_end": 40.0,
            "two_fps_timestamps": [31.0, 32.5]}
    (ex,), _ = _read("molmo2_video_points", [long], tmp_path)
    assert (ex.video.start_s, ex.video.end_s) == (30.0, 40.0)
    assert [p.time for p in ex.points] == [1.0, 2.5]
    assert '"1.0 1 100 200;2.5 2 300 400"' in ex.conversations[0].messages[1].content
    no_clip = {**long, "clip_start": None, "clip_end": None}
    outside = {**long, "two_fps_timestamps": [20.0, 32.5]}
    _, skipped = _read("molmo2_video_points", [no_clip, outside], tmp_path)
    assert skipped == {"filtered": 1, "bad_annotation": 1}


def test_molmo2_track_instruction_tracks_and_ground(tmp_path):
    _video(tmp_path, "videos/clip.mp4")
    _video(tmp_path, "video_datasets/video_track/MOSE/videos/train/c_0001.mp4")
    traj = [{"frame": 0, "time": 0.0, "points": [{"id": 7, "point": [50.0, 20.0],
                                                  "occluded": False}]},
            {"frame": 1, "time": 0.5, "points": [{"id": 7, "point": [60.0, 20.0],
                                                  "occluded": True}]},
            {"frame": 2, "time": 1.0, "points": [{"id": 7, "point": [70.0, 30.0],
                                                  "occluded": False}]},
            {"frame": 3, "time": 1.5, "points": [{"id": 7, "point": [80.0, 40.0],
                                                  "occluded": False}]}]
    row = {"id": "t1", "video": "clip", "clip": None, "video_dataset": "mevis", "fps": 6,
           "sampling_fps": 2, "start_frame": 0, "end_frame": 3, "width": 100, "height": 100,
           "expression": "the red car", "mask_id": ["7"], "frame_trajectories": traj}
    (ex,), _ = _read("molmo2_track", [row], tmp_path, task="track", video_dir="videos")
    assert ex.video.path == "videos/clip.mp4"
    assert ex.conversations[0].messages[1].content == \
        '<tracks coords="0.0 1 500 200;1.0 1 700 300;1.5 1 800 400">the red car</tracks>'
    (ground,), _ = _read("molmo2_track", [{**row, "video_dataset": "mose", "clip": "c_0001"}],
                         tmp_path, task="ground", layout="track_instruction")
    assert ground.video.path == "video_datasets/video_track/MOSE/videos/train/c_0001.mp4"
    assert ground.conversations[0].messages[1].content == \
        '<tracks coords="0.0 1 500 200;1.5 1 800 400">the red car</tracks>'


def test_molmo2_cap_and_video_capqa(tmp_path):
    _video(tmp_path, "video_datasets/youtube-cc/youtube-cc-exist/v/some_name.mp4")
    (cap,), skipped = _read("molmo2_cap", [
        {"video_id": "v", "annotation_score": 4, "video_caption": "short",
         "merged_caption": "merged", "video_frame_merged_caption": "long"},
        {"video_id": "v", "annotation_score": 2, "video_caption": "s", "merged_caption": "m",
         "video_frame_merged_caption": "l"}], tmp_path)
    assert [c.messages[1].content for c in cap.conversations] == ["merged", "short", "long"]
    assert cap.video.path == "video_datasets/youtube-cc/youtube-cc-exist/v/some_name.mp4"
    assert skipped == {"filtered": 1}
    (qa,), _ = _read("molmo2_video_capqa", [
        {"video_id": "v", "Question": "What happens?", "Answer": "A dog runs",
         "NegativeAnswers": ["A cat sleeps", "Nothing"], "Category": "action"},
        {"video_id": "v", "Question": "Where?", "Answer": "Park", "NegativeAnswers": ["Moon"],
         "Category": "place"}], tmp_path)
    assert len(qa.conversations) == 2 and qa.id == "molmo2_syn_qa_v"  # one tree per video
    assert qa.conversations[0].style == "video_multiple_choice"
    prompt, answer = (m.content for m in qa.conversations[0].messages)
    letter = answer[0]
    assert f"{letter}. A dog runs" in prompt and answer == f"{letter}. A dog runs"
    (sub,), _ = _read("molmo2_video_capqa", [
        {"video_id": "v", "Question": "What is said?", "Answer": "Hello", "NegativeAnswers": ["Bye"],
         "subtitle": [{"start": 0.5, "end": 1.5, "text": "Hello"}, {"start": 9.0, "end": 9.5, "text": "Bye"}]},
        {"video_id": "v", "Question": "Who?", "Answer": "Ann", "NegativeAnswers": ["Bob"],
         "subtitle": [{"start": 0.5, "end": 1.5, "text": "Hello"}, {"start": 9.0, "end": 9.5, "text": "Bye"}]}],
        tmp_path)
    assert len(sub.conversations) == 2  # SubtitleQA: one message tree per video too
    assert sub.meta["subtitles"] == [[0.5, 1.5, "Hello"], [9.0, 9.5, "Bye"]]
    assert all("Hello\n" not in c.messages[0].content and "Subtitles" not in c.messages[0].content
               for c in sub.conversations)


def test_reader_output_roundtrips_through_arrayrecord_shards(tmp_path):
    raw = tmp_path / "raw"
    data = raw / "hf" / "allenai" / "pixmo-count" / "data"
    data.mkdir(parents=True)
    rows = [{"image_url": f"u{i}", "image_sha256": "s", "count": 1, "label": "x",
             "points": {"x": [1.0], "y": [2.0]}} for i in range(7)]
    for i in range(6):
        _put_image(raw, f"u{i}")
    pq.write_table(pa.Table.from_pylist(rows), data / "train-00000-of-00001.parquet")
    index = writer.prepare("pixmo_count_train", str(raw), str(tmp_path / "prep"),
                           examples_per_shard=4)
    # Molmo2's counting="both": every image once as pointing, once as point_count
    assert index["num_examples"] == 12 and len(index["shards"]) == 3
    assert index["skipped"] == {"missing_media": 1}
    src = writer.open_source(str(tmp_path / "prep"), "pixmo_count_train")
    assert len(src) == 12
    ex = deserialize(src[11])
    assert ex.source == "pixmo_count_train" and ex.id == "u5#point_count"
    assert os.path.exists(os.path.join(index["media_root"], ex.images[0].path))
    assert writer.prepared_datasets(str(tmp_path / "prep")) == {"pixmo_count_train": 12}


def test_preparing_a_dataset_without_reader_explains_the_fix(tmp_path, monkeypatch):
    import dataclasses
    spec = dataclasses.replace(registry.get("doc_qa"), reader=None)  # every real entry has one
    monkeypatch.setitem(registry.REGISTRY, "doc_qa", spec)
    with pytest.raises(ValueError, match="no reader yet"):
        writer.prepare("doc_qa", str(tmp_path), str(tmp_path / "prep"))


def test_tulu_drops_molmo2_excluded_subsets_and_folds_system_messages(tmp_path):
    path = tmp_path / "tulu.jsonl"
    ok = {"first_message_qwen3_tokens": 5, "empty_messages": False, "has_special_token": False}
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    rows = [
        {"id": 1, "messages": [{"role": "system", "content": "be brief"}, *chat], "source": "s",
         "category": "general", **ok},
        {"id": 2, "messages": chat, "source": "s", "category": "code", **ok},
        {"id": 3, "messages": chat, "source": "s", "category": "non-english", **ok},
        {"id": 4, "messages": chat, "source": "allenai/puzzle_data_160k-ngram-filtered", "category": "g", **ok},
        {"id": 5, "messages": chat, "source": "allenai/verifiable-reasoning-filtered-o4-mini-filtered",
         "category": "g", **ok},
        {"id": 6, "messages": chat, "source": "allenai/hardcoded-olmo", "category": "g", **ok},
        {"id": 7, "messages": [*chat, {"role": "assistant", "content": "twice"}], "source": "s", "category": "g",
         **ok},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    (ex,), skipped = _read("tulu", str(path), tmp_path, max_first_message_tokens=2304)
    assert [m.role for m in ex.conversations[0].messages] == ["user", "assistant"]
    assert ex.conversations[0].messages[0].content == "System: be brief\nq"
    assert skipped == {"filtered": 6}


def test_pixmo_points_caps_at_60_points_and_yields_both_counting_modes(tmp_path):
    _put_image(tmp_path, "u1")
    pts = lambda n: [{"x": 1.0 + i % 90, "y": 2.0} for i in range(n)]  # noqa: E731
    rows = [{"image_url": "u1", "image_sha256": "s", "points": pts(n), "count": n, "label": label,
             "collection_method": "pointing"} for label, n in (("a", 40), ("b", 30), ("c", 61), ("d", 5))]
    examples, skipped = _read("pixmo_points", rows, tmp_path)
    assert skipped == {"filtered": 1}  # "c" has more than 60 points
    # [a] then [b, d] (40 + 30 > 60), each as pointing and as point_count
    assert [(e.task, [p.label for p in e.points]) for e in examples] == [
        (Task.POINTING, ["a"]), (Task.COUNTING, ["a"]), (Task.POINTING, ["b", "d"]), (Task.COUNTING, ["b", "d"])]
    assert examples[1].conversations[0].style == "point_count"
    assert examples[1].conversations[0].messages[1].content.endswith("shows a total of 40.")
    assert len({e.id for e in examples}) == 4


def test_writer_counts_bad_rows_and_fails_only_on_an_empty_dataset(tmp_path, capsys):
    raw = tmp_path / "raw"
    cosyn = raw / "hf" / "allenai" / "CoSyn-point" / "data"
    cosyn.mkdir(parents=True)
    # every row in a layout the reader cannot use (old guess: per-point dicts; a bare string)
    with open(cosyn / "train-00000-of-00001.jsonl", "w") as f:
        f.write(json.dumps({"id": "a", "image": {"bytes": None}, "questions": ["q"],
                            "answer_points": [[{"x": 1, "y": 2}]], "names": ["n"]}) + "\n")
        f.write(json.dumps("not a row") + "\n")
    tulu = raw / "hf" / "allenai" / "molmo2-tulu4-classified" / "data"
    tulu.mkdir(parents=True)
    rows = [{"id": "t", "messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "hello"}]}, {"id": "bad"}]
    pq.write_table(pa.Table.from_pylist(rows), tulu / "train-00000-of-00001.parquet")
    rc = writer.main(["--dataset", "cosyn_point", "--dataset", "tulu4_max_2304",
                      "--raw", str(raw), "--out", str(tmp_path / "prep")])
    out = capsys.readouterr()
    assert rc == 1
    assert "tulu4_max_2304: 1 examples; skipped: malformed_record 1" in out.out
    assert "EMPTY (1 datasets" in out.err and "cosyn_point: 0 examples" in out.err
    assert "missing_media 1" in out.err and "malformed_record 1" in out.err


def test_cosyn_point_accepts_both_point_list_storages(tmp_path):
    base = {"image": {"bytes": _png(), "path": None}, "questions": ["q"], "names": ["t"]}
    rows = [{**base, "id": "struct_of_lists", "answer_points": [{"x": [50.0], "y": [10.0]}]},
            {**base, "id": "list_of_structs", "answer_points": [[{"x": 50.0, "y": 10.0}]]}]
    for row in rows:
        (tmp_path / row["id"]).mkdir()
        (ex,), _ = _read("cosyn_point", [row], tmp_path / row["id"])
        assert ex.points[0].xy == [(0.5, 0.1)], row["id"]


def test_find_files_selects_split_and_config_and_skips_hub_cache(tmp_path):
    from data_pipelines.readers.base import file_split, find_files
    assert [file_split(p) for p in ("data/train-00000-of-00002.parquet", "val/part-0.parquet",
                                    "test.jsonl", "data/CapQA-00000-of-00003.parquet",
                                    "youtube_id_to_urls_mapping.json")] == \
        ["train", "val", "test", "CapQA", None]
    for rel in ("object/train-00000-of-00001.parquet", "object/validation-00000-of-00001.parquet",
                "comparative_reference/train-00000-of-00001.parquet",
                "animal/train-00000-of-00001.parquet", "youtube_id_to_urls_mapping.json",
                ".cache/huggingface/download/object/train-00000-of-00001.parquet.metadata",
                ".cache/huggingface/trees/abc.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    got = [os.path.relpath(f, tmp_path) for f in find_files(
        str(tmp_path), split="train", configs=("object", "comparative reference"))]
    assert got == ["comparative_reference/train-00000-of-00001.parquet",
                   "object/train-00000-of-00001.parquet"]
    assert len(find_files(str(tmp_path), split="validation")) == 1
    assert find_files(str(tmp_path), ["*/train-*"], split="validation") == [
        str(tmp_path / r) for r in ("animal/train-00000-of-00001.parquet",
                                    "comparative_reference/train-00000-of-00001.parquet",
                                    "object/train-00000-of-00001.parquet")]
