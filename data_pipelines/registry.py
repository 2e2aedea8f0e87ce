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

from data_pipelines import registry_academic as academic
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
    split: str | None = "train"          # HF split read (file naming: <split>-00000-of-N.parquet)
    configs: tuple[str, ...] = ()        # HF configs read (directories of the repo); () = all
    data_files: tuple[str, ...] = ()     # explicit row-file globs; override split/configs
    manual: str = ""                     # what the user must do by hand (printed by --list)
    held_out: tuple[str, ...] = ()       # eval repos (split test) whose image_urls never train

    @property
    def origin(self) -> str:
        """Where the annotations come from, for humans (`download --list`)."""
        if self.repo:
            cfg = f" configs {', '.join(self.configs)}" if self.configs else ""
            return f"hf:{self.repo}{cfg} split {self.split or 'any'}"
        if self.urls:
            return "http: " + ", ".join(f.path for f in self.urls)
        return "original site (see manual steps)"


@dataclasses.dataclass(frozen=True)
class MixtureEntry:
    """A dataset's place in a stage mixture (Molmo2 `WeightedDataset`)."""

    dataset: str
    group: str
    sampling_rate: float = 1.0
    root_size_factor: float | None = None  # None: sqrt(len); 0: 1; <1: sqrt(len*f); >=1: sqrt(f)


_PIXMO_IMG = "images fetched from URLs into pixmo_images/<sha256(url)> by download.py"
VIDEO_ROOT = "video_datasets"  # RAW/video_datasets = Molmo2's VIDEO_DATA_HOME layout
POINTS_EVAL = "allenai/pixmo-points-eval"  # Molmo2 PixMoPoints.download(hold_out_pointing_eval)
_YT = ("download the YouTube videos by id (the repo's youtube_id_to_urls_mapping.json maps ids "
       "to YouTube and public GCS URLs)")
_VIDEO_POINT_MANUAL = (
    _YT + ", re-encode to 2 fps and place them as RAW/video_datasets/youtube-cc/"
    "youtube-cc-{exist,kw,temporal}-2fps/<video_id>_2fps.mp4; MammalNet clips (github.com/"
    "Vision-CAIR/MammalNet) as RAW/video_datasets/MammalNet/trimmed_video-2fps/<video_id>_2fps.mp4;"
    " generated videos come with the repo (generated_videos/)")
_YT_CC = ("RAW/video_datasets/youtube-cc/youtube-cc-{exist,kw,temporal}/<video_id>/<file>.mp4")
# academic MOT tracking repos allenai/molmo2-<set> -> Molmo2 VIDEO_HOME under video_track/
_ACADEMIC_TRACK_DIRS = {"mevis": "MeViS", "ref_yt_vos": "Ref-YT-VOS", "ref_davis17": "Ref-DAVIS17",
                        "burst": "TAO-Amodal", "lv_vis": "LV-VIS", "yt_vis": "YT-VIS",
                        "vicas": "ViCaS", "revos": "ReVOS", "moca": "MoCA"}


IMAGE_ACADEMIC = tuple(academic.IMAGE_SPECS)   # fields in registry_academic.py
_CAPQA = {"vixmo_syn_video_capqa_v2": ("allenai/Molmo2-VideoCapQA", "CapQA"),
          "vixmo_syn_video_capqa_with_sub_v2": ("allenai/Molmo2-VideoSubtitleQA", "SubtitleQA")}
VIDEO_ACADEMIC = (*academic.VIDEO_SPECS, *_CAPQA)
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

VIDEO_POINT_CONFIGS = ("action_or_event", "animal", "anomaly", "comparative reference",
                       "indirect reference", "object", "referring expression", "spatial reference")


