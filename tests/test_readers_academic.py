"""Academic image / video, single-object tracking, multi-points and hardcodes readers.

Each fixture is written in the layout its source publishes (HF parquet shards under the repo's
config/split paths, the original-site JSON / CSV / TXT files) at the path the registry entry
names, then read through the entry's own reader and reader_kwargs, and the decoded Examples are
checked against the fixture's ground truth (questions, answers, options, clips, points).
"""

import csv
import inspect
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from data_pipelines import registry
from data_pipelines.readers import READERS
from data_pipelines.readers.qa import MC_INSTRUCTION
from data_pipelines.readers.tables import dataset_rows, iter_table
from data_pipelines.schema import Task, validate


def _png(w=40, h=20, value=128):
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _touch(raw, rel, data=b"media bytes (readers do not decode them)"):
    path = raw / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _parquet(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), str(path))


def _json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _csv(path, rows, delimiter=",", header=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        if header:
            w.writerow(list(rows[0]))
        for r in rows:
            w.writerow(list(r.values()) if isinstance(r, dict) else r)


def _prepare(name, raw):
    """The entry's reader over its files under RAW (as the writer runs it), Examples validated."""
    spec = registry.get(name)
    skipped = {}
    out = list(READERS[spec.reader](dataset_rows(spec, str(raw)), media_root=str(raw),
                                    source=name, skipped=skipped, **spec.reader_kwargs))
    for ex in out:
        validate(ex)
    return out, skipped


def _repo(raw, name):
    return raw / "hf" / registry.get(name).repo


def _qa(conv):
    return conv.messages[0].content, conv.messages[1].content


# --- registry coverage ---------------------------------------------------------------------

@pytest.mark.parametrize("stage", sorted(registry.STAGE_MIXTURES))
def test_every_dataset_of_the_stage_mixtures_has_a_reader_that_takes_its_kwargs(stage):
    for entry in registry.STAGE_MIXTURES[stage]:
        spec = registry.get(entry.dataset)
        assert spec.reader in READERS, f"{spec.name} has no registered reader"
        params = inspect.signature(READERS[spec.reader]).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            assert set(spec.reader_kwargs) <= set(params), spec.name
        if spec.media == "manual" or spec.repo is None:
            assert spec.manual or spec.notes, f"{spec.name}: no manual steps to print"


def test_download_list_shows_no_stage2_dataset_without_reader(capsys):
    from data_pipelines import download
    assert download.main(["--stage", "2", "--list"]) == 0
    out = capsys.readouterr().out
    assert "NO READER" not in out and "118 datasets; 118 with a reader" in out
    assert "reader image_qa" in out and "reader video_qa" in out and "by hand:" in out


# --- academic image families --------------------------------------------------------------

def test_vqa2_message_lists_use_the_most_common_answer_and_count_missing_images(tmp_path):
    rows = [{"image": "images/coco/train2014/a.jpg",
             "message_list": [{"question": "What colour?", "answers": ["red", "blue", "red"]},
                              {"question": "How many?", "answers": ["2", "3"]}]},
            {"image": "images/coco/train2014/missing.jpg",
             "message_list": [{"question": "Q", "answers": ["x"]}]}]
    _parquet(_repo(tmp_path, "coco_2014_vqa_multi") / "train/train-00000-of-00001.parquet", rows)
    _parquet(_repo(tmp_path, "coco_2014_vqa_multi") / "validation/train-00000-of-00001.parquet",
             [{"image": "images/coco/val2014/v.jpg",
               "message_list": [{"question": "val", "answers": ["no"]}]}])
    _touch(tmp_path, "images/coco/train2014/a.jpg", _png())
    out, skipped = _prepare("coco_2014_vqa_multi", tmp_path)
    assert len(out) == 1 and skipped == {"missing_media": 1}       # validation never read
    ex = out[0]
    assert ex.images[0].path == "images/coco/train2014/a.jpg" and ex.task == Task.VQA
    assert [_qa(c) for c in ex.conversations] == [("What colour?", "red"), ("How many?", "2")]
    assert {c.style for c in ex.conversations} == {"vqa2"}


def test_a_okvqa_multiple_choice_and_okvqa_flattened_raw_answers(tmp_path):
    _touch(tmp_path, "images/coco/train2017/b.jpg", _png())
    rows = [{"image": "images/coco/train2017/b.jpg",
             "message_list": [{"question": "Which animal?", "choices": ["cat", "dog", "cow"],
                               "answer_idx": 1, "direct_answers": ["dog", "dog", "puppy"]}]}]
    _parquet(_repo(tmp_path, "a_okvqa_mc") / "train/train-00000-of-00001.parquet", rows)
    (mc,), _ = _prepare("a_okvqa_mc", tmp_path)
    (da,), _ = _prepare("a_okvqa_da", tmp_path)
    assert _qa(mc.conversations[0]) == ("Which animal?" + MC_INSTRUCTION + "A. cat\nB. dog\nC. cow",
                                        "B. dog")
    assert _qa(da.conversations[0]) == ("Which animal?", "dog")
    assert (mc.conversations[0].style, da.conversations[0].style) == ("a_okvqa_mc", "a_okvqa_da")

    ok = [{"image": "images/coco/train2014/c.jpg", "image_id": 3,
           "qas": [{"question": "q1", "question_id": 1, "answers": [{"raw_answer": "tea"}] * 2},
                   {"question": "q2", "question_id": 2, "answers": [{"raw_answer": "milk"}]}]}]
    _touch(tmp_path, "images/coco/train2014/c.jpg", _png())
    _parquet(_repo(tmp_path, "okvqa") / "train/train-00000-of-00001.parquet", ok)
    out, _ = _prepare("okvqa", tmp_path)
    assert [[_qa(c) for c in ex.conversations] for ex in out] == [[("q1", "tea")], [("q2", "milk")]]
    assert len({ex.id for ex in out}) == 2


def test_chart_qa_embedded_images_and_human_augmented_weights(tmp_path):
    rows = [{"image": {"bytes": _png(30, 10), "path": None}, "query": "Max value?",
             "label": ["42"], "human_or_machine": 0},
            {"image": {"bytes": _png(30, 10), "path": None}, "query": "Min value?",
             "label": ["7"], "human_or_machine": 1}]
    _parquet(_repo(tmp_path, "chart_qa_weighted") / "data/train-00000-of-00001.parquet", rows)
    _parquet(_repo(tmp_path, "chart_qa_weighted") / "data/test-00000-of-00001.parquet", rows[:1])
    out, _ = _prepare("chart_qa_weighted", tmp_path)
    assert [_qa(ex.conversations[0]) for ex in out] == [("Max value?", "42"), ("Min value?", "7")]
    assert out[0].images[0].data == _png(30, 10) and out[0].id != out[1].id
    w = [ex.meta["example_weight"] for ex in out]
    assert w == pytest.approx([2 * 20901 / 28299, 2 * 7398 / 28299])


def test_cosyn_explanations_multidoc_image_cap_and_mantis_parallel_lists(tmp_path):
    qa = {"question": ["Q1", "Q2"], "explanation": ["Because A.", "Because B."],
          "answer": ["A", "B"]}
    _parquet(_repo(tmp_path, "cosyn_chart_exp") / "chart/train-00000-of-00001.parquet",
             [{"id": "c1", "image": {"bytes": _png(), "path": None}, "qa_pairs": qa}])
    _parquet(_repo(tmp_path, "cosyn_chart_exp") / "chart/validation-00000-of-00001.parquet",
             [{"id": "v1", "image": {"bytes": _png(), "path": None}, "qa_pairs": qa}])
    (ex,), _ = _prepare("cosyn_chart_exp", tmp_path)
    assert [_qa(c) for c in ex.conversations] == [("Q1", "Because A. Answer: A"),
                                                  ("Q2", "Because B. Answer: B")]
    assert ex.conversations[0].style == "cosyn_chart_exp"

    img = {"bytes": _png(), "path": None}
    _parquet(_repo(tmp_path, "cosyn_multidoc_doc_exp") / "doc/train-00000-of-00001.parquet",
             [{"id": "m2", "images": [img] * 3, "qa_pairs": qa},
              {"id": "m6", "images": [img] * 6, "qa_pairs": qa}])
    out, skipped = _prepare("cosyn_multidoc_doc_exp", tmp_path)
    assert [len(e.images) for e in out] == [3] and skipped == {"filtered": 1}
    assert out[0].task == Task.MULTI_IMAGE

    for i in range(2):
        _touch(tmp_path, f"mantis-instruct/nlvr2/train_images/{i}.jpg", _png())
    paths = [f"mantis-instruct/nlvr2/train_images/{i}.jpg" for i in range(2)]
    _parquet(_repo(tmp_path, "mantis_instruct_nlvr2_multi_only") / "data/train-00000-of-00001.parquet",
             [{"example_id": "e1", "subset": "nlvr2", "images": paths, "mc_question": ["Same?"],
               "oe_question": ["Same"], "direct_answer": ["yes"], "choices": [["yes", "no"]],
               "correct_choice_idx": [0]},
              {"example_id": "e2", "subset": "nlvr2", "images": paths[:1], "mc_question": ["x"],
               "oe_question": ["x"], "direct_answer": ["y"], "choices": [["y", "n"]],
               "correct_choice_idx": [1]}])
    out, skipped = _prepare("mantis_instruct_nlvr2_multi_only", tmp_path)
    assert len(out) == 1 and skipped == {"filtered": 1}        # single-image rows dropped
    assert _qa(out[0].conversations[0]) == ("Same?" + MC_INSTRUCTION + "A. yes\nB. no", "A. yes")
    assert [r.path for r in out[0].images] == paths


def test_science_qa_hint_options_and_image_only(tmp_path):
    rows = [{"image": {"bytes": _png(), "path": None}, "question": "Which is a mammal?",
             "hint": "Look at the animals.", "choices": ["frog", "whale"], "answer": 1},
            {"image": None, "question": "no image", "hint": "", "choices": ["a", "b"], "answer": 0}]
    _parquet(_repo(tmp_path, "science_qa_img") / "data/train-00000-of-00001.parquet", rows)
    out, skipped = _prepare("science_qa_img", tmp_path)
    assert skipped == {"filtered": 1}
    assert _qa(out[0].conversations[0]) == (
        "Look at the animals.\nWhich is a mammal?" + MC_INSTRUCTION + "A. frog\nB. whale",
        "B. whale")


def test_docvqa_json_and_st_vqa_holds_out_molmo2_validation_questions(tmp_path):
    _touch(tmp_path, "docqa/documents/d1.png", _png())
    _json(tmp_path / "docqa/train_v1.0_withQT.json", {"dataset_name": "docvqa", "data": [
        {"questionId": 1, "question": "What is the date?", "answers": ["1 May", "1 May", "May 1"],
         "image": "documents/d1.png", "docId": 9, "data_split": "train"}]})
    (ex,), _ = _prepare("doc_qa", tmp_path)
    assert _qa(ex.conversations[0]) == ("What is the date?", "1 May")
    assert ex.images[0].path == "docqa/documents/d1.png" and ex.conversations[0].style == "doc_qa"

    data = [{"question_id": i, "question": f"q{i}", "answers": [f"a{i}"], "file_path": "x.jpg"}
            for i in range(1030)]
    _json(tmp_path / "scene-text/train_task_3.json", {"data": data})
    _touch(tmp_path, "scene-text/x.jpg", _png())
    out, _ = _prepare("st_qa", tmp_path)
    order = sorted(data, key=lambda r: r["question_id"])
    np.random.RandomState(63069).shuffle(order)
    assert sorted(_qa(e.conversations[0])[0] for e in out) == sorted(r["question"]
                                                                     for r in order[1024:])


def test_figure_qa_groups_questions_per_image_and_tabmwp_keyed_problems(tmp_path):
    _json(tmp_path / "figureqa/train1/qa_pairs.json", {"qa_pairs": [
        {"image_index": 0, "question_string": "Is Red the max?", "answer": 1, "question_id": 0},
        {"image_index": 0, "question_string": "Is Blue the min?", "answer": 0, "question_id": 1},
        {"image_index": 5, "question_string": "Is Green high?", "answer": 1, "question_id": 2}]})
    _touch(tmp_path, "figureqa/train1/png/0.png", _png())
    out, skipped = _prepare("figure_qa", tmp_path)
    assert skipped == {"missing_media": 1}
    assert [_qa(c) for c in out[0].conversations] == [("Is Red the max?", "1"),
                                                      ("Is Blue the min?", "0")]
    assert out[0].images[0].path == "figureqa/train1/png/0.png"

    _json(tmp_path / "tabmwp/problems_train.json",
          {"17": {"question": "How many apples?", "answer": "4", "choices": None}})
    _touch(tmp_path, "tabmwp/tables/17.png", _png())
    (ex,), _ = _prepare("tabwmp_da", tmp_path)
    assert _qa(ex.conversations[0]) == ("How many apples?", "4")
    assert ex.images[0].path == "tabmwp/tables/17.png"


def test_ai2d_letter_boxes_are_unlabelled_options(tmp_path):
    _json(tmp_path / "ai2d/questions/3.png.json", {"imageName": "3.png", "questions": {
        "Which label is the sun?": {"answerTexts": ["a", "b", "c", "d"], "correctAnswer": 2,
                                    "abcLabel": True, "questionId": "3-0"},
        "What eats grass?": {"answerTexts": ["lion", "cow"], "correctAnswer": 1,
                             "abcLabel": False, "questionId": "3-1"}}})
    _touch(tmp_path, "ai2d/images/3.png", _png())
    (ex,), _ = _prepare("ai2_diagram_v2_mix_transparent", tmp_path)
    abc, text = ex.conversations
    assert _qa(abc) == ("Which label is the sun?" + MC_INSTRUCTION + "A\nB\nC\nD", "C")
    assert abc.style == "ai2_diagram_no_letter"
    assert _qa(text) == ("What eats grass?" + MC_INSTRUCTION + "A. lion\nB. cow", "B. cow")


# --- academic video families --------------------------------------------------------------

V = "video_datasets"


def test_intent_qa_csv_gives_open_and_multiple_choice_per_question(tmp_path):
    _csv(tmp_path / f"{V}/IntentQA/train.csv", [
        {"video_id": "123", "frame_count": 10, "width": 1, "height": 1, "question": "why run",
         "answer": "2", "qid": 0, "type": "CW", "a0": "late", "a1": "fun", "a2": "rain",
         "a3": "dog", "a4": "bus"}])
    _touch(tmp_path, f"{V}/IntentQA/videos/123.mp4")
    (ex,), _ = _prepare("intent_qa", tmp_path)
    mc, oe = ex.conversations
    assert _qa(mc) == ("why run" + MC_INSTRUCTION + "A. late\nB. fun\nC. rain\nD. dog\nE. bus",
                       "C. rain")
    assert _qa(oe) == ("why run", "rain") and (mc.style, oe.style) == ("video_multiple_choice",
                                                                      "video_short_answer")
    assert ex.video.path == f"{V}/IntentQA/videos/123.mp4" and ex.video.start_s is None


def test_star_questions_are_grouped_per_clip_with_its_times(tmp_path):
    qs = [{"question_id": f"q{i}", "video_id": "ABC12", "start": 1.5, "end": 9.0,
           "question": f"What did they do {i}?", "answer": "Opened the door.",
           "choices": [{"choice_id": 0, "choice": "Sat down."},
                       {"choice_id": 1, "choice": "Opened the door."}]} for i in range(12)]
    qs.append(dict(qs[0], question_id="other", start=20.0, end=30.0))
    _json(tmp_path / f"{V}/STAR/STAR_train.json", qs)
    _touch(tmp_path, f"{V}/Charades/Charades_v1/ABC12.mp4")
    out, _ = _prepare("star", tmp_path)
    clips = sorted({(e.video.start_s, e.video.end_s) for e in out})
    assert clips == [(1.5, 9.0), (20.0, 30.0)]
    first = [e for e in out if e.video.start_s == 1.5]
    assert sorted(len(e.conversations) for e in first) == [4, 10, 10]  # 24 turns, <= 10 each
    assert _qa(first[0].conversations[0])[1] == "B. Opened the door."


def test_sutd_header_rows_how2qa_negatives_and_clevrer_folders(tmp_path):
    header = ["record_id", "vid_id", "vid_filename", "perspective", "q_body", "q_type",
              "option0", "option1", "option2", "option3", "answer"]
    lines = [header, [1, 5, "b_1.mp4", "", "Is it raining?", "U", "yes", "no", "", "", 1]]
    p = tmp_path / f"{V}/SUTD-TrafficQA/R2_train.jsonl"
    p.parent.mkdir(parents=True)
    p.write_text("\n".join(json.dumps(x) for x in lines))
    _touch(tmp_path, f"{V}/SUTD-TrafficQA/compressed_videos/b_1.mp4")
    (ex,), _ = _prepare("sutd_trafficqa", tmp_path)
    assert _qa(ex.conversations[0])[1] == "B. no"

    _csv(tmp_path / f"{V}/how2QA/how2QA_train_release.csv",
         [["vidA", "[10:25]", "cut", "fry", "boil", "What does he do?", "stir"]], header=False)
    _touch(tmp_path, f"{V}/how2QA/video-clips/vidA_10.0_25.0.webm")
    (ex,), _ = _prepare("how2qa", tmp_path)
    prompt, answer = _qa(ex.conversations[0])
    options = prompt.split(MC_INSTRUCTION)[1].split("\n")
    assert sorted(o[3:] for o in options) == ["boil", "cut", "fry", "stir"]
    assert answer in options and answer.endswith("stir")
    assert ex.video.path.endswith("video-clips/vidA_10.0_25.0.webm")

    _json(tmp_path / f"{V}/CLEVRER/train.json", [{"scene_index": 10042,
          "video_filename": "video_10042.mp4", "questions": [
              {"question_id": 0, "question": "How many cubes?", "answer": "2"},
              {"question_id": 1, "question": "Which is true?", "choices": [
                  {"choice_id": 0, "choice": "A hits B", "answer": "wrong"},
                  {"choice_id": 1, "choice": "B hits C", "answer": "correct"}]},
              {"question_id": 2, "question": "Several correct?", "choices": [
                  {"choice_id": 0, "choice": "x", "answer": "correct"},
                  {"choice_id": 1, "choice": "y", "answer": "correct"}]}]}])
    _touch(tmp_path, f"{V}/CLEVRER/video_10000-11000/video_10042.mp4")
    out, skipped = _prepare("clevrer", tmp_path)
    assert [_qa(c)[1] for c in out[0].conversations] == ["2", "B. B hits C"]
    assert skipped == {"bad_annotation": 1}


def test_llava_video_conversations_become_turns(tmp_path):
    root = _repo(tmp_path, "llava_video_mc_academic")
    _json(root / "0_30_s_nextqa/0_30_s_nextqa_mc_qa_processed.json", [
        {"id": "x1", "data_source": "0_30_s_nextqa", "video": "NextQA/1.mp4", "conversations": [
            {"from": "human", "value": "<image>\nWhat happens?\nA. a\nB. b"},
            {"from": "gpt", "value": " B. b "}]}])
    _json(root / "0_30_s_nextqa/0_30_s_nextqa_oe_qa_processed.json", [
        {"id": "x1", "data_source": "0_30_s_nextqa", "video": "NextQA/1.mp4", "conversations": [
            {"from": "human", "value": "open?"}, {"from": "gpt", "value": "yes"}]}])
    _touch(tmp_path, f"hf/{registry.get('llava_video_mc_academic').repo}/0_30_s_nextqa/NextQA/1.mp4")
    (mc,), _ = _prepare("llava_video_mc_academic", tmp_path)
    assert _qa(mc.conversations[0]) == ("What happens?\nA. a\nB. b", "B. b")
    (oe,), _ = _prepare("llava_video_oe_academic", tmp_path)
    assert _qa(oe.conversations[0]) == ("open?", "yes")


def test_activitynet_segments_and_qa_coin_subset_and_charades_lines(tmp_path):
    base = tmp_path / f"{V}/ActivityNet"
    _json(base / "activity_net.v1-3.min.json", {"version": "1.3", "database": {
        "v_1": {"subset": "training", "annotations": [
            {"segment": [2.5, 10.0], "label": "Surfing"}, {"segment": [4.0, 3.0], "label": "bad"}]}}})
    _json(base / "train_q.json", [{"question_id": "v_1_0", "video_name": "v_1",
                                   "question": "is the man wet"}])
    _json(base / "train_a.json", [{"question_id": "v_1_0", "answer": "yes", "type": 3}])
    _touch(tmp_path, f"{V}/ActivityNet/all-videos/v_1.mp4")
    out, skipped = _prepare("activitynet_all_qa", tmp_path)
    by_clip = {(e.video.start_s, e.video.end_s): e for e in out}
    assert _qa(by_clip[(2.5, 10.0)].conversations[0]) == ("What action is being performed?",
                                                          "Surfing")
    assert _qa(by_clip[(None, None)].conversations[0]) == ("is the man wet?", "yes")
    assert skipped == {"bad_annotation": 1}                     # end <= start

    _json(tmp_path / f"{V}/coin/COIN.json", {"database": {
        "c1": {"subset": "training", "annotation": [{"segment": [1.0, 4.0], "label": "pour"}]},
        "c2": {"subset": "testing", "annotation": [{"segment": [1.0, 4.0], "label": "cut"}]}}})
    _touch(tmp_path, f"{V}/coin/videos/c1.mkv")
    (ex,), skipped = _prepare("coin_all_qa", tmp_path)
    assert ex.video.path == f"{V}/coin/videos/c1.mkv" and skipped == {"filtered": 1}

    _json(tmp_path / f"{V}/youcook2/youcookii_annotations_trainval.json", {"database": {
        "y1": {"subset": "training", "recipe_type": "101", "annotations": [
            {"segment": [30, 42], "sentence": "add the onions", "id": 0}]}}})
    _touch(tmp_path, f"{V}/youcook2/videos/y1.mp4")
    out, _ = _prepare("youcook2_all_qa", tmp_path)
    got = {(e.video.start_s, e.video.end_s): [(_qa(c), c.style) for c in e.conversations]
           for e in out}
    assert got == {(30, 42): [(("What action is being performed?", "add the onions."),
                               "youcook2_label")],
                   (None, None): [(("30-42", "add the onions."),
                                   "video_clip_short_caption_start_end")]}

    p = tmp_path / f"{V}/Charades/charades_sta_train.txt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("AO8RW 0.0 6.9##a person is putting a book on a shelf.\n")
    _touch(tmp_path, f"{V}/Charades/Charades_v1/AO8RW.mp4")
    (ex,), _ = _prepare("charades_sta_all_qa", tmp_path)
    assert (ex.video.start_s, ex.video.end_s) == (0.0, 6.9)
    assert _qa(ex.conversations[0])[1] == "a person is putting a book on a shelf."


def test_tgif_tab_separated_csv_and_camerabench_negatives(tmp_path):
    root = _repo(tmp_path, "tgif")
    _csv(root / "Train_action_question.csv", [
        {"gif_name": "tumblr_1", "question": "what does the man do 3 times", "a1": "nod",
         "a2": "wave", "a3": "jump", "a4": "clap", "a5": "spin", "answer": "1", "vid_id": "1",
         "key": "1"}], delimiter="\t")
    _csv(root / "Train_count_question.csv", [
        {"gif_name": "tumblr_1", "question": "how many times does the man nod", "answer": "3",
         "vid_id": "1", "key": "2"}], delimiter="\t")
    _touch(tmp_path, f"{V}/TGIF/videos/tumblr_1.mp4")
    (ex,), _ = _prepare("tgif", tmp_path)
    assert [_qa(c)[1] for c in ex.conversations] == ["B. wave", "wave", "3"]
    assert [c.style for c in ex.conversations] == ["video_multiple_choice", "video_short_answer",
                                                   "video_short_answer"]

    _parquet(_repo(tmp_path, "camerabench_qa") / "camerabench_qa.parquet", [
        {"video_path": "clip1.mp4", "mc_qa_list": [
            {"Question": "Does the camera pan left?", "Answer": "Yes",
             "NegativeAnswers": ["No"]}]}])
    _touch(tmp_path, f"{V}/CameraBench/train/clip1.mp4")
    (ex,), _ = _prepare("camerabench_qa", tmp_path)
    prompt, answer = _qa(ex.conversations[0])
    assert answer.endswith("Yes") and answer in prompt and "No" in prompt


def test_qv_highlights_segments_and_human_qa_youtube_layout(tmp_path):
    _json(tmp_path / "qvh.json", [])  # unrelated file: never read
    p = tmp_path / f"{V}/QVHighlights/highlight_train_release.jsonl"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"qid": 7, "query": "A dog runs.", "vid": "abc_60.0_210.0",
                             "duration": 150, "relevant_windows": [[2, 10], [20, 34]]}) + "\n")
    _touch(tmp_path, f"{V}/QVHighlights/videos/abc_60.0_210.0.mp4")
    (ex,), _ = _prepare("qv_highlights", tmp_path)
    assert _qa(ex.conversations[0]) == (
        "Here is a query: A dog runs. Where are all the segments for the query? Report the "
        "segments in seconds.", "Segments: [2-10], [20-34]")

    _parquet(_repo(tmp_path, "molmo2_human_qa") / "data/HumanQA-00000-of-00001.parquet", [
        {"video_id": "yt1", "question": " What is shown? ", "answer": "A beach. "},
        {"video_id": "yt1", "question": "Colour?", "answer": "Blue"}])
    _touch(tmp_path, f"{V}/youtube-cc/youtube-cc-kw/yt1/yt1 - clip.mp4")
    (ex,), _ = _prepare("molmo2_human_qa", tmp_path)
    assert [_qa(c) for c in ex.conversations] == [("What is shown?", "A beach."),
                                                  ("Colour?", "Blue")]
    assert ex.video.path == f"{V}/youtube-cc/youtube-cc-kw/yt1/yt1 - clip.mp4"


