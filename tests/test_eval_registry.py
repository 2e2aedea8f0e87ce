"""The benchmark registry: every entry is complete, readable and scored; it covers eval_molmo2.py's groups."""

import pytest

from data_pipelines import benchmarks, readers
from data_pipelines.schema import Task
from molmo2_jax.eval.scoring import METRICS


@pytest.mark.parametrize("name", sorted(benchmarks.BENCHMARKS))
def test_entry_is_complete(name):
    b = benchmarks.BENCHMARKS[name]
    spec = b.dataset
    assert spec.task in Task.ALL and spec.modality in ("image", "video") and spec.media in ("hf", "url", "manual")
    assert spec.reader in readers.READERS and b.metric in METRICS and b.family in benchmarks.FAMILIES
    assert spec.repo and b.max_new_tokens > 0
    if spec.media == "manual":
        assert b.instructions, f"{name}: a manual/gated set must say what to do"


def test_covers_the_release_groups_of_eval_molmo2():
    # IMAGE_POINTING, VIDEO_POINTING (minus the MeViS per-frame variant), and the tracking sets with masks
    for name in ("countbench_qa", "pixmo_count_counting", "pointing_eval_v2", "point_bench",
                 "vixmo_points_count_clip_63s", "vixmo_points_point_eval", "mevis_track_eval_1fps",
                 "ref_yt_vos_track_eval_1fps", "ref_davis17_track_eval_1fps", "molmo2_video_track_eval_1fps",
                 "video_mme", "mvbench", "long_video_bench_no_subtitle", "chart_qa", "text_vqa"):
        assert name in benchmarks.BENCHMARKS
    assert {b.family for b in benchmarks.BENCHMARKS.values()} == set(benchmarks.FAMILIES)


def test_split_suffix_and_families_resolve_and_typos_fail():
    assert benchmarks.get("point_bench:test").name == "point_bench"
    assert [b.name for b in benchmarks.by_family("tracking")][0] == "molmo2_video_track_eval_1fps"
    with pytest.raises(KeyError, match="unknown benchmark"):
        benchmarks.get("video_mmee")
    with pytest.raises(KeyError, match="families"):
        benchmarks.by_family("videos")


def test_published_numbers_name_their_source_and_known_benchmarks():
    assert "arXiv:2601.10611" in benchmarks.PUBLISHED_SOURCE
    for scores in benchmarks.PUBLISHED.values():
        assert set(scores) <= set(benchmarks.BENCHMARKS) and all(0 < v <= 100 for v in scores.values())


def test_markdown_table_sits_beside_published_numbers():
    from molmo2_jax.eval.runner import markdown_table

    summary = {"vixmo_points_count_clip_63s": {"score": 0.3, "n": 10, "metric": "video_count"},
               "video_mme": {"score": float("nan"), "n": 0, "metric": "video_mme"}}
    table = markdown_table(summary, benchmarks.PUBLISHED["Molmo2-8B"], "Molmo2-8B", benchmarks.PUBLISHED_SOURCE)
    assert "| vixmo_points_count_clip_63s | video_count | 10 | 30.0 | 35.5 |" in table
    assert "| video_mme | video_mme | 0 | n/a | - |" in table and "arXiv:2601.10611" in table
    assert "published" not in markdown_table(summary)


def test_released_model_is_recognised_by_directory_or_config(tmp_path):
    import json

    from molmo2_jax.evaluate import released_model_name

    assert released_model_name(str(tmp_path / "Molmo2-8B")) == "Molmo2-8B"
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"_name_or_path": "allenai/Molmo2-8B"}))
    assert released_model_name(str(d)) == "Molmo2-8B"
    assert released_model_name(str(tmp_path / "my_run")) is None


def test_repeated_example_ids_are_made_unique_for_resume():
    from data_pipelines.schema import Conversation, Example, Message
    from molmo2_jax.eval.runner import unique_ids

    conv = [Conversation([Message("user", "q"), Message("assistant", "a")])]
    exs = [Example(i, "s", "vqa", conv) for i in ("a", "b", "a", "a")]
    unique_ids(exs)
    assert [e.id for e in exs] == ["a", "b", "a#2", "a#3"]
