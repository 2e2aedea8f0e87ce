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


def test_evaluate_cli_writes_summary_and_predictions(tiny_inference_dir, tmp_path):
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-m", "molmo2_jax.evaluate", "--config", "configs/demo.py", "--checkpoint",
                          str(tiny_inference_dir / "model"), "--num-examples", "4", "--max-new-tokens", "6",
                          "--out", str(tmp_path / "eval")], cwd=root, env=dict(os.environ, PYTHONPATH=root),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["pointing_n"] == 2 and summary["counting_n"] == 2
    assert 0.0 <= summary["counting_accuracy"] <= 1.0
    lines = (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all("prediction" in json.loads(line) for line in lines)


def test_chance_baseline_is_low_for_small_targets_and_uses_the_count_range():
    from molmo2_jax.evaluate import chance_baseline

    ex = _pointing_example()  # two targets covering 0.04 + 0.09 of the image
    conv = Conversation([Message("user", "How many?"), Message("assistant", "")])
    counts = [Example(f"c{i}", "s", "counting", [conv], count=i) for i in range(4)]
    out = chance_baseline([ex] * 200 + counts)
    assert 0.02 < out["chance_pointing_f1"] < 0.12
    assert out["chance_counting_accuracy"] == 0.25


def test_batched_synthetic_eval_answers_as_one_at_a_time(tiny_inference_dir):
    import molmo2_jax
    from configs import demo
    from molmo2_jax.evaluate import answer, evaluate_examples, synthetic_eval_examples

    model, processor = molmo2_jax.load(str(tiny_inference_dir / "model"))
    examples = synthetic_eval_examples(demo.get_config(), 3)  # prompts of different lengths in one batch
    _, records = evaluate_examples(model, processor, examples, max_new_tokens=8, batch_size=4)
    assert [r["id"] for r in records] == [ex.id for ex in examples]
    assert [r["prediction"] for r in records] == [answer(model, processor, ex, 8) for ex in examples]


def test_held_out_scenes_ask_one_question_whatever_the_training_options():
    from configs import demo
    from molmo2_jax.evaluate import synthetic_eval_examples

    plain = synthetic_eval_examples(demo.get_config(), 24)
    c = demo.get_config()
    c.data.synthetic.update(contrast_questions=("pointing", "counting"), pointing_negatives=0.5, questions_per_image=3)
    varied = synthetic_eval_examples(c, 24)
    assert all(len(ex.conversations) == 1 for ex in varied)
    assert all(ex.count >= 1 for ex in varied if ex.task == "pointing")  # held-out pointing always has targets
    assert [(ex.conversations, ex.images[0].data) for ex in varied] == [(ex.conversations, ex.images[0].data)
                                                                        for ex in plain]