def test_academic_video_points_times_are_relative_to_the_clip(tmp_path):
    row = {"subset": "lvvis", "video_name": "00042", "dataset": None, "category": "Dog",
           "count": 3, "timestamps": [71.0, 70.0], "video_duration": 200.0,
           "clip_start_time": 68.5, "clip_end_time": 120.0,
           "points": [[{"x": 10.0, "y": 20.0}], [{"x": 50.0, "y": 50.0}, {"x": 5.0, "y": 5.0}]]}
    _parquet(_repo(tmp_path, "academic_points_clip_63s_2fps") / "data/train-00000-of-00001.parquet",
             [row, dict(row, count=61)])
    _touch(tmp_path, f"{V}/LV-VIS/train/videos-2fps/00042.mp4")
    out, skipped = _prepare("academic_points_clip_63s_2fps", tmp_path)
    assert skipped == {"filtered": 1}                       # > 60 points
    (ex,) = out
    assert (ex.video.start_s, ex.video.end_s) == (68.5, 120.0)
    assert [p.time for p in ex.points] == [1.5, 2.5]        # 70 - 68.5, 71 - 68.5
    assert ex.points[0].xy == [(0.05, 0.05), (0.5, 0.5)]
    answer = ex.conversations[0].messages[1].content
    assert 'coords="1.5 1 050 050 2 500 500;2.5 3 100 200">dog</points>' in answer
    assert answer.endswith("shows a total of 3.")


