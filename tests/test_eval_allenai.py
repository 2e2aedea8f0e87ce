"""allenai/molmo2's scoring reproduced on hand-worked cases from its evaluators (olmo/eval/vqa.py, evaluators.py)."""

import random

import numpy as np
import pytest

from molmo2_jax.eval import choice
from molmo2_jax.eval.masks import decode_rle, encode_rle
from molmo2_jax.eval.pointing import point_bench_correct, point_in_mask, pointing_eval_prf, video_point_prf
from molmo2_jax.eval.scoring import aggregate, point_count_value, score_example, video_count_value
from molmo2_jax.eval.tracking import track_in_mask_prf
from molmo2_jax.eval.vqa import allenai_anls, allenai_vqa_score, clean_vqa_prediction, relaxed_correctness


# --- multiple choice ------------------------------------------------------------------------------

@pytest.mark.parametrize("pred, expected", [
    ("B", 1), ("b", 1), ("B.", 1), ("B. a cat", 1),  # unique prefix
    ("(B)", 1),  # edit distance 2 to "b", 3 to the others
    ("The answer is B", 0),  # every letter 14-15 edits away; "a" (in "answer") ties first -> A
    ("D", 3),
])
def test_mc_option_names_as_allenai_select_mc_option(pred, expected):
    assert choice.select_mc_option(pred, ["A", "B", "C", "D"]) == expected


def test_mc_option_text_prefix_and_substring_rules():
    opts = ["red car", "blue car", "car"]
    assert choice.select_mc_option("blue car.", opts) == 1        # target.startswith(option), unique
    assert choice.select_mc_option("blu", opts) == 1              # option.startswith(target)
    assert choice.select_mc_option("car", opts) == 2              # exact match first


@pytest.mark.parametrize("pred, correct", [("B", True), ("b) a dog", True), ("B.", True), (" B. ped", True),
                                           ("(B)", False), ("The answer is B", False), ("A ball is seen", False)])
def test_em_start_mvbench(pred, correct):
    assert choice.em_start(pred, "B.") is correct


@pytest.mark.parametrize("pred, letter", [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("The answer is B", "B"), ("The best answer is: C", "C"),
    ("I think it is a cat", ""),  # no capital A-D: dropped from the score
    ("All of them look alike, honestly I could not decide which one is right here", "A"),  # "All" has an A
    ("the video shows nothing like that at all so there is no good option to pick here", ""),
])
def test_video_mme_letter(pred, letter):
    assert choice.video_mme_letter(pred) == letter


def test_video_mme_drops_unparsed_answers_from_the_mean():
    meta = {"answer": "B", "duration": "short"}
    recs = [score_example("video_mme", str(i), meta, t) for i, t in enumerate(["B", "(C)", "no idea"])]
    out = aggregate("video_mme", recs)
    assert out["score"] == 0.5 and out["n"] == 3 and abs(out["parsed_rate"] - 2 / 3) < 1e-9


def test_long_video_bench_random_fallback_is_reproducible():
    rng = random.Random(0)
    assert choice.long_video_bench_letter("The answer is D.", 5, rng) == ("D", True)
    letter, parsed = choice.long_video_bench_letter("no clue", 5, random.Random(1))
    assert not parsed and letter in "ABCDE"
    r1 = score_example("long_video_bench", "x", {"options": list("abcde"), "answer": "A"}, "no clue")
    r2 = score_example("long_video_bench", "x", {"options": list("abcde"), "answer": "A"}, "no clue")
    assert r1 == r2 and r1["parsed"] == 0.0


def test_muir_bench_and_nextqa_and_perception_test_rules():
    opts = ["cat", "dog", "bird", "fish"]
    assert choice.muir_bench_letter("(B)", opts) == "B"
    assert choice.muir_bench_letter("B", opts) == "B"
    assert choice.muir_bench_letter("Answer: C) bird", opts) == "C"
    assert choice.muir_bench_letter("it is definitely the bird in the picture", opts) == "C"  # option text
    assert choice.muir_bench_letter("hmm", opts) == "N/A"
    assert choice.nextqa_letter("(A) or maybe (D)", opts + ["eel"], random.Random(0)) == "D"  # the last one
    assert choice.perception_test_index("The answer is C.") == 2
    assert choice.perception_test_index("AB") == -1


# --- VQA ------------------------------------------------------------------------------------------

