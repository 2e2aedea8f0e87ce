"""The trainer's mixture comes from the prepared data: missing datasets stop the run, shares are met."""

import numpy as np
import pytest

from configs import stage1
from data_pipelines import registry
from data_pipelines.mixture import BOTH_COUNTING_MODES, MissingDatasets, resolve_mixture, size_term
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
    c.seq_len = 64
    c.batch_size = 4
    c.data.path = str(root)
    c.data.window = 8
    c.data.update(data)
    return c


def test_stage1_pointing_share_is_split_by_sqrt_size_with_count_in_both_modes(tmp_path):
    weights, missing = resolve_mixture("stage1", dict(stage1.get_config().data.weights), SIZES)
    assert not missing
    pointing = ["pixmo_points_train", "pixmo_count_train", "pixmo_points_high_freq_train", "cosyn_point"]
    terms = {n: size_term(SIZES[n] * (2 if n in BOTH_COUNTING_MODES else 1), None) for n in pointing}
    for n in pointing:
        assert weights[n] == pytest.approx(0.3 * terms[n] / sum(terms.values()))
    assert weights["pixmo_cap_with_transcripts"] == pytest.approx(0.6)
    assert weights["tulu4_max_2304"] == pytest.approx(0.1)
    # PixMo-Count's 36 examples count as 72: its share is sqrt(2) larger than without the doubling
    assert weights["pixmo_count_train"] / weights["cosyn_point"] == pytest.approx(np.sqrt(72 / 81))


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
    for name, share in weights.items():
        assert abs(counts[name] / total - share) <= 0.02, (name, counts[name] / total, share)