# --- single-object tracking, multi-points, hardcodes -----------------------------------------

def test_single_object_tracking_reads_its_config_and_source_video_dir(tmp_path):
    traj = [{"frame": f, "time": f / 2, "points": [{"id": 0, "point": [64.0 + f, 36.0],
                                                    "occluded": f == 1}]} for f in range(3)]
    row = {"id": "got-1", "video": "GOT-10k_Train_000001", "fps": 10, "sampling_fps": 2,
           "width": 640, "height": 360, "expression": "the bird", "mask_id": ["0"],
           "start_frame": 0, "end_frame": 2, "frame_trajectories": traj}
    root = _repo(tmp_path, "got10k_sot_from_bbox")
    _parquet(root / "got10k/train-00000-of-00001.parquet", [row])
    _parquet(root / "lasot/train-00000-of-00001.parquet", [dict(row, id="lasot-1")])
    _touch(tmp_path, f"{V}/video_track/GOT-10k/videos/GOT-10k_Train_000001.mp4")
    (ex,), _ = _prepare("got10k_sot_from_bbox", tmp_path)
    assert ex.task == Task.TRACKING and ex.video.path.endswith("GOT-10k/videos/"
                                                               "GOT-10k_Train_000001.mp4")
    assert ex.tracks[0].points == [(0.0, 0.1, 0.1), (1.0, 66 / 640, 0.1)]  # occluded frame dropped
    assert ex.conversations[0].style == "single_point_track"
    assert 'starting from <tracks coords="0.0 1 100 100">' in ex.conversations[0].messages[0].content


