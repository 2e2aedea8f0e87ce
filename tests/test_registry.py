"""Registry: every Molmo2 stage dataset is described, mixtures reference real entries."""

import re

import pytest

from data_pipelines import readers, registry
from data_pipelines.schema import Task


def test_stage1_has_captions_pointing_and_text_with_recipe_rates():
    groups = {}
    for e in registry.STAGE_MIXTURES[1]:
        groups.setdefault(e.group, []).append(e.dataset)
    assert groups == {"captions": ["pixmo_cap_with_transcripts"],
                      "pointing": ["pixmo_points_train", "pixmo_count_train",
                                   "pixmo_points_high_freq_train", "cosyn_point"],
                      "nlp": ["tulu4_max_2304"]}
    assert registry.STAGE_GROUP_RATES[1] == {"captions": 0.6, "pointing": 0.3, "nlp": 0.1}


def test_sft_group_rates_sum_to_molmo2s_1_10_and_stage3_reuses_them():
    assert sum(registry.STAGE_GROUP_RATES[2].values()) == pytest.approx(1.10)
    assert registry.STAGE_MIXTURES[3] == registry.STAGE_MIXTURES[2]
    groups = {e.group for e in registry.STAGE_MIXTURES[2]}
    assert groups == set(registry.STAGE_GROUP_RATES[2])


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_every_mixture_entry_is_a_registry_dataset_once(stage):
    names = [e.dataset for e in registry.STAGE_MIXTURES[stage]]
    assert len(names) == len(set(names))
    assert all(n in registry.REGISTRY for n in names)


def test_entries_are_complete_and_readers_exist():
    for spec in registry.REGISTRY.values():
        assert spec.task in Task.ALL, spec.name
        assert spec.modality in ("image", "multi_image", "video", "text"), spec.name
        assert spec.media in ("hf", "url", "manual", "none"), spec.name
        assert spec.licence, spec.name
        assert spec.repo or spec.urls or spec.media == "manual" or spec.notes, spec.name
        assert spec.reader is None or spec.reader in readers.READERS, spec.name
        for f in spec.files + spec.urls:
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256), spec.name
        assert not spec.files or spec.revision, f"{spec.name}: hashes need a pinned revision"


def test_loss_weight_table_gives_every_sft_set_allenais_rule():
    """allenai launch_scripts/sft.py: point_weight (flat 0.2) on the tracking, video_pointing and image_pointing
    groups, cap_weight (flat 0.1) on vixmo3_top_level_captions_min_3, root weighting on everything else."""
    from molmo2_jax.processing.chat import (LONG_CAPTION_WEIGHTING, POINTING_WEIGHTING, SFT_WEIGHTING,
                                            UNWEIGHTED, loss_weighting)

    for entry in registry.STAGE_MIXTURES[2]:
        spec = registry.get(entry.dataset)
        want = (POINTING_WEIGHTING if entry.group in ("tracking", "video_pointing", "image_pointing")
                else LONG_CAPTION_WEIGHTING if entry.dataset == "vixmo3_top_level_captions_min_3" else SFT_WEIGHTING)
        assert loss_weighting(spec.task, spec.name, "stage2") == want, entry.dataset
    for spec in registry.stage_datasets(1):  # pre-training: 1 everywhere
        assert loss_weighting(spec.task, spec.name, "stage1") == UNWEIGHTED


def test_tracking_rates_follow_subgroup_weights_over_1_11():
    rates = {e.dataset: e.sampling_rate for e in registry.STAGE_MIXTURES[2]
             if e.group == "tracking"}
    assert rates["mevis_track"] == pytest.approx(0.4 / 1.11)
    assert rates["webuav_sot_from_bbox"] == pytest.approx(0.2 / 1.11)


def test_unknown_dataset_error_suggests_names():
    with pytest.raises(KeyError, match="pixmo"):
        registry.get("pixmo_pointz")


def test_every_entry_says_where_it_comes_from_and_which_split():
    for spec in registry.REGISTRY.values():
        assert spec.origin, spec.name
        if spec.repo:
            assert spec.split or spec.data_files or spec.allow_patterns, spec.name
    # eval splits and sibling configs are never the training selection
    assert registry.get("pixmo_count_train").split == "train"
    assert registry.get("vixmo3_top_level_captions_min_3").split == "train"
    for task in ("track", "ground", "single_point_track"):
        assert registry.get(f"molmo2_video_{task}").configs == (task,)
    assert len(registry.get("vixmo_points_minmax_0_5").configs) == 8
    assert registry.get("vixmo_syn_video_capqa_v2").split == "CapQA"
