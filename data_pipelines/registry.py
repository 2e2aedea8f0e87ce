"""Every dataset of the Molmo2 recipe as data: source, task, size, licence, stage mixtures.

Facts come from shared/molmo2_datasets.md (allenai/molmo2 @ f3cb1085 and HF cards). `size` is
the number of rows/examples where a card or the code states it, else None (the pipeline then
uses the prepared data's length). Licences marked "(unverified)" were not read from a card.
Stage mixtures: `STAGE_GROUP_RATES[stage]` (group -> rate) and `STAGE_MIXTURES[stage]` (which
dataset is in which group, with Molmo2's per-set `sampling_rate` and `root_size_factor`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from data_pipelines.schema import Task

ODC = "odc-by"                           # read on the allenai PixMo / CoSyn cards
ODC_UNVERIFIED = "odc-by (unverified)"   # other allenai Molmo2 releases
THIRD_PARTY = "see source (unverified)"


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One file to fetch: a path inside an HF repo, or an http(s) URL; sha256 where known."""

    path: str
    sha256: str | None = None
    size: int | None = None


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One Molmo2 dataset: where its annotations and media come from and how to read them.

    media: "hf" (inside the HF dataset), "url" (image URLs fetched by download.py), "manual"
    (gated or licence-bound: the user fetches it), "none" (text only).
    """

    name: str
    task: str
    modality: str                        # image | multi_image | video | text
    repo: str | None = None              # HF dataset id of the annotations
    urls: tuple[FileSpec, ...] = ()      # plain HTTP(S) files (annotations or media archives)
    files: tuple[FileSpec, ...] = ()     # files of `repo` with known sha256
    revision: str | None = None          # HF revision the `files` hashes belong to
    allow_patterns: tuple[str, ...] = ()  # HF snapshot filter (configs/splits actually used)
    media: str = "hf"
    reader: str | None = None            # key of readers.READERS; None = no reader yet
    reader_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    size: int | None = None
    licence: str = ODC_UNVERIFIED
    notes: str = ""


@dataclasses.dataclass(frozen=True)
class MixtureEntry:
    """A dataset's place in a stage mixture (Molmo2 `WeightedDataset`)."""

    dataset: str
    group: str
    sampling_rate: float = 1.0
    root_size_factor: float | None = None  # None: sqrt(len); 0: 1; <1: sqrt(len*f); >=1: sqrt(f)


_PIXMO_IMG = "images fetched from URLs into pixmo_images/<sha256(url)> by download.py"


_IMAGE_QA = {  # name -> (HF repo of the annotations or None for a builder, media)
    "coco_2014_vqa_multi": ("allenai/molmo2-vqa2-2014", "url"),
    "okvqa": ("allenai/molmo2-okvqa", "url"), "tally_qa": ("allenai/molmo2-tally-qa", "url"),
    "text_vqa": ("allenai/molmo2-text-vqa", "url"),
    "a_okvqa_mc": ("allenai/molmo2-a-ok-vqa", "url"),
    "a_okvqa_da": ("allenai/molmo2-a-ok-vqa", "url"),
    "chart_qa_weighted": ("HuggingFaceM4/ChartQA", "hf"),
    "doc_qa": (None, "manual"), "info_qa": (None, "manual"), "st_qa": (None, "manual"),
    "ai2_diagram_v2_mix_transparent": (None, "url"),
    "science_qa_img": ("derek-thomas/ScienceQA", "hf"), "tabwmp_da": (None, "url"),
    "dv_qa": (None, "url"), "figure_qa": (None, "url"), "plot_qa": (None, "url"),
}
_COSYN = ("chart", "chemical", "diagram", "document", "math", "music", "table")
_COSYN_MULTIDOC = ("chart", "chemical", "diagram", "doc", "music", "table")
_MANTIS = ("llava_665k_multi", "nlvr2", "spot-the-diff")
IMAGE_ACADEMIC = (*_IMAGE_QA, *[f"cosyn_{c}_exp" for c in _COSYN],
                  *[f"cosyn_multidoc_{c}_exp" for c in _COSYN_MULTIDOC],
                  *[f"mantis_instruct_{c}_multi_only" for c in _MANTIS])