def test_pixmo_multi_points_per_image_groups_and_hardcodes_per_image(tmp_path):
    paths = ["pixmo_images/aa", "pixmo_images/bb"]
    for p in paths:
        _touch(tmp_path, p, _png())
    _parquet(_repo(tmp_path, "pixmo_multi_points") / "data/train-00000-of-00001.parquet", [
        {"images": paths, "labels": ["Red cars", "red car"],
         "normalized_labels": ["red car", "red car"],
         "points": [[{"x": 10.0, "y": 10.0}], [{"x": 50.0, "y": 120.0}]]}])
    (ex,), _ = _prepare("pixmo_multi_points", tmp_path)
    assert ex.conversations[0].messages[1].content == (
        '<points coords="1 1 100 100;2 2 500 1000">Red cars</points>')
    assert [(p.image, p.xy) for p in ex.points] == [(0, [(0.1, 0.1)]), (1, [(0.5, 1.0)])]

    _parquet(_repo(tmp_path, "molmo2_hardcodes") / "data/train-00000-of-00001.parquet", [
        {"questions": ["Who are you?", "Your name?"], "response": "I am Molmo.", "images": []},
        {"questions": ["What is this?"], "response": "A logo.", "images": ["pixmo_images/aa"]}])
    out, _ = _prepare("molmo2_hardcodes", tmp_path)
    assert [(_qa(e.conversations[0]), len(e.images)) for e in out] == [
        (("Who are you?", "I am Molmo."), 0), (("Your name?", "I am Molmo."), 0),
        (("What is this?", "A logo."), 1)]
    assert out[0].meta["pair_with_random_media"] and out[0].task == Task.TEXT


