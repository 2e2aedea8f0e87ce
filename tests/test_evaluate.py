"""The eval runner's scoring of parsed answers against synthetic ground truth."""

from data_pipelines.schema import Box, Conversation, Example, Message, Points

from molmo2_jax.evaluate import score, summarize, target_boxes


def _pointing_example():
    boxes = [Box("red circle", 0.1, 0.1, 0.3, 0.3), Box("red circle", 0.6, 0.6, 0.9, 0.9),
             Box("blue square", 0.4, 0.0, 0.5, 0.1)]
    conv = Conversation([Message("user", "Point to the red circles."), Message("assistant", "")], style="pointing")
    return Example("p0", "synthetic", "pointing", [conv], points=[Points("red circles", [(0.2, 0.2), (0.75, 0.75)])],
                   boxes=boxes, count=2)


def test_target_boxes_are_the_ones_holding_annotated_points():
    assert [b.label for b in target_boxes(_pointing_example())] == ["red circle", "red circle"]


def test_pointing_score_counts_hits_misses_and_duplicates():
    ex = _pointing_example()
    # 100x100 image: one hit in the first circle (twice: a duplicate), one point on the blue square
    text = '<points coords="1 1 200 200 2 210 220 3 450 050">red circles</points>'
    rec = score(ex, text, 100, 100)
    assert (rec["tp"], rec["n_pred"], rec["n_gt"]) == (1, 3, 2)
    s = summarize([rec])
    assert abs(s["pointing_precision"] - 1 / 3) < 1e-9 and abs(s["pointing_recall"] - 0.5) < 1e-9


def test_counting_and_garbage_answers():
    conv = Conversation([Message("user", "How many blue squares are there?"), Message("assistant", "")])
    ex = Example("c0", "synthetic", "counting", [conv], count=3)
    good = score(ex, 'Counting the <points coords="1 1 100 100 2 200 200 3 300 300">blue squares</points> shows a '
                     "total of 3.", 64, 64)
    bad = score(ex, "<points coords=\"1 1", 64, 64)
    assert good["correct"] == 1.0 and bad["correct"] == 0.0
    assert summarize([good, bad])["counting_accuracy"] == 0.5