_VIDEO_QA_HF = {
    "llava_video_mc_academic": "lmms-lab/LLaVA-Video-178K",
    "llava_video_oe_academic": "lmms-lab/LLaVA-Video-178K",
    "funqa": "fesvhtr/FunQA", "camerabench_qa": "allenai/Molmo2-CameraBenchTrain",
    "social_iq2": "PediaMedAI/Social-IQ-Video", "motionbench_train": "zai-org/MotionBench",
    "video_localized_narratives_caption": "allenai/Molmo2-VideoLocalizedNarrativesCaptionHf",
    "cinepile_with_sub": "allenai/Molmo2-cinepile",
    "news_video_qa_filtered": "allenai/Molmo2-NewsVideoQA", "countix_oe": "allenai/Molmo2-Countix",
    "paxion": "allenai/Molmo2-Paxion", "tgif": "allenai/Molmo2-TGIF",
    "tvqa_with_sub": "allenai/Molmo2-TVQA",
    "vixmo_syn_video_capqa_v2": "allenai/Molmo2-VideoCapQA",
    "vixmo_syn_video_capqa_with_sub_v2": "allenai/Molmo2-VideoSubtitleQA",
}
_VIDEO_QA_MANUAL = ("clevrer", "how2qa", "intent_qa", "perception_test", "nextqa_mc",
                    "sutd_trafficqa", "star", "sportsqa_oe", "road_text_vqa",
                    "video_localized_narratives", "moments_in_time_qa", "kinetics_qa",
                    "charades_sta_all_qa", "coin_all_qa", "youcook2_all_qa", "activitynet_all_qa",
                    "ego4d_all", "epic_kitchens_qa", "qv_highlights")
VIDEO_ACADEMIC = (*_VIDEO_QA_HF, *_VIDEO_QA_MANUAL)
_CAPPED_60K = ("tgif", "tvqa_with_sub", "paxion", "moments_in_time_qa", "kinetics_qa")
_TRACK_TASKS = ("single_point_track", "sot_from_bbox", "track", "ground")
_SOT_TAIL = ("burst", "lvosv1", "lvosv2", "lasot", "uwcot", "webuot", "latot", "tnl2k", "tnllt")
_TRACKING_SUBGROUPS = {  # subgroup -> (datasets, Molmo2 subgroup weight)
    "track": ([f"{s}_track" for s in ("mevis", "ref_yt_vos", "lv_vis", "vicas", "revos",
                                      "molmo2_video")], 0.4),
    "track_dist_tail": ([f"{s}_track" for s in ("burst", "ref_davis17", "yt_vis", "moca")], 0.05),
    "ground": ([f"{s}_ground" for s in ("mevis", "lv_vis", "vicas", "revos", "molmo2_video")],
               0.2),
    "ground_dist_tail": (["burst_ground", "moca_ground"], 0.01),
    "single_point_track": ([f"{s}_single_point_track" for s in ("mevis", "lv_vis", "vicas",
                                                                "revos", "molmo2_video")], 0.15),
    "sot_from_bbox": ([f"{s}_sot_from_bbox" for s in ("webuav", "got10k", "vasttrack",
                                                      "trackingnet")], 0.2),
    "sot_from_bbox_dist_tail": ([f"{s}_sot_from_bbox" for s in _SOT_TAIL], 0.1),
}