def test_iter_table_parses_csv_txt_and_keyed_json(tmp_path):
    _json(tmp_path / "k.json", {"a": {"x": 1}, "b": {"x": 2}})
    assert list(iter_table(str(tmp_path / "k.json"))) == [{"x": 1, "_key": "a"},
                                                          {"x": 2, "_key": "b"}]
    _json(tmp_path / "l.json", [{"x": 1}])
    assert list(iter_table(str(tmp_path / "l.json"), record_path="database")) == [{"x": 1}]
    from data_pipelines.readers.tables import table_files
    _csv(tmp_path / "hf/allenai/Molmo2-TGIF/Train_count_question.csv", [{"a": 1}])
    _csv(tmp_path / "hf/allenai/Molmo2-TGIF/.cache/huggingface/Train_count_question.csv", [{"a": 1}])
    assert [os.path.relpath(f, tmp_path) for f in table_files(registry.get("tgif"), str(tmp_path))
            ] == ["hf/allenai/Molmo2-TGIF/Train_count_question.csv"]      # hub cache skipped
    (tmp_path / "t.txt").write_text("one\n\ntwo\n")
    assert [r["line"] for r in iter_table(str(tmp_path / "t.txt"))] == ["one", "two"]
    assert os.path.exists(tmp_path / "k.json")


