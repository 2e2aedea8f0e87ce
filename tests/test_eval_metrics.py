"""summarize(): per-example predictions and targets to a dict of dataset scores."""

import numpy as np
import pytest

from molmo2_jax.eval import PointTarget, summarize


def test_summarize_vqa_and_anls():
    out = summarize("vqa", ["Two", "cat"], [["2"] * 10, ["dog"] * 10])
    assert out == {"vqa_accuracy": pytest.approx(0.5), "num_examples": 2.0}
    assert summarize("anls", ["helo"], [["hello"]])["anls"] == pytest.approx(0.8)


def test_summarize_multiple_choice_and_counting():
    mc = summarize("multiple_choice", ["B", "cat"], [{"options": ["cat", "dog"], "answer": 1},
                                                     {"options": ["cat", "dog"], "answer": "B"}])
    assert mc["mc_accuracy"] == 0.5
    counts = summarize("counting", ["There are 3", "There are none.", "unsure"], [3, 0, 2])
    assert counts["counting_accuracy"] == pytest.approx(2 / 3)
    assert counts["unparsed_rate"] == pytest.approx(1 / 3)


def test_summarize_pointing_and_tracking():
    pointing = summarize("pointing", [[[5, 5], [6, 6]]], [PointTarget(boxes=np.array([[0, 0, 10, 10]]))])
    assert (pointing["precision_micro"], pointing["recall_micro"]) == (0.5, 1.0)
    tracks = np.zeros((2, 1, 2))
    assert summarize("point_tracking", [tracks], [tracks], threshold=1.0)["accuracy_micro"] == 1.0
    masks = np.zeros((1, 4, 4), dtype=bool)
    assert summarize("region_tracking", [masks], [masks])["j_and_f"] == 1.0


def test_summarize_rejects_unknown_task_and_length_mismatch():
    with pytest.raises(ValueError, match="unknown eval task"):
        summarize("bleu", [], [])
    with pytest.raises(ValueError, match="one of each"):
        summarize("vqa", ["a"], [])


def test_summarize_empty_is_nan():
    assert np.isnan(summarize("vqa", [], [])["vqa_accuracy"])
    assert np.isnan(summarize("pointing", [], [])["f1_micro"])