def _specs() -> list[DatasetSpec]:
    d = DatasetSpec
    img, multi, vid, txt = "image", "multi_image", "video", "text"
    specs = [
        # --- PixMo (image URLs) ---
        d("pixmo_cap_with_transcripts", Task.CAPTION, img, "allenai/pixmo-cap", media="url",
          reader="pixmo_cap", reader_kwargs={"transcripts": True}, size=707_000, licence=ODC,
          notes="caption + 1 random transcript as a message tree; size approximate; " + _PIXMO_IMG),
        d("pixmo_cap", Task.CAPTION, img, "allenai/pixmo-cap", media="url", reader="pixmo_cap",
          size=707_000, licence=ODC, notes="size approximate; " + _PIXMO_IMG),
        d("pixmo_points_train", Task.POINTING, img, "allenai/pixmo-points", media="url",
          reader="pixmo_points", reader_kwargs={"collection_method": "pointing"}, licence=ODC,
          notes="rows with collection_method=pointing (basic); the "
          "card's 2,376,222 rows cover both methods; rows grouped per image; points 0-100"),
        d("pixmo_points_high_freq_train", Task.POINTING, img, "allenai/pixmo-points", media="url",
          reader="pixmo_points", reader_kwargs={"collection_method": "counting"}, licence=ODC,
          notes="rows with collection_method=counting (high_frequency)"),
        d("pixmo_count_train", Task.COUNTING, img, "allenai/pixmo-count", media="url",
          reader="pixmo_count", size=36_916, licence=ODC,
          notes="points in pixels: the reader needs the downloaded image for its size"),
        d("pixmo_ask_model_anything", Task.VQA, img, "allenai/pixmo-ask-model-anything",
          media="url", reader="pixmo_qa", size=161_737, licence=ODC),
        d("pixmo_cap_qa_as_user_qa", Task.VQA, img, "allenai/pixmo-cap-qa", media="url",
          reader="pixmo_cap_qa", size=271_714, licence=ODC,
          files=(FileSpec("data/train-00000-of-00001.parquet",
                          "0bdc1d3a636dd7c260ec99063a757441023a951924b2314eb13abbdf385a763e",
                          138_400_335),),
          revision="94817b574767a6243df8f3a7fcfb6fd74075b503"),
        d("pixmo_multi_image_qa_multi_only_max5", Task.MULTI_IMAGE, multi,
          "allenai/Molmo2-MultiImageQA", media="url", reader="pixmo_multi_image_qa",
          reader_kwargs={"min_images": 2, "max_images": 5}),
        d("pixmo_multi_points", Task.MULTI_IMAGE, multi, "allenai/molmo2-pixmo-multi-points",
          media="url", notes="reuses PixMo-Points images; 0-100"),
        d("cosyn_point", Task.POINTING, img, "allenai/CoSyn-point", reader="cosyn_point",
          size=68_051, licence=ODC, notes="images embedded; 0-100"),
        # --- text ---
        d("tulu4_max_2304", Task.TEXT, txt, "allenai/molmo2-tulu4-classified", media="none",
          reader="tulu", reader_kwargs={"max_first_message_tokens": 2304}),
        d("tulu4", Task.TEXT, txt, "allenai/molmo2-tulu4-classified", media="none",
          reader="tulu", reader_kwargs={"max_first_message_tokens": 4096}),
        d("molmo2_hardcodes", Task.TEXT, txt, "allenai/molmo2-hardcodes", media="none",
          notes="paired with a random image/video/multi-image/none input (.25/.25/.15/.35)"),
        # --- demo video ---
        d("molmo2_human_qa", Task.VIDEO_QA, vid, "allenai/Molmo2-AskModelAnything",
          media="manual", size=140_000, notes="split HumanQA; YouTube videos; size = QA pairs "
          "(paper, 3rd-party)"),
        d("vixmo3_top_level_captions_min_3", Task.VIDEO_CAPTION, vid, "allenai/Molmo2-Cap",
          media="manual", reader="molmo2_cap", reader_kwargs={"min_score": 3, "max_captions": 4},
          notes="104k videos / 431k clip captions (paper, 3rd-party)"),
        # --- video pointing ---
        *[d(f"vixmo_points_minmax_{b}", Task.VIDEO_POINTING, vid, "allenai/Molmo2-VideoPoint",
            media="manual", reader="molmo2_video_points",
            reader_kwargs={"min_count": lo, "max_count": hi},
            notes="8 configs; YouTube/MammalNet videos (manual), generated (hf)")
          for b, lo, hi in (("0_5", 0, 5), ("6_25", 6, 25), ("26_60", 26, 60))],
        d("academic_points_clip_63s_2fps", Task.VIDEO_POINTING, vid,
          "allenai/molmo2-academic-video-points", media="manual",
          notes="max 60 points"),
    ]
    # --- image academic ---
    for name, (repo, media) in _IMAGE_QA.items():
        specs.append(d(name, Task.VQA, img, repo, media=media, licence=THIRD_PARTY,
                       notes="builder in m2:olmo/data/dataset_builders" if repo is None else ""))
    for cfg in _COSYN:
        specs.append(d(f"cosyn_{cfg}_exp", Task.VQA, img, "allenai/CoSyn-400K", licence=ODC,
                       allow_patterns=(f"{cfg}/*",), notes="CoT style (explanation)"))
    for cfg in _COSYN_MULTIDOC:
        specs.append(d(f"cosyn_multidoc_{cfg}_exp", Task.MULTI_IMAGE, multi,
                       "allenai/Molmo2-SynMultiImageQA", notes="<= 5 images"))
    for cfg in _MANTIS:
        specs.append(d(f"mantis_instruct_{cfg}_multi_only", Task.MULTI_IMAGE, multi,
                       f"allenai/molmo2-mantis-instruct-{cfg}", media="url", licence=THIRD_PARTY,
                       notes="images: TIGER-Lab/Mantis-Instruct zips"))
    # --- video academic (videos mostly manual) ---
    for name, repo in _VIDEO_QA_HF.items():
        specs.append(d(name, Task.VIDEO_QA, vid, repo, media="manual",
                       reader="molmo2_video_capqa" if "capqa" in name else None,
                       licence=ODC_UNVERIFIED if repo.startswith("allenai/") else THIRD_PARTY))
    for name in _VIDEO_QA_MANUAL:
        specs.append(d(name, Task.VIDEO_QA, vid, None, media="manual", licence=THIRD_PARTY,
                       notes="annotations and videos from the original site"))
    # --- tracking (allenai/molmo2-<set> annotations; most videos manual) ---
    for names, _ in _TRACKING_SUBGROUPS.values():
        for name in names:
            ds, task = next((name[:-len(t) - 1], t) for t in _TRACK_TASKS if name.endswith(t))
            if task == "sot_from_bbox":
                repo, kw, pat = "allenai/molmo2-single-object-track", {}, (f"{ds}/*",)
            else:
                repo = ("allenai/molmo2-track-instruction" if ds == "molmo2_video"
                        else f"allenai/molmo2-{ds.replace('_', '-')}")
                kw, pat = {"task": task}, ()
            if name not in {x.name for x in specs}:
                specs.append(d(name, Task.TRACKING, vid, repo, media="manual", allow_patterns=pat,
                               reader="molmo2_track" if kw else None, reader_kwargs=kw,
                               notes="code name pattern inferred"))
    return specs