def test_allenai_vqa_score_has_no_leave_one_out():
    answers = ["two"] * 2 + ["2"] + ["three"] * 7
    assert allenai_vqa_score(answers, "2") == 1.0                   # "two" -> "2": 3 matches
    assert allenai_vqa_score(answers, "Three.") == 1.0
    assert abs(allenai_vqa_score(["yes"], "yes") - 1 / 3) < 1e-9    # one listed answer counts 1/3
    assert allenai_vqa_score("yes", "Yes") == 1.0                   # a str target is exact match


def test_vqa_prediction_cleanup():
    assert clean_vqa_prediction("Let me think.\nAnswer: 42") == "42"
    assert clean_vqa_prediction("cat\ndog\ncat") == "cat"
    assert clean_vqa_prediction("  a   b ") == "a b"


def test_relaxed_correctness_and_anls():
    assert relaxed_correctness("100", "104") and not relaxed_correctness("100", "106")
    assert relaxed_correctness("0.12", "12%")
    assert relaxed_correctness("Yes", "yes") and not relaxed_correctness("yes", "yes.")
    assert allenai_anls("hello", "Hello") == 1.0
    assert abs(allenai_anls("hello", "hellp") - 0.8) < 1e-9
    assert allenai_anls("hello", "abcde") == 0.0


def test_real_world_qa_mc_and_short_answer():
    mc = {"question_type": "multiple_choice", "answer": "B"}
    assert score_example("real_world_qa", "a", mc, "B.")["correct"] == 1.0
    assert score_example("real_world_qa", "a", mc, "The answer is B")["correct"] == 0.0  # allenai picks A
    short = {"question_type": "short_answer", "answer": "3"}
    assert score_example("real_world_qa", "a", short, "Three")["correct"] == 1.0


# --- counting -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, count", [
    ('Counting the <points coords="1 1 100 100 2 200 200 3 300 300">dogs</points> shows a total of 3.', 3),
    ('<points coords="1 1 100 100 1 100 100">dogs</points>', 2),  # duplicate points count twice
    ("There are 3 dogs.", 0), ("three", 0), ("a total of 5", 0),   # allenai overwrites text counts with #points
    ("There are none.", 0),
])
def test_image_point_count_is_the_number_of_points(text, count):
    assert point_count_value(text) == count


@pytest.mark.parametrize("text, count", [
    ("7", 7), ("7.", 7), ("Counting the <points ...>dogs</points> shows a total of 12.", 12),
    ("The total number of dogs is: 4", 4), ("three", None), ("There are none.", None), ("There are 3", None),
])
def test_video_count_reads_integers_and_totals_only(text, count):
    assert video_count_value(text) == count


def test_video_count_close_margin_grows_with_the_count():
    rec = score_example("video_count", "a", {"count": 40}, "43")   # margin 1 + floor(0.05 * 40) = 3
    assert rec["correct"] == 0.0 and rec["close"] == 1.0
    rec = score_example("video_count", "a", {"count": 40}, "44")
    assert rec["close"] == 0.0 and rec["valid"] == 1.0


# --- pointing -------------------------------------------------------------------------------------

