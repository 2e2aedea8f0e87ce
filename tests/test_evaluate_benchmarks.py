"""`python -m molmo2_jax.evaluate` on Molmo2 benchmarks in their published layouts, end to end on the tiny model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from eval_fixtures import BUILT, build_raw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _evaluate(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "molmo2_jax.evaluate", *args], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("raw"))
    build_raw(d)
    return d


def _ideal_answer(name, ex, image_size):
    """The answer a perfect model gives, written in Molmo2's output formats from the example's ground truth."""
    from molmo2_jax.processing import formats

    m = ex.meta
    if name in ("countbench_qa", "pixmo_count_counting"):
        return formats.format_count([(1, [(0.1 + 0.01 * i, 0.1) for i in range(m["count"])])], "things")
    if name == "pointing_eval_v2":
        w, h = m["mask_size"]
        return formats.format_points([(1, [(x / w, y / h) for x, y in m["gt_points"]])], "x")
    if name == "point_bench":
        from data_pipelines.readers.eval_sets import mask_from_png

        y, x = np.argwhere(mask_from_png(os.path.join(ex_root[0], m["mask_path"])))[0]
        w, h = image_size
        return formats.format_points([(1, [((x + 0.5) / w, (y + 0.5) / h)])], "x")
    if name in ("chart_qa", "text_vqa"):
        return m["answers"][0]
    if name in ("real_world_qa_no_instruction", "video_mme", "mvbench"):
        return m["answer"]
    if name == "vixmo_points_count_clip_63s":
        return str(m["count"])
    w, h = m["width"], m["height"]
    if name == "vixmo_points_point_eval":
        groups = {}
        for t, x, y in m["gt_triplets"]:
            groups.setdefault(float(t), []).append((x / w, y / h))
        return formats.format_points(sorted(groups.items()), "x")
    if name == "molmo2_video_track_eval_1fps":
        per_object = {}
        for f, pts in m["gt_frames"]:
            for k, x, y in pts:
                per_object.setdefault(k, []).append((f / m["fps"], x / w, y / h))
        return formats.format_tracks(list(per_object.values()), "x")
    raise AssertionError(name)


ex_root = [None]


@pytest.mark.parametrize("name", sorted(BUILT))
def test_readers_and_scoring_agree_a_perfect_answer_scores_one(raw, name):
    """Published layout -> reader -> meta -> allenai metric: the ground truth written as an answer scores 1."""
    from data_pipelines.media import load_image

    from molmo2_jax.eval.runner import _mask_loader
    from molmo2_jax.eval.scoring import aggregate, score_example
    from molmo2_jax.evaluate import load_benchmark

    task = load_benchmark(name, raw, None)
    ex_root[0] = task.media_root
    recs = []
    for ex in task.examples:
        size = None
        if ex.images:
            im = load_image(ex.images[0], task.media_root)
            size = (im.shape[1], im.shape[0])
        text = _ideal_answer(name, ex, size)
        recs.append(score_example(task.metric, ex.id, ex.meta, text,
                                  {"image_size": size, "load_mask": _mask_loader(task.media_root)}))
    assert aggregate(task.metric, recs)["score"] > 0.999, (name, recs)
    wrong = [score_example(task.metric, ex.id, ex.meta, "I am not sure.", {"image_size": (64, 48),
                                                                         "load_mask": _mask_loader(task.media_root)})
             for ex in task.examples]
    assert not aggregate(task.metric, wrong)["score"] > 0.5 or name == "vixmo_points_count_clip_63s", (name, wrong)


@pytest.mark.slow
def test_every_family_runs_end_to_end_writes_three_outputs_and_resumes(tiny_inference_dir, raw, tmp_path):
    out = tmp_path / "eval"
    args = ["--checkpoint", str(tiny_inference_dir / "model"), "--raw", raw, "--out", str(out),
            "--datasets", "image_pointing", "image_qa", "video_qa", "video_pointing", "tracking",
            "--max-new-tokens", "1", "--batch-size", "4", "--no-progress"]
    run = _evaluate(*args)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(BUILT) <= set(summary)
    for name in BUILT:  # video_mme's score is null when no answer parses (allenai drops those)
        assert summary[name]["n"] == 3 and (summary[name]["score"] is None or 0 <= summary[name]["score"] <= 1)
    # sets without files are skipped with what to do (gated LongVideoBench names its licence page)
    assert "longvideobench/LongVideoBench" in run.stderr and "skipped long_video_bench_no_subtitle" in run.stderr
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 3 * len(BUILT)
    assert {json.loads(line)["benchmark"] for line in lines} == set(BUILT)
    table = (out / "results.md").read_text()
    assert all(f"| {name} |" in table for name in BUILT)
    # a run killed mid-way: the last two records are gone and a torn line is left; the rerun answers exactly
    # the missing examples and reproduces the summary (greedy answers are deterministic)
    with open(out / "predictions.jsonl", "w") as f:
        f.write("\n".join(lines[:-2]) + "\n" + '{"benchmark": "molmo2_video_track_eval_1fps", "id": "t')
    again = _evaluate(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "predictions.jsonl").read_text().splitlines() == lines
    assert json.loads((out / "summary.json").read_text()) == summary


def test_missing_benchmark_only_prints_what_to_do(tiny_inference_dir, tmp_path):
    run = _evaluate("--checkpoint", str(tiny_inference_dir / "model"), "--raw", str(tmp_path), "--datasets",
                    "long_video_bench_no_subtitle", "--out", str(tmp_path / "o"))
    assert run.returncode == 1
    assert "gated" in run.stderr and "huggingface-cli login" in run.stderr and "Traceback" not in run.stderr


def test_unknown_dataset_is_a_one_line_error(tiny_inference_dir, tmp_path):
    run = _evaluate("--checkpoint", str(tiny_inference_dir / "model"), "--datasets", "video_mmee")
    assert run.returncode == 1 and "unknown dataset" in run.stderr and "Traceback" not in run.stderr


def _with_bad_record(root, name, n_good):
    """Rewrite a prepared dataset's shard with a garbage record in the middle."""
    from array_record.python.array_record_module import ArrayRecordWriter

    from data_pipelines import writer

    index = writer.load_index(str(root), name)
    src = writer.open_source(str(root), name)
    records = [src[i] for i in range(min(n_good, len(src)))]
    path = os.path.join(root, name, index["shards"][0]["file"])
    w = ArrayRecordWriter(path, "group_size:1")
    for i, r in enumerate(records):
        w.write(r)
        if i == 0:
            w.write(b"\x93not an example")
    w.close()
    index["shards"] = index["shards"][:1]
    index["shards"][0]["num_examples"] = index["num_examples"] = len(records) + 1
    with open(os.path.join(root, name, "train.json"), "w") as f:
        json.dump(index, f)