REGISTRY: dict[str, DatasetSpec] = {s.name: s for s in _specs()}


def get(name: str) -> DatasetSpec:
    """The registry entry for `name`; KeyError lists close names."""
    if name not in REGISTRY:
        close = [n for n in REGISTRY if name.split("_")[0] in n][:8]
        raise KeyError(f"unknown dataset {name!r}; similar: {close}")
    return REGISTRY[name]


def _tracking_entries() -> list[MixtureEntry]:
    """Molmo2 TRACKING_MIXTURE: sampling_rate = subgroup weight / 1.11, times sqrt(len)."""
    return [MixtureEntry(n, "tracking", w / 1.11, 30_000 if n.startswith("vicas") else None)
            for names, w in _TRACKING_SUBGROUPS.values() for n in names]


_IMAGE_POINTING = ("pixmo_points_train", "pixmo_count_train", "pixmo_points_high_freq_train",
                   "cosyn_point")

_SFT: list[MixtureEntry] = [
    MixtureEntry("pixmo_ask_model_anything", "demo"),
    MixtureEntry("pixmo_cap", "demo", root_size_factor=100_000),
    MixtureEntry("pixmo_cap_qa_as_user_qa", "demo"),
    MixtureEntry("pixmo_multi_image_qa_multi_only_max5", "demo"),
    MixtureEntry("molmo2_human_qa", "demo"),
    MixtureEntry("vixmo3_top_level_captions_min_3", "demo", sampling_rate=1.5),
    *[MixtureEntry(n, "video_academic", root_size_factor=60_000 if n in _CAPPED_60K else None)
      for n in VIDEO_ACADEMIC],
    *[MixtureEntry(n, "image_academic", root_size_factor={"dv_qa": 10_000, "figure_qa": 10_000,
                                                          "plot_qa": 20_000}.get(n))
      for n in IMAGE_ACADEMIC],
    *_tracking_entries(),
    *[MixtureEntry(f"vixmo_points_minmax_{b}", "video_pointing", r, root_size_factor=1)
      for b, r in (("0_5", 0.4), ("6_25", 0.3), ("26_60", 0.1))],
    MixtureEntry("academic_points_clip_63s_2fps", "video_pointing", 0.2, root_size_factor=1),
    MixtureEntry("pixmo_multi_points", "image_pointing", root_size_factor=200_000),
    *[MixtureEntry(n, "image_pointing") for n in _IMAGE_POINTING],
    MixtureEntry("tulu4", "nlp"),
    MixtureEntry("molmo2_hardcodes", "hardcodes"),
]

STAGE_MIXTURES: dict[int, tuple[MixtureEntry, ...]] = {
    1: (MixtureEntry("pixmo_cap_with_transcripts", "captions"),
        *[MixtureEntry(n, "pointing") for n in _IMAGE_POINTING],
        MixtureEntry("tulu4_max_2304", "nlp")),
    2: tuple(_SFT),
    3: tuple(_SFT),   # Molmo2 long-context SFT reuses the SFT mixture (longer seq, 384 frames)
}

STAGE_GROUP_RATES: dict[int, dict[str, float]] = {
    1: {"captions": 0.6, "pointing": 0.3, "nlp": 0.1},
    2: {"demo": 0.15, "video_academic": 0.20, "image_academic": 0.25, "tracking": 0.15,
        "video_pointing": 0.15, "image_pointing": 0.10, "nlp": 0.1 - 0.0005,
        "hardcodes": 0.0005},
}
STAGE_GROUP_RATES[3] = dict(STAGE_GROUP_RATES[2])

# Group names configs may use for the registry's groups.
GROUP_ALIASES = {"image_qa": "image_academic", "video_qa": "video_academic", "text": "nlp"}


def stage_datasets(stage: int) -> list[DatasetSpec]:
    """Registry entries used by a stage's mixture, in mixture order."""
    if stage not in STAGE_MIXTURES:
        raise ValueError(f"unknown stage {stage}; stages are {sorted(STAGE_MIXTURES)}")
    return [REGISTRY[e.dataset] for e in STAGE_MIXTURES[stage]]