def _box_mask(h, w, x0, y0, x1, y1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_point_in_mask_rounds_and_rejects_outside():
    m = _box_mask(10, 10, 2, 2, 4, 4)          # pixels 2..3
    assert point_in_mask(1.6, 2.4, m)           # rounds to (2, 2)
    assert not point_in_mask(1.4, 2.0, m)       # rounds to (1, 2)
    assert not point_in_mask(-0.6, 3, m) and not point_in_mask(9.6, 3, m)  # outside the image


def test_pointing_eval_hand_worked():
    masks = [_box_mask(100, 100, 10, 10, 30, 30), _box_mask(100, 100, 60, 60, 90, 90)]
    gt = [[20, 20], [75, 75]]
    # two hits, one extra point near object 1 (duplicate) -> P 2/3, R 1
    p, r, f1 = pointing_eval_prf([[20, 21], [75, 74], [22, 22]], gt, masks)
    assert (p, r) == (2 / 3, 1.0) and abs(f1 - 0.8) < 1e-6
    # a point outside every mask is matched (by distance) but misses
    p, r, f1 = pointing_eval_prf([[50, 50]], gt, masks)
    assert (p, r, f1) == (0.0, 0.0, 0.0)
    # matching is by distance, not by hits: the closest gt is object 2 although the point lies in mask 1
    masks_overlap = [_box_mask(100, 100, 0, 0, 100, 100), _box_mask(100, 100, 0, 0, 1, 1)]
    assert pointing_eval_prf([[60, 60]], [[10, 10], [60, 61]], masks_overlap)[0] == 0.0
    assert pointing_eval_prf([], [], []) == (1.0, 1.0, 1.0)
    assert pointing_eval_prf([[1, 1]], [], []) == (0.0, 0.0, 0.0)
    assert pointing_eval_prf([], gt, masks) == (0.0, 0.0, 0.0)


def test_pointing_eval_record_from_text_and_rle_masks():
    masks = [_box_mask(50, 100, 10, 10, 30, 30)]
    meta = {"mask_size": [100, 50], "masks": [encode_rle(m) for m in masks], "gt_points": [[20, 20]]}
    rec = score_example("pointing_eval", "a", meta, '<points coords="1 1 200 400">x</points>')  # (20, 20) px
    assert rec["f1"] > 0.99 and rec["num_pred"] == 1


def test_point_bench_needs_every_point_inside():
    m = _box_mask(20, 20, 5, 5, 10, 10)
    assert point_bench_correct([(6.9, 6.9)], m, 20, 20)
    assert not point_bench_correct([(6, 6), (15, 15)], m, 20, 20)   # one point outside the mask
    assert not point_bench_correct([], m, 20, 20)
    assert not point_bench_correct([(6, 25)], m, 20, 20)            # outside the image


def test_point_bench_score_is_the_mean_of_category_means():
    recs = [{"correct": 1.0, "category": "counting"}, {"correct": 0.0, "category": "counting"},
            {"correct": 1.0, "category": "spatial"}]
    out = aggregate("point_bench", recs)
    assert out["score"] == 0.75 and out["acc_counting"] == 0.5


def test_video_point_prf_requires_a_mask_at_that_time():
    m = _box_mask(10, 10, 2, 2, 5, 5)
    tubes = [{0.5: m}]
    gt = [(0.5, 3.0, 3.0)]
    assert video_point_prf([(0.5, 3.2, 3.1)], gt, tubes, 10.0, 10, 10)[2] > 0.99
    assert video_point_prf([(1.0, 3.2, 3.1)], gt, tubes, 10.0, 10, 10) == (0.0, 0.0, 0.0)  # no mask at t=1.0


# --- tracking -------------------------------------------------------------------------------------

def test_track_in_mask_prf_averages_over_frames_with_either():
    m0 = _box_mask(20, 20, 0, 0, 10, 10)
    masks = {0: [m0], 1: [m0]}
    pred = {0: [(5, 5)], 2: [(1, 1)]}              # frame 0 hit; frame 2 has a prediction but no gt
    gt = {0: [(4, 4)], 1: [(4, 4)]}                # frame 1 missed
    out = track_in_mask_prf(pred, gt, lambda f: masks.get(f, []))
    assert out["num_frames"] == 3
    assert abs(out["f1"] - 1 / 3) < 1e-6 and abs(out["precision"] - 1 / 3) < 1e-9
    assert track_in_mask_prf({}, {}, lambda f: [])["f1"] == 1.0


def test_track_record_from_tracks_text():
    m = _box_mask(100, 100, 0, 0, 50, 50)
    meta = {"width": 100, "height": 100, "fps": 2.0, "gt_frames": [[0, [[0, 10.0, 10.0]]], [2, [[0, 20.0, 20.0]]]],
            "masks": [[encode_rle(m), None, encode_rle(m)]]}
    text = '<tracks coords="0.0 1 100 100;1.0 1 200 200">car</tracks>'  # t=1.0 s -> frame 2
    assert score_example("track_in_mask", "a", meta, text)["f1"] > 0.99
    assert score_example("track_in_mask", "a", meta, "no tracks")["f1"] == 0.0


# --- masks ----------------------------------------------------------------------------------------

def test_rle_round_trip_and_known_encoding():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((7, 5)) < 0.4
        assert (decode_rle(encode_rle(m)) == m).all()
        assert (decode_rle(encode_rle(m, compressed=False)) == m).all()
    # column-major runs starting with zeros: [[0, 1], [1, 1]] -> F order [0, 1, 1, 1] -> runs [1, 3]
    assert encode_rle(np.array([[0, 1], [1, 1]], bool), compressed=False)["counts"] == [1, 3]
    with pytest.raises(ValueError):
        decode_rle({"size": [2, 2], "counts": [1, 1]})