# --- end to end through the real hub client --------------------------------------------------

def _parquet_bytes(rows):
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def test_academic_image_and_video_sets_download_prepare_and_decode_via_the_hub(hub, tmp_path):
    from data_pipelines import download, writer
    from data_pipelines.schema import deserialize

    chart = [{"image": {"bytes": _png(30, 10, v), "path": None}, "query": f"Value {v}?",
              "label": [str(v)], "human_or_machine": v % 2} for v in (10, 11, 12)]
    hub.datasets["HuggingFaceM4/ChartQA"] = {
        "data/train-00000-of-00001.parquet": _parquet_bytes(chart),
        "data/val-00000-of-00001.parquet": _parquet_bytes(chart[:1]),
        "data/test-00000-of-00001.parquet": _parquet_bytes(chart[:1]), "README.md": b"# card"}
    cam = [{"video_path": "c1.mp4", "mc_qa_list": [
                {"Question": "Does the camera zoom in?", "Answer": "No",
                 "NegativeAnswers": ["Yes", "Unclear"]}]},
           {"video_path": "absent.mp4", "mc_qa_list": [
                {"Question": "Pan?", "Answer": "Yes", "NegativeAnswers": ["No"]}]}]
    hub.datasets["allenai/Molmo2-CameraBenchTrain"] = {
        "camerabench_qa.parquet": _parquet_bytes(cam), "other_split.parquet": b"never fetched"}
    raw, prep = tmp_path / "raw", tmp_path / "prep"
    specs = [registry.get("chart_qa_weighted"), registry.get("camerabench_qa")]
    summary = download.download_datasets(specs, str(raw), workers=2, images=False)
    assert summary.ok == ["chart_qa_weighted", "camerabench_qa"] and not summary.failed
    assert "camerabench_qa" in summary.manual                    # its videos are manual
    assert "/datasets/allenai/Molmo2-CameraBenchTrain/resolve/" + \
        "0123456789abcdef0123456789abcdef01234567/other_split.parquet" not in hub.fetched("/datasets/")
    _touch(raw, f"{V}/CameraBench/train/c1.mp4")                 # the user's manual step

    for name, n in (("chart_qa_weighted", 3), ("camerabench_qa", 1)):
        index = writer.prepare(name, str(raw), str(prep))
        assert index["num_examples"] == n
    chart_out = [deserialize(r) for r in writer.open_source(str(prep), "chart_qa_weighted")]
    assert [(_qa(e.conversations[0]), e.meta["example_weight"] > 1) for e in chart_out] == [
        (("Value 10?", "10"), True), (("Value 11?", "11"), False), (("Value 12?", "12"), True)]
    assert Image.open(io.BytesIO(chart_out[1].images[0].data)).getpixel((0, 0)) == (11, 11, 11)
    (cam_ex,) = [deserialize(r) for r in writer.open_source(str(prep), "camerabench_qa")]
    prompt, answer = _qa(cam_ex.conversations[0])
    assert prompt.startswith("Does the camera zoom in?" + MC_INSTRUCTION) and answer[3:] == "No"
    assert cam_ex.video.path == f"{V}/CameraBench/train/c1.mp4"
    assert writer.load_index(str(prep), "camerabench_qa")["skipped"] == {"missing_media": 1}


