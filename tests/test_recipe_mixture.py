"""The trainer's mixture comes from the prepared data: missing datasets stop the run, shares are met."""

import numpy as np
import pytest

from configs import stage1
from data_pipelines import registry
from data_pipelines.mixture import (BOTH_COUNTING_MODES, MissingDatasets, molmo2_len, resolve_mixture, size_term,
                                    stage_weights)
from data_pipelines.schema import Conversation, Example, Message, Task
from data_pipelines.writer import write_examples
from molmo2_jax.data import make_processor, make_train_data, model_config_for, prepared_mixture

STAGE1 = [e.dataset for e in registry.STAGE_MIXTURES[1]]
SIZES = {"pixmo_cap_with_transcripts": 400, "pixmo_points_train": 100, "pixmo_count_train": 36,
         "pixmo_points_high_freq_train": 64, "cosyn_point": 81, "tulu4_max_2304": 50}


def _text_examples(name, n):
    for i in range(n):
        yield Example(f"{name}-{i}", name, Task.TEXT,
                      [Conversation([Message("user", f"q {i}"), Message("assistant", f"answer {name} {i}")], "text")])


def _prepare(root, names):
    for name in names:
        write_examples(_text_examples(name, SIZES[name]), str(root), name)


def _config(root, **data):
    c = stage1.get_config()
    c.model.name = "tiny"
    c.seq_len = 128
    c.batch_size = 4
    c.data.path = str(root)
    c.data.window = 8
    c.data.update(data)
    return c


def test_stage1_pointing_share_is_split_by_sqrt_size(tmp_path):
    weights, missing = resolve_mixture("stage1", dict(stage1.get_config().data.weights), SIZES)
    assert not missing
    pointing = ["pixmo_points_train", "pixmo_count_train", "pixmo_points_high_freq_train", "cosyn_point"]
    terms = {n: size_term(SIZES[n], None) for n in pointing}
    for n in pointing:
        assert weights[n] == pytest.approx(0.3 * terms[n] / sum(terms.values()))
    assert weights["pixmo_cap_with_transcripts"] == pytest.approx(0.6)
    assert weights["tulu4_max_2304"] == pytest.approx(0.1)


def test_pixmo_count_counts_twice_from_registry_rows_as_in_both_counting_modes():
    """Registry sizes are upstream rows; Molmo2 (and our readers) use each PixMo-Count row in two modes."""
    rows = registry.REGISTRY["pixmo_count_train"].size
    assert "pixmo_count_train" in BOTH_COUNTING_MODES and molmo2_len("pixmo_count_train", rows) == 2 * rows
    weights = stage_weights(1, sizes={"pixmo_points_train": 100, "pixmo_points_high_freq_train": 100,
                                      "tulu4_max_2304": 10})
    cosyn = registry.REGISTRY["cosyn_point"].size
    assert weights["pixmo_count_train"] / weights["cosyn_point"] == pytest.approx(np.sqrt(2 * rows / cosyn))


def test_missing_mixture_datasets_stop_the_run_listing_all(tmp_path):
    _prepare(tmp_path, ["pixmo_cap_with_transcripts", "cosyn_point"])
    config = _config(tmp_path)
    with pytest.raises(MissingDatasets) as err:
        prepared_mixture(config)
    for name in ("pixmo_points_train", "pixmo_count_train", "pixmo_points_high_freq_train", "tulu4_max_2304"):
        assert name in str(err.value)
    assert "allow_missing" in str(err.value)


def test_allow_missing_drops_them_and_reports_in_metrics(tmp_path, capsys):
    _prepare(tmp_path, ["pixmo_cap_with_transcripts", "cosyn_point", "tulu4_max_2304"])
    config = _config(tmp_path, allow_missing=True)
    processor = make_processor(config, str(tmp_path / "work"))
    data = make_train_data(config, processor, model_config_for(config, processor))
    assert "training without 3 missing dataset(s)" in capsys.readouterr().out
    it = iter(data)
    next(it)
    metrics = it.counters.metrics()
    assert metrics["data/missing/pixmo_count_train"] == 1.0
    assert "data/examples/pixmo_count_train" not in metrics