def test_prepared_canonical_dataset_with_a_malformed_row(tiny_inference_dir, tmp_path):
    from data_pipelines import synthetic, writer

    prepared = tmp_path / "prepared"
    src = synthetic.synthetic_sources(4, 0)
    name = next(n for n in src if "count" in n)
    writer.write_examples((src[name][i] for i in range(4)), str(prepared), name)
    _with_bad_record(prepared, name, 3)
    run = _evaluate("--checkpoint", str(tiny_inference_dir / "model"), "--prepared", str(prepared),
                    "--datasets", name, "--max-new-tokens", "4", "--out", str(tmp_path / "o"))
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["counting_n"] == 3 and summary["skipped"] == {"malformed_record": 1}


@pytest.mark.slow
def test_prepared_benchmark_with_a_malformed_row(tiny_inference_dir, raw, tmp_path):
    from data_pipelines import writer

    from molmo2_jax.evaluate import load_benchmark

    prepared = tmp_path / "prepared"
    task = load_benchmark("countbench_qa", raw, None)
    writer.write_examples(task.examples, str(prepared), "countbench_qa", media_root=raw)
    _with_bad_record(prepared, "countbench_qa", 3)
    run = _evaluate("--checkpoint", str(tiny_inference_dir / "model"), "--prepared", str(prepared),
                    "--datasets", "countbench_qa", "--max-new-tokens", "4", "--out", str(tmp_path / "o"),
                    "--no-progress")
    assert run.returncode == 0, run.stderr[-3000:]
    s = json.loads((tmp_path / "o" / "summary.json").read_text())["countbench_qa"]
    assert s["n"] == 3 and s["skipped"] == {"malformed_record": 1}


@pytest.mark.slow
def test_batched_answers_equal_one_at_a_time(tiny_inference_dir, raw):
    import molmo2_jax
    from molmo2_jax.eval.runner import example_media, generate_batch, prompt_messages
    from molmo2_jax.evaluate import load_benchmark

    model, processor = molmo2_jax.load(str(tiny_inference_dir / "model"))
    for name in ("pointing_eval_v2",):  # image crops padded to a power of two (video rows use the same collate)
        task = load_benchmark(name, raw, None)
        prompts = []
        for ex in task.examples:
            images, videos = example_media(ex, task.media_root, processor.video)
            prompts.append(processor.chat(prompt_messages(ex), images=images or None, videos=videos or None))
        batched = generate_batch(model, processor, prompts, 5)
        single = [generate_batch(model, processor, [p], 5)[0] for p in prompts]
        assert batched == single, name
        assert len({p["input_ids"].shape[1] for p in prompts}) >= 1 and np.all([isinstance(t, str) for t in batched])


def test_eval_every_runs_a_configured_benchmark_subset_and_logs_it(tiny_inference_dir, raw, tmp_path):
    import ml_collections

    import molmo2_jax
    from molmo2_jax.evaluate import evaluate_during_training
    from molmo2_jax.main import MetricsWriter

    data = {"eval_benchmarks": ["chart_qa", "long_video_bench_no_subtitle"], "eval_raw": raw, "eval_examples": 2,
            "eval_max_new_tokens": 1}
    config = ml_collections.ConfigDict({"seed": 0, "data": data})
    model, processor = molmo2_jax.load(str(tiny_inference_dir / "model"))
    scores = evaluate_during_training(config, model, processor, str(tmp_path), 7)
    assert scores["eval/chart_qa/n"] == 2.0 and 0.0 <= scores["eval/chart_qa/score"] <= 1.0
    assert not any("long_video_bench" in k for k in scores)  # gated set not downloaded: skipped, said on stderr
    assert json.loads((tmp_path / "eval" / "7" / "summary.json").read_text())["chart_qa"]["n"] == 2
    MetricsWriter(str(tmp_path)).write(7, scores)
    assert os.listdir(tmp_path / "tb") and "eval/chart_qa/score" in (tmp_path / "metrics.jsonl").read_text()