def test_tvqa_clip_from_ts_with_clip_relative_subtitles(tmp_path):
    root = _repo(tmp_path, "tvqa_with_sub")
    qa = {"q": "Who knocks?", "a0": "Sheldon", "a1": "Penny", "a2": "Raj", "a3": "Amy",
          "a4": "Leonard", "answer_idx": 1, "ts": "10.5-20.0", "vid_name": "s01e02_seg01_clip_00",
          "show_name": "The Big Bang Theory", "qid": 1}
    for name, rows in (("tvqa_train.jsonl", [qa]), ("tvqa_preprocessed_subtitles.jsonl", [
            {"vid_name": "s01e02_seg01_clip_00", "sub": [
                {"start": 2.0, "end": 5.0, "text": "Before the clip."},
                {"start": 11.0, "end": 13.5, "text": "Penny? Penny?"},
                {"start": 19.0, "end": 22.0, "text": "Coming!"},
                {"start": 25.0, "end": 26.0, "text": "After."}]}])):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    _touch(tmp_path, f"{V}/TVQA/videos/s01e02_seg01_clip_00.mp4")
    (ex,), _ = _prepare("tvqa_with_sub", tmp_path)
    assert (ex.video.start_s, ex.video.end_s) == (10.5, 20.0)
    prompt, answer = _qa(ex.conversations[0])
    assert prompt.startswith("Who knocks?" + MC_INSTRUCTION)  # subtitles follow the video, not the question
    assert ex.meta["subtitles"] == [[0.5, 3.0, "Penny? Penny?"], [8.5, 11.5, "Coming!"]]
    assert ex.conversations[0].style == "video_multiple_choice_w_subtitle"
    assert answer == "B. Penny"