def test_packed_example_counts_match_configured_shares(tmp_path):
    _prepare(tmp_path, STAGE1)
    config = _config(tmp_path)
    weights, _ = prepared_mixture(config)
    processor = make_processor(config, str(tmp_path / "work"))
    it = iter(make_train_data(config, processor, model_config_for(config, processor)))
    while it.counters.examples.sum() < 2000:
        next(it)
    counts = dict(zip(it.counters.names, it.counters.examples))
    total = sum(counts.values())
    assert not it.counters.skipped.any(), it.counters.skipped_by_dataset()
    for name, share in weights.items():
        assert abs(counts[name] / total - share) <= 0.02, (name, counts[name] / total, share)


def test_stage1_prompts_use_style_and_length_v2():
    from data_pipelines.schema import Points

    from molmo2_jax.processing.encode import ExampleEncoder, style_and_length_v2

    caption = "A red circle next to a blue square. " * 4
    rng = np.random.default_rng(0)
    hints = [style_and_length_v2("long_caption", "", caption, rng) for _ in range(400)]
    plain = sum(h == "long_caption:" for h in hints)
    assert 20 < plain < 70  # ~10% without a length hint
    lengths = [int(h.split()[1][:-1]) for h in hints if h != "long_caption:"]
    assert abs(np.mean(lengths) - len(caption) / 15) < 1 and np.std(lengths) > 0.5  # noisy hint of len // 15
    assert style_and_length_v2("pointing", "dogs", "<points ...>", rng) == "pointing: dogs"

    seen = []

    class Spy:
        def training_example(self, branches, images, videos, weighting):
            seen.extend(b[0]["content"] for b in branches)
            return {}

    ex = Example("img", "pixmo_points_train", Task.POINTING,
                 [Conversation([Message("user", "Point to the Dogs."), Message("assistant", "x")], "pointing"),
                  Conversation([Message("user", "How many cats?"), Message("assistant", "y")], "point_count")],
                 points=[Points("Dogs", [(0.1, 0.2)]), Points("cats", [])])
    ExampleEncoder(Spy(), mixture="stage1", system_prompt="style_and_length_v2")(ex)
    assert seen == ["pointing: dogs", "point_count: cats"]
    seen.clear()
    cap = Example("c", "pixmo_cap_with_transcripts", Task.CAPTION,
                  [Conversation([Message("user", "Describe this image in detail."), Message("assistant", caption)],
                                "long_caption")])
    ExampleEncoder(Spy(), mixture="stage1", system_prompt="style_and_length_v2")(cap)
    assert seen[0].startswith("long_caption") and seen[0].endswith(":") and "Describe" not in seen[0]


def test_sft_image_pointing_uses_24_crops_30_percent_of_the_time():
    from configs import stage2
    from molmo2_jax.processing.encode import ExampleEncoder
    from molmo2_jax.processing.images import ImageConfig

    class Proc:
        image = ImageConfig(max_crops=8)

    c = stage2.get_config().data
    enc = ExampleEncoder(Proc(), high_res_datasets=frozenset(c.high_res_datasets), p_high_res=c.p_high_res,
                         high_res_max_crops=c.high_res_max_crops)

    def crops(source, i):
        ex = Example(f"{source}-{i}", source, Task.POINTING, [], images=[object()])
        return enc.processor_for(ex).image.max_crops

    pointing = [crops("pixmo_points_train", i) for i in range(1000)]
    assert set(pointing) == {8, 24} and abs(pointing.count(24) / 1000 - 0.3) < 0.05
    assert {crops("chart_qa_weighted", i) for i in range(100)} == {8}