def _specs() -> list[DatasetSpec]:
    d = DatasetSpec
    img, multi, vid, txt = "image", "multi_image", "video", "text"
    specs = [
        # --- PixMo (image URLs) ---
        d("pixmo_cap_with_transcripts", Task.CAPTION, img, "allenai/pixmo-cap", media="url",
          reader="pixmo_cap", reader_kwargs={"transcripts": True}, size=707_000, licence=ODC,
          notes="caption + 1 random transcript as a message tree; size approximate (one example "
          "per image, the card's ~707k rows, fewer after dead URLs); " + _PIXMO_IMG),
        d("pixmo_cap", Task.CAPTION, img, "allenai/pixmo-cap", media="url", reader="pixmo_cap",
          size=707_000, licence=ODC, notes="size approximate (~707k rows); " + _PIXMO_IMG),
        d("pixmo_points_train", Task.POINTING, img, "allenai/pixmo-points", media="url",
          held_out=(POINTS_EVAL,),
          reader="pixmo_points", reader_kwargs={"collection_method": "pointing"}, licence=ODC,
          notes="rows with collection_method=pointing (basic); the "
          "card's 2,376,222 rows cover both methods; rows grouped per image; points 0-100"),
        d("pixmo_points_high_freq_train", Task.POINTING, img, "allenai/pixmo-points", media="url",
          held_out=(POINTS_EVAL,),
          reader="pixmo_points", reader_kwargs={"collection_method": "counting"}, licence=ODC,
          notes="rows with collection_method=counting (high_frequency)"),
        d("pixmo_count_train", Task.COUNTING, img, "allenai/pixmo-count", media="url",
          reader="pixmo_count", size=36_916, licence=ODC,
          notes="split train (card: train 36,916 / validation 540 / test 540; validation and "
          "test are eval sets, never read here); points in pixels: the reader needs the "
          "downloaded image for its size"),
        d("pixmo_ask_model_anything", Task.VQA, img, "allenai/pixmo-ask-model-anything",
          media="url", reader="pixmo_qa", licence=ODC,
          notes="161,737 QA rows grouped into one example per image (count unknown)"),
        d("pixmo_cap_qa_as_user_qa", Task.VQA, img, "allenai/pixmo-cap-qa", media="url",
          reader="pixmo_cap_qa", licence=ODC,
          notes="271,714 rows grouped into one example per image (count unknown)",
          files=(FileSpec("data/train-00000-of-00001.parquet",
                          "0bdc1d3a636dd7c260ec99063a757441023a951924b2314eb13abbdf385a763e",
                          138_400_335),),
          revision="94817b574767a6243df8f3a7fcfb6fd74075b503"),
        d("pixmo_multi_image_qa_multi_only_max5", Task.MULTI_IMAGE, multi,
          "allenai/Molmo2-MultiImageQA", media="url", reader="pixmo_multi_image_qa",
          reader_kwargs={"min_images": 2, "max_images": 5}),
        d("pixmo_multi_points", Task.MULTI_IMAGE, multi, "allenai/molmo2-pixmo-multi-points",
          media="url", reader="pixmo_multi_points",
          notes="split train; rows' `images` are PixMo-Points image paths under RAW; 0-100",
          manual="download pixmo_points_train first: its images (RAW/pixmo_images/) are the "
          "ones these rows point at; rows whose images are missing are skipped"),
        d("cosyn_point", Task.POINTING, img, "allenai/CoSyn-point", reader="cosyn_point",
          size=68_051, licence=ODC,
          notes="split train (card: train 68,051 / validation 1,000); images embedded; "
          "answer_points {x: [...], y: [...]} per question, 0-100 (Molmo2 CoSynPoint)"),
        # --- text ---
        d("tulu4_max_2304", Task.TEXT, txt, "allenai/molmo2-tulu4-classified", media="none",
          reader="tulu", reader_kwargs={"max_first_message_tokens": 2304}),
        d("tulu4", Task.TEXT, txt, "allenai/molmo2-tulu4-classified", media="none",
          reader="tulu", reader_kwargs={"max_first_message_tokens": 4096}),
        d("molmo2_hardcodes", Task.TEXT, txt, "allenai/molmo2-hardcodes", media="none",
          reader="hardcodes", notes="one example per (question, image); hardcodes without an "
          "image are marked meta['pair_with_random_media'] (Molmo2 pairs them with a random "
          "image/video/multi-image/none input, .25/.25/.15/.35)"),
        # --- demo video ---
        d("molmo2_human_qa", Task.VIDEO_QA, vid, "allenai/Molmo2-AskModelAnything",
          media="manual", size=140_000, split="HumanQA", reader="video_qa",
          reader_kwargs={"video": "video_id", "youtube_cc": True, "style": "user_qa"},
          notes="Molmo2HumanQA: QAs of a video as one message tree; YouTube videos; size = QA pairs "
          "(paper, 3rd-party)", manual=_YT + ", placed as " + _YT_CC),
        d("vixmo3_top_level_captions_min_3", Task.VIDEO_CAPTION, vid, "allenai/Molmo2-Cap",
          media="manual", reader="molmo2_cap", reader_kwargs={"min_score": 3, "max_captions": 4},
          notes="split train only (val is held out); 104k videos / 431k "
          "clip captions (paper, 3rd-party)",
          manual=_YT + ", placed as " + _YT_CC + " (or youtube_temporal/batch_1, intern/batch_1, "
          "kw_youtube/batch_1 /<video_id>.mp4, or the LLaVA-Video-178K subdirs, as Molmo2)"),
        # --- video pointing ---
        *[d(f"vixmo_points_minmax_{b}", Task.VIDEO_POINTING, vid, "allenai/Molmo2-VideoPoint",
            media="manual", reader="molmo2_video_points",
            reader_kwargs={"min_count": lo, "max_count": hi},
            configs=VIDEO_POINT_CONFIGS, allow_patterns=(), manual=_VIDEO_POINT_MANUAL,
            notes="8 configs, split train; clips <= 63 s (clip_start/clip_end); times are "
            "clip-relative; YouTube/MammalNet videos manual, generated videos in the repo")
          for b, lo, hi in (("0_5", 0, 5), ("6_25", 6, 25), ("26_60", 26, 60))],
        d("academic_points_clip_63s_2fps", Task.VIDEO_POINTING, vid,
          "allenai/molmo2-academic-video-points", media="manual",
          reader="academic_video_points", reader_kwargs={"video_dir": VIDEO_ROOT},
          notes="AcademicVideoPoint(use_clips_from_metadata=True, max_points=60, 63 s clips); "
          "split train; times relative to clip_start_time",
          manual="encode the source videos (LV-VIS, OVIS, BURST/TAO, Ref-DAVIS17, MeViS, "
          "Ref-YT-VOS) at 2 fps as RAW/video_datasets/<root>/<video>.mp4 with the roots of "
          "m2 _ACADEMIC_POINT_VIDEO_ROOTS (e.g. LV-VIS/train/videos-2fps/)"),
    ]
    # --- image and video academic (registry_academic.py) ---
    for name, kw in {**academic.IMAGE_SPECS, **academic.VIDEO_SPECS}.items():
        kw = dict(kw)
        urls = tuple(FileSpec(u) for u in kw.pop("urls", ()))
        if urls:
            fetched = ", ".join(u.path.rsplit("/", 1)[-1] for u in urls)
            kw["manual"] = kw.get("manual", "") + f" (download fetches {fetched} into RAW/http/{name}/)"
        specs.append(d(name, kw.pop("task"), kw.pop("modality"), kw.pop("repo"), urls=urls,
                       **kw))
    for name, (repo, split) in _CAPQA.items():
        specs.append(d(name, Task.VIDEO_QA, vid, repo, media="manual", reader="molmo2_video_capqa",
                       split=split, manual=_YT + ", placed as " + _YT_CC))
    # --- tracking (allenai/molmo2-<set> annotations; most videos manual) ---
    for names, _ in _TRACKING_SUBGROUPS.values():
        for name in names:
            ds, task = next((name[:-len(t) - 1], t) for t in _TRACK_TASKS if name.endswith(t))
            manual = ""
            if task == "sot_from_bbox":
                specs.append(d(name, Task.TRACKING, vid, media="manual", reader="molmo2_track",
                               **academic.sot_spec(ds)))
                continue
            elif ds == "molmo2_video":
                repo, pat, cfg = "allenai/molmo2-track-instruction", (), (task,)
                kw = {"task": task, "layout": "track_instruction"}
                manual = ("build the clips with allenai/molmo2 Molmo2VideoTrack.download() (per "
                          "source: frames -> mp4) into RAW/video_datasets/video_track/<Source>/"
                          "videos/train/<clip>.mp4")
            else:
                repo, pat, cfg = f"allenai/molmo2-{ds.replace('_', '-')}", (), (task,)
                vdir = _ACADEMIC_TRACK_DIRS.get(ds, ds)
                kw = {"task": task, "video_dir": f"{VIDEO_ROOT}/video_track/{vdir}/train/videos"}
                manual = (f"get the {vdir} videos from the original site and encode them as "
                          f"RAW/{VIDEO_ROOT}/video_track/{vdir}/train/videos/<video>.mp4 "
                          "(allenai/molmo2 academic_video_track_datasets.py)")
            if name not in {x.name for x in specs}:
                specs.append(d(name, Task.TRACKING, vid, repo, media="manual", allow_patterns=pat,
                               reader="molmo2_track" if kw else None, reader_kwargs=kw,
                               configs=cfg, manual=manual,
                               notes=f"config {task}, split train" if cfg else ""))
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