def test_countix_questions_come_from_the_class_template_file(tmp_path):
    root = _repo(tmp_path, "countix_oe")
    _csv(root / "annotations/countix_train_mapped.csv", [
        {"video_path": "train/jumping/abc.mp4", "class": "jumping jacks", "count": 7}])
    _json(root / "annotations/class_to_question.json",
          {"jumping jacks": ["How many jumping jacks are done?", "Count the jumping jacks."]})
    _touch(tmp_path, f"{V}/kinetics/kinetics700/train/jumping/abc.mp4")
    (ex,), _ = _prepare("countix_oe", tmp_path)
    assert _qa(ex.conversations[0]) == ("How many jumping jacks are done?", "7")


def test_video_localized_narratives_captions_from_a_saved_arrow_dataset(tmp_path):
    root = _repo(tmp_path, "video_localized_narratives_caption") / "hf_dataset"
    root.mkdir(parents=True)
    table = pa.Table.from_pylist([{"id": "vln1", "video": "oops/oops_video/train/a.mp4",
                                   "captions": ["A man slips on ice.", "A dog watches."],
                                   "actor_names": ["Man", "Dog"]}])
    with pa.OSFile(str(root / "data-00000-of-00001.arrow"), "wb") as f:
        with pa.ipc.new_stream(f, table.schema) as w:
            w.write_table(table)
    (root / "state.json").write_text("{}")
    _touch(tmp_path, f"{V}/oops/oops_video/train/a.mp4")
    (ex,), _ = _prepare("video_localized_narratives_caption", tmp_path)
    assert [_qa(c) for c in ex.conversations] == [
        ("Describe what the Man does in this video.", "A man slips on ice."),
        ("Describe what the Dog does in this video.", "A dog watches.")]
    assert ex.task == Task.VIDEO_CAPTION


def test_funqa_open_tasks_without_timestamp_tasks_plus_mc_file(tmp_path):
    root = _repo(tmp_path, "funqa")
    _json(root / "FunQA_train.json", [
        {"task": "H2", "visual_input": "H_A_1.mp4", "instruction": "Why is it funny?",
         "output": "The cat falls."},
        {"task": "H1", "visual_input": "H_A_1.mp4", "instruction": "When?", "output": "[1, 3]"}])
    _json(root / "Funqa_mcqa_v1.json", [
        {"visual_input": "H_A_1.mp4", "gt": "2", "instruction":
         "Watch the video.\nThe Question is: What happens?\n The Options are: "
         "['Options 1: A dog barks', 'Options 2: A cat falls']"}])
    _touch(tmp_path, f"hf/{registry.get('funqa').repo}/train/train_humor/H_A_1.mp4")
    (ex,), skipped = _prepare("funqa", tmp_path)
    assert [_qa(c) for c in ex.conversations] == [
        ("Why is it funny?", "The cat falls."),
        ("What happens?" + MC_INSTRUCTION + "A. A dog barks\nB. A cat falls", "B. A cat falls")]
    assert skipped == {"filtered": 1}


def test_nextqa_maps_video_ids_through_the_vidor_map(tmp_path):
    base = tmp_path / f"{V}/NeXTQA"
    _csv(base / "train.csv", [{"video": "2440175990", "frame_count": 1, "width": 1, "height": 1,
                               "question": "why did the boy run", "answer": "0", "qid": 1,
                               "type": "CW", "a0": "to catch", "a1": "b", "a2": "c", "a3": "d",
                               "a4": "e"}])
    _json(base / "map_vid_vidorID.json", {"2440175990": "0000/2440175990"})
    _touch(tmp_path, f"{V}/NeXTQA/NExTVideo-all-videos/0000/2440175990.mp4")
    (ex,), _ = _prepare("nextqa_mc", tmp_path)
    assert ex.video.path == f"{V}/NeXTQA/NExTVideo-all-videos/0000/2440175990.mp4"
    assert _qa(ex.conversations[0])[1] == "A. to catch"


def test_paxion_ssv2_and_ego4d_antonyms(tmp_path):
    root = _repo(tmp_path, "paxion")
    _json(root / "ssv2/antonyms/train_with_rel_path.json", [
        {"id": "1", "rel_vid_path": "1.webm", "label": "Pushing a cup",
         "label_action_antonym_clip_text": "Pulling a cup"}])
    p = root / "ego4d/egoclip_subset_action_antonyms_train_val_test_split/train.jsonl"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"video_uid": "u1", "clip_start": 3.0, "clip_end": 4.5,
                             "clip_text": "#C c opens the door",
                             "action_antonym_clip_text": "#C c closes the door"}) + "\n")
    _touch(tmp_path, f"{V}/sth-sth-v2/videos/1.webm")
    _touch(tmp_path, f"{V}/Ego4d/ego4d_data/v2/full_scale/u1.mp4")
    out, _ = _prepare("paxion", tmp_path)
    got = {(e.video.path.rsplit("/", 1)[-1], e.video.start_s, e.video.end_s): _qa(e.conversations[0])
           for e in out}
    assert got == {
        ("1.webm", None, None): ("What activity does the video depict?" + MC_INSTRUCTION +
                                 "A. Pushing a cup\nB. Pulling a cup\nC. Not sure", "A. Pushing a cup"),
        ("u1.mp4", 3.0, 4.5): ("What activity does the video depict?" + MC_INSTRUCTION +
                               "A. C opens the door\nB. C closes the door\nC. Not sure",
                               "A. C opens the door")}
