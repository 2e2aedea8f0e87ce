"""Mixtures: Molmo2 group rates x sqrt(size) x per-set rate; realised shares match over 20k."""

import math

import numpy as np
import pytest

from data_pipelines import mixture, registry
from data_pipelines.registry import MixtureEntry


def test_size_term_follows_molmo2_root_size_factor_rules():
    assert mixture.size_term(10_000, None) == 100
    assert mixture.size_term(10_000, 0) == 1
    assert mixture.size_term(10_000, 0.25) == 50
    assert mixture.size_term(10_000, 400) == 20


def test_within_group_weights_are_sqrt_size_times_rate():
    entries = [MixtureEntry("a", "g1"), MixtureEntry("b", "g1", sampling_rate=2.0),
               MixtureEntry("c", "g2", root_size_factor=1)]
    w = mixture.mixture_weights(entries, {"g1": 0.75, "g2": 0.25},
                                {"a": 400, "b": 100, "c": 10})
    # a: sqrt(400)=20, b: 2*sqrt(100)=20 -> equal halves of g1
    assert w == pytest.approx({"a": 0.375, "b": 0.375, "c": 0.25})


def test_stage1_groups_get_60_30_10():
    sizes = {"pixmo_points_train": 1_500_000, "pixmo_points_high_freq_train": 800_000,
             "tulu4_max_2304": 900_000}
    w = mixture.stage_weights(1, sizes=sizes)
    assert w["pixmo_cap_with_transcripts"] == pytest.approx(0.6)
    assert w["tulu4_max_2304"] == pytest.approx(0.1)
    pointing = [e.dataset for e in registry.STAGE_MIXTURES[1] if e.group == "pointing"]
    assert sum(w[n] for n in pointing) == pytest.approx(0.3)
    ratio = w["pixmo_points_train"] / w["pixmo_count_train"]
    # the registry's 36,916 PixMo-Count rows are used in both counting modes (Molmo2 len() = 2 x rows)
    assert ratio == pytest.approx(math.sqrt(1_500_000 / (2 * 36_916)))


def test_sft_shares_are_rate_over_1_10_when_every_set_is_available():
    sizes = {e.dataset: 10_000 for e in registry.STAGE_MIXTURES[2]}
    w = mixture.stage_weights(2, sizes=sizes)
    for group, rate in registry.STAGE_GROUP_RATES[2].items():
        share = sum(w[e.dataset] for e in registry.STAGE_MIXTURES[2] if e.group == group)
        assert share == pytest.approx(rate / 1.10)
    assert w["vixmo_points_minmax_0_5"] / w["vixmo_points_minmax_6_25"] == pytest.approx(4 / 3)


def test_group_rates_can_be_overridden_as_data():
    sizes = {e.dataset: 100 for e in registry.STAGE_MIXTURES[1]}
    w = mixture.stage_weights(1, sizes=sizes,
                              group_rates={"captions": 0.5, "pointing": 0.5, "nlp": 0.0})
    assert w["pixmo_cap_with_transcripts"] == pytest.approx(0.5) and w["tulu4_max_2304"] == 0


def test_realised_proportions_over_20k_samples_are_within_1_percent():
    weights = {"captions": 0.6, "points": 0.2, "count": 0.07, "cosyn": 0.03, "text": 0.1}
    sources = {n: [f"{n}-{i}" for i in range(1000 + 37 * k)] for k, n in enumerate(weights)}
    ds, names = mixture.mix(sources, weights, seed=3)
    draws = [ds[k] for k in range(20_000)]
    counts = np.bincount([i for i, _, _ in draws], minlength=len(names)) / len(draws)
    for name, share in zip(names, counts):
        assert abs(share - weights[name]) < 0.01, (name, share)
    assert all(rec.startswith(names[i]) for i, rec, _ in draws[:200])  # tags name the source


def test_each_source_is_shuffled_and_reshuffled_each_epoch():
    sources = {"a": list(range(1000))}
    ds, _ = mixture.mix(sources, {"a": 1.0}, seed=0)
    epoch1 = [ds[k][1] for k in range(1000)]
    epoch2 = [ds[k][1] for k in range(1000, 2000)]
    assert sorted(epoch1) == list(range(1000)) and epoch1 != list(range(1000))
    assert sorted(epoch2) == list(range(1000)) and epoch2 != epoch1


def test_weights_naming_missing_sources_fail_with_the_fix():
    with pytest.raises(ValueError, match="prepare them"):
        mixture.mix({"a": [1]}, {"a": 0.5, "b": 0.5})
    ds, names = mixture.mix({"a": [1], "b": [2]}, {"a": 1.0, "b": 0.0})
    assert names == ["a"]


def test_config_weights_accept_groups_prefixes_and_synthetic_tasks():
    sizes = {"pixmo_points_train": 1_000_000, "pixmo_points_high_freq_train": 250_000,
             "tulu4_max_2304": 900_000}
    w = mixture.config_weights("stage1", {"pixmo_cap": 0.6, "pixmo_points": 0.15,
                                          "pixmo_count": 0.05, "cosyn_point": 0.1, "tulu": 0.1},
                               sizes)
    assert w["pixmo_cap_with_transcripts"] == pytest.approx(0.6)
    assert w["pixmo_points_train"] == pytest.approx(0.1)        # sqrt(1M) : sqrt(250k) = 2 : 1
    assert w["pixmo_points_high_freq_train"] == pytest.approx(0.05)
    sft = mixture.config_weights("stage2", {"image_qa": 0.5, "text": 0.5},
                                 {n: 100 for n in registry.IMAGE_ACADEMIC} | {"tulu4": 100})
    assert sum(sft[n] for n in registry.IMAGE_ACADEMIC) == pytest.approx(0.5)
    demo = mixture.config_weights("synthetic", {"caption": 0.3, "pointing": 0.7})
    assert demo == pytest.approx({"synthetic_caption": 0.3, "synthetic_pointing": 0.7})
    with pytest.raises(ValueError, match="matches no dataset or group"):
        mixture.config_weights("stage1", {"laion": 1.0})
