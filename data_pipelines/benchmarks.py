"""Molmo2's evaluation benchmarks (allenai/molmo2 `launch_scripts/eval_molmo2.py`) as data.

Each `Benchmark` names its annotations (a `registry.DatasetSpec`, same fields as the training sets),
the split Molmo2 evaluates, the metric of `molmo2_jax.eval.scoring` (allenai's evaluator for it, from
`olmo/eval/eval_utils.py::get_evaluator`), the answer budget (`get_default_max_tokens`) and where the
raw files are expected under the download root RAW:

    RAW/hf/<repo>/...          HF snapshot (python -m data_pipelines.download / huggingface-cli)
    RAW/http/<name>/<file>     plain HTTP files of the spec (`urls`)
    RAW/<media_dir>/...        images / videos the reader resolves (`reader_kwargs["media_dir"]`)

Gated or manual sets (`media="manual"`) carry `instructions` the CLI prints when files are missing.
`PUBLISHED` holds Molmo2's own numbers where a source states them (the source is named per entry).
"""

from __future__ import annotations

import dataclasses

from data_pipelines.registry import THIRD_PARTY, DatasetSpec, FileSpec
from data_pipelines.schema import Task

COUNTBENCH_QAS = ("https://raw.githubusercontent.com/google-research/big_vision/"
                  "46b2456f54b9d4f829d1925b78943372b376153d/big_vision/datasets/countbenchqa/data/"
                  "countbench_paired_questions.json")


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One Molmo2 eval task: annotations, split, metric and generation budget."""

    dataset: DatasetSpec
    family: str                    # image_pointing | image_qa | video_qa | video_pointing | tracking
    metric: str                    # key of molmo2_jax.eval.scoring.METRICS
    split: str = "test"
    max_new_tokens: int = 12
    score_key: str = "score"       # which aggregate is the headline number
    instructions: str = ""         # what to do when the files are not there

    @property
    def name(self) -> str:
        return self.dataset.name


def _b(name, task, modality, repo, family, metric, *, split="test", max_new_tokens=12, reader=None,
       reader_kwargs=None, media="hf", urls=(), allow_patterns=(), licence=THIRD_PARTY, notes="",
       instructions="") -> Benchmark:
    spec = DatasetSpec(name, task, modality, repo, urls=tuple(FileSpec(u) for u in urls),
                       allow_patterns=tuple(allow_patterns), media=media, reader=reader,
                       reader_kwargs=dict(reader_kwargs or {}), licence=licence, notes=notes)
    return Benchmark(spec, family, metric, split, max_new_tokens, instructions=instructions)


_TRACK_INSTRUCTIONS = ("annotations: `huggingface-cli download {repo} --repo-type dataset --local-dir RAW/hf/{repo}`; "
                       "videos: follow allenai/molmo2 README (`python scripts/download_data.py tracking`) and place "
                       "clips as RAW/{media}/<video>.mp4{masks}")


def _tracking(name: str, repo: str, media_dir: str, masks_dir: str | None, notes: str) -> Benchmark:
    kw = {"media_dir": media_dir}
    if masks_dir:
        kw["masks_dir"] = masks_dir
    masks = f"; GT masks as RAW/{masks_dir}/<video>/<qid>.json (allenai's MasksRLE)" if masks_dir else ""
    return _b(name, Task.TRACKING, "video", repo, "tracking", "track_in_mask", max_new_tokens=4096,
              reader="molmo2_track_eval", reader_kwargs=kw, media="manual", notes=notes,
              instructions=_TRACK_INSTRUCTIONS.format(repo=repo, media=media_dir, masks=masks))


_BENCHMARKS = [
    # --- image pointing / counting (IMAGE_POINTING) ---
    _b("countbench_qa", Task.COUNTING, "image", "nielsr/countbench", "image_pointing", "point_count",
       split="huggingface", max_new_tokens=192, reader="countbench_qa", urls=(COUNTBENCH_QAS,),
       notes="CountBench image/count pairs + PaliGemma's questions (big_vision JSON), zipped by row order",
       instructions="the parquet and `countbench_paired_questions.json` are public; rerun the download"),
    _b("pixmo_count_counting", Task.COUNTING, "image", "allenai/pixmo-count", "image_pointing", "point_count",
       split="validation", max_new_tokens=192, reader="pixmo_count_eval", media="url",
       allow_patterns=("*validation*",), licence="odc-by",
       notes="images fetched from URLs into pixmo_images/<sha256(url)>"),
    _b("pointing_eval_v2", Task.POINTING, "image", "allenai/pixmo-points-eval", "image_pointing",
       "pointing_eval", max_new_tokens=192, reader="pixmo_points_eval", media="url", licence="odc-by",
       notes="points 0-100, one boolean mask per point; images fetched from URLs"),
    _b("point_bench", Task.POINTING, "image", "PointArena/pointarena-data", "image_pointing", "point_bench",
       max_new_tokens=256, reader="point_bench", reader_kwargs={"media_dir": "hf/PointArena/pointarena-data"},
       notes="data.json + selected_images/<category>/, selected_masks/<category>/ (unzip the two zips)",
       instructions="download PointArena/pointarena-data and unzip selected_images.zip and selected_masks.zip "
                    "inside RAW/hf/PointArena/pointarena-data"),
    # --- image QA of the release table (IMAGE_TASKS) ---
    _b("chart_qa", Task.VQA, "image", "HuggingFaceM4/ChartQA", "image_qa", "relaxed_correctness",
       reader="chart_qa", allow_patterns=("*test*",), notes="documents/charts; images embedded"),
    _b("real_world_qa_no_instruction", Task.VQA, "image", "xai-org/RealworldQA", "image_qa", "real_world_qa",
       reader="real_world_qa", notes="multiple choice + short answer; images embedded"),
    _b("text_vqa", Task.VQA, "image", "allenai/molmo2-text-vqa", "image_qa", "vqa_score", split="validation",
       reader="vqa_answers", reader_kwargs={"media_dir": "text_vqa"}, allow_patterns=("*validation*",), media="manual",
       notes="open VQA; rows image + message_list [{question, answers}] (allenai Ai2HfDataset layout)",
       instructions="annotations from allenai/molmo2-text-vqa; images: unzip TextVQA train_val_images.zip "
                    "(dl.fbaipublicfiles.com/textvqa) into RAW/text_vqa"),
    # --- video QA (SHORT_VIDEO / LONG_VIDEO) ---
    _b("video_mme", Task.VIDEO_QA, "video", "lmms-lab/Video-MME", "video_qa", "video_mme", split="validation",
       reader="video_mme", reader_kwargs={"media_dir": "hf/lmms-lab/Video-MME/data"}, media="manual",
       notes="videomme/test-00000-of-00001.parquet; videos in the repo's zips",
       instructions="download lmms-lab/Video-MME and unzip the video zips so videos are "
                    "RAW/hf/lmms-lab/Video-MME/data/<videoID>.mp4"),
    _b("mvbench", Task.VIDEO_QA, "video", "OpenGVLab/MVBench", "video_qa", "em_start", split="validation",
       max_new_tokens=32, reader="mvbench", reader_kwargs={"media_dir": "hf/OpenGVLab/MVBench/video"},
       media="manual", notes="json/<task>.json; videos from the repo's zips (+ NTU RGB+D, manual)",
       instructions="download OpenGVLab/MVBench, unzip video/*.zip in place; the NTU RGB+D clips listed in "
                    "video/MVBench_videos_ntu.txt need a manual download"),
    _b("long_video_bench_no_subtitle", Task.VIDEO_QA, "video", "longvideobench/LongVideoBench", "video_qa",
       "long_video_bench", split="validation", reader="long_video_bench",
       reader_kwargs={"media_dir": "hf/longvideobench/LongVideoBench/videos"}, media="manual",
       licence="gated (accept the LongVideoBench licence on HF)",
       notes="lvb_val.json; gated repo", instructions=(
           "LongVideoBench is gated: accept the agreement at https://huggingface.co/datasets/longvideobench/"
           "LongVideoBench, `huggingface-cli login`, download into RAW/hf/longvideobench/LongVideoBench and run "
           "`cat videos.tar.part.* | tar -xf -` there")),
    # --- video pointing / counting (VIDEO_POINTING) ---
    _b("vixmo_points_count_clip_63s", Task.VIDEO_POINTING, "video", "allenai/Molmo2-VideoCountEval",
       "video_pointing", "video_count", split="val", max_new_tokens=2048, reader="molmo2_video_count_eval",
       reader_kwargs={"media_dir": "videos"}, media="manual",
       notes="Molmo2-VideoCountEval; videos as <video_id>_2fps.mp4 (or <video_id>.mp4) under RAW/videos",
       instructions="annotations: allenai/Molmo2-VideoCountEval; videos: see its card, converted to 2 fps, "
                    "as RAW/videos/<video_id>_2fps.mp4"),
    _b("vixmo_points_point_eval", Task.VIDEO_POINTING, "video", "allenai/Molmo2-VideoPointEval",
       "video_pointing", "video_point", split="val", max_new_tokens=2048, reader="molmo2_video_point_eval",
       reader_kwargs={"media_dir": "videos"}, media="manual",
       notes="Molmo2-VideoPointEval; points in pixels, masks RLE at 2 fps",
       instructions="annotations: allenai/Molmo2-VideoPointEval; videos: see its card, as "
                    "RAW/videos/<video_id>_2fps.mp4"),
    # --- tracking (TRACKING) ---
    _tracking("molmo2_video_track_eval_1fps", "allenai/Molmo2-VideoTrackEval", "videos/track_eval", None,
              "3.7k examples, configs animal/dance/sports/person/misc; rows hold points and RLE masks per frame"),
    _tracking("mevis_track_eval_1fps", "allenai/molmo2-mevis", "videos/mevis", "masks/mevis",
              "MeViS point-track variant: frame_trajectories rows + MasksRLE json"),
    _tracking("ref_yt_vos_track_eval_1fps", "allenai/molmo2-ref-yt-vos", "videos/ref_yt_vos", "masks/ref_yt_vos",
              "Ref-YouTube-VOS point-track variant"),
    _tracking("ref_davis17_track_eval_1fps", "allenai/molmo2-ref-davis17", "videos/ref_davis17",
              "masks/ref_davis17", "Ref-DAVIS17 point-track variant"),
]

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in _BENCHMARKS}

FAMILIES = ("image_pointing", "image_qa", "video_qa", "video_pointing", "tracking")

# Molmo2's published numbers (model -> benchmark -> score in %), each with its source.
PUBLISHED_SOURCE = "Molmo2 tech report, arXiv:2601.10611 (abstract)"
PUBLISHED: dict[str, dict[str, float]] = {
    "Molmo2-8B": {"vixmo_points_count_clip_63s": 35.5, "vixmo_points_point_eval": 38.4},
}
# The report states 56.2 J&F for Molmo2-8B video tracking; our tracking score is allenai's point-in-mask F1,
# a different measure, so it is listed but not compared.
PUBLISHED_OTHER = {"Molmo2-8B": {"video tracking J&F": 56.2}}


def get(name: str) -> Benchmark:
    """The benchmark `name` (a `name:split` suffix is accepted and ignored); KeyError lists the known ones."""
    base = name.split(":")[0]
    if base not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[base]


def by_family(family: str) -> list[Benchmark]:
    """Benchmarks of one family, in table order."""
    if family not in FAMILIES:
        raise KeyError(f"unknown benchmark family {family!r}; families: {FAMILIES}")
    return [b for b in _BENCHMARKS if b.family == family]
