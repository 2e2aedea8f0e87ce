"""Registry data of the Molmo2 academic image / video sets and single-object tracking.

Plain dicts of `registry.DatasetSpec` fields per dataset (registry.py builds the specs), from
allenai/molmo2 @ f3cb1085: `olmo/data/academic_image_datasets.py`,
`academic_multi_image_datasets.py`, `academic_video_datasets.py`,
`academic_video_track_datasets.py`, `dataset_builders/*`. Paths: images relative to RAW
(Molmo2's DATA_HOME), videos relative to RAW/video_datasets (its VIDEO_DATA_HOME).
`data_files` of an entry without a repo are globs relative to RAW (the original-site files a
user places by hand); `reader_kwargs["table"]` says how `readers.tables.iter_table` parses them.
"Layout inferred" marks a file layout read from the loader code, not from a listing.
"""

from __future__ import annotations

from typing import Any

from data_pipelines.schema import Task

V = "video_datasets"
TP = "see source (unverified)"
MC, OE = "video_multiple_choice", "video_short_answer"
_HF_CONFIG_TRAIN = ("train/*",)  # Ai2HfDataset: config named after the split, split "train"
_COCO14 = ("download http://images.cocodataset.org/zips/train2014.zip and unzip it into "
           "RAW/images/coco/ (Molmo2 `_ensure_coco2014_downloaded`), so each row's `image` path "
           "exists under RAW")
_COCO17 = _COCO14.replace("2014", "2017")
_VG = ("; Visual Genome: https://cs.stanford.edu/people/rak248/VG_100K_2/images.zip and "
       "images2.zip into RAW/images/vg/")


def _fetch_only_read_files(repo: str | None, spec: dict[str, Any]) -> dict[str, Any]:
    """Snapshot only the files the reader reads (a repo's other configs / splits stay remote)."""
    if repo and spec.get("data_files") and "allow_patterns" not in spec:
        spec["allow_patterns"] = spec["data_files"]
    return spec


def _img(repo: str | None, kw: dict[str, Any], *, reader: str = "image_qa", **spec: Any
         ) -> dict[str, Any]:
    return _fetch_only_read_files(repo, {"task": Task.VQA, "modality": "image", "repo": repo,
                                         "reader": reader, "reader_kwargs": kw, "licence": TP,
                                         **spec})


def _ai2_messages(style: str, **kw: Any) -> dict[str, Any]:
    return {"qa_list": "message_list", "answer": "answers", "style": style, **kw}


IMAGE_SPECS: dict[str, dict[str, Any]] = {
    "coco_2014_vqa_multi": _img("allenai/molmo2-vqa2-2014", _ai2_messages("vqa2"),
                                media="manual", data_files=_HF_CONFIG_TRAIN, manual=_COCO14,
                                notes="Molmo2 Vqa2 (Ai2HfDataset config train); one example per "
                                      "image, its questions as a message tree; layout inferred"),
    "okvqa": _img("allenai/molmo2-okvqa",
                  {"qa_list": "qas", "answer": "answers.raw_answer", "flatten": True,
                   "style": "okvqa"},
                  media="manual", data_files=_HF_CONFIG_TRAIN, manual=_COCO14,
                  notes="OkVqa(flatten_annotations=True): one example per question"),
    "tally_qa": _img("allenai/molmo2-tally-qa", _ai2_messages("tally_qa"), media="manual",
                     data_files=_HF_CONFIG_TRAIN, manual=_COCO14 + _VG),
    "text_vqa": _img("allenai/molmo2-text-vqa", _ai2_messages("text_vqa"), media="manual",
                     data_files=_HF_CONFIG_TRAIN,
                     manual="download https://dl.fbaipublicfiles.com/textvqa/images/"
                            "train_val_images.zip and unzip it into RAW/text_vqa/train_images/"),
    "a_okvqa_mc": _img("allenai/molmo2-a-ok-vqa",
                       {"qa_list": "message_list", "options": "choices",
                        "answer_idx": "answer_idx", "mode": "mc", "answer": None,
                        "style": "a_okvqa_mc"},
                       media="manual", data_files=_HF_CONFIG_TRAIN, manual=_COCO17),
    "a_okvqa_da": _img("allenai/molmo2-a-ok-vqa",
                       _ai2_messages("a_okvqa_da", answer="direct_answers"),
                       media="manual", data_files=_HF_CONFIG_TRAIN, manual=_COCO17),
    "chart_qa_weighted": _img("HuggingFaceM4/ChartQA",
                              {"question": "query", "answer": "label", "style": "chart_qa",
                               "weight_field": "human_or_machine",
                               "weights": {"0": 2 * 20901 / 28299, "1": 2 * 7398 / 28299}},
                              media="hf", split="train", size=28_299,
                              notes="ChartQa(weighted=True): human 20,901 / augmented 7,398 "
                                    "rows (Molmo2 constants), per-example weight in "
                                    "meta['example_weight']"),
    "doc_qa": _img(None, {"image": "image", "image_dir": "docqa", "answer": "answers",
                          "style": "doc_qa", "table": {"record_path": "data"}},
                   media="manual", data_files=("docqa/train_v1.0_withQT.json",),
                   manual="register at https://rrc.cvc.uab.es/?ch=17 (Task 1), put "
                          "train_v1.0_withQT.json and the documents/ folder in RAW/docqa/"),
    "info_qa": _img(None, {"image": "image_local_name", "image_dir": "info_qa/images",
                           "answer": "answers", "style": "info_qa",
                           "table": {"record_path": "data"}},
                    media="manual", data_files=("info_qa/infographicsVQA_train_v1.0.json",),
                    manual="register at https://rrc.cvc.uab.es/?ch=17 (Task 3), put "
                           "infographicsVQA_train_v1.0.json in RAW/info_qa/ and the images in "
                           "RAW/info_qa/images/"),
    "st_qa": _img(None, {"image": "file_path", "image_dir": "scene-text", "answer": "answers",
                         "style": "st_qa", "table": {"record_path": "data"},
                         "holdout": {"key": "question_id", "n": 1024, "seed": 63069}},
                  media="manual", data_files=("scene-text/train_task_3.json",),
                  manual="register at https://rrc.cvc.uab.es/?ch=11, put train_task_3.json and "
                         "the images (its file_path) in RAW/scene-text/",
                  notes="1,024 questions held out as Molmo2's custom validation split"),
    "ai2_diagram_v2_mix_transparent": _img(
        None, {"image_dir": "ai2d/images", "boxes": "both"}, reader="ai2d", media="manual",
        data_files=("ai2d/questions/*.json",),
        urls=("http://ai2-website.s3.amazonaws.com/data/ai2d-all.zip",),
        manual="unzip ai2d-all.zip (fetched into RAW/http/<name>/) so RAW/ai2d/questions/ and "
               "RAW/ai2d/images/ exist", notes="AI2D(boxes='both') via Ai2dDatasetBuilder"),
    "science_qa_img": _img("derek-thomas/ScienceQA",
                           {"hint": "hint", "options": "choices", "answer_idx": "answer",
                            "answer": None, "mode": "mc", "require": "image",
                            "style": "science_qa"},
                           media="hf", split="train",
                           notes="ScienceQAImageOnly: rows without an image are filtered"),
    "tabwmp_da": _img(None, {"image_template": "{_key}.png", "image_dir": "tabmwp/tables",
                             "style": "tabwmp_da"},
                      media="manual", data_files=("tabmwp/problems_train.json",),
                      urls=("https://codeload.github.com/lupantech/PromptPG/legacy.zip/main",),
                      manual="unzip the PromptPG archive and copy its data/tabmwp/ to RAW/tabmwp/",
                      notes="TabWMPDirectAnswer(include_options=False)"),
    "dv_qa": _img(None, {"image": "image", "image_dir": "dvqa/images", "group_by": "image",
                         "style": "dv_qa"},
                  media="manual", data_files=("dvqa/train_qa.json",),
                  manual="download DVQA (Google Drive ids in m2:dataset_builders/dv_qa.py) into "
                         "RAW/dvqa/ (train_qa.json, images/)", notes="capped at 10,000 by the mix"),
    "figure_qa": _img(None, {"image_template": "{image_index}.png",
                             "image_dir": "figureqa/train1/png", "group_by": "image_index",
                             "question": "question_string", "style": "figure_qa",
                             "table": {"record_path": "qa_pairs"}},
                      media="manual", data_files=("figureqa/train1/qa_pairs.json",),
                      urls=("https://download.microsoft.com/download/c/3/1/c315c9d8-8239-487e-"
                            "a895-2d3ff805b508/figureqa-train1-v1.tar.gz",),
                      manual="untar figureqa-train1-v1.tar.gz into RAW/figureqa/train1/"),
    "plot_qa": _img(None, {"image_template": "{image_index}.png", "image_dir": "plotqa/train/png",
                           "group_by": "image_index", "question": "question_string",
                           "style": "plot_qa", "table": {"record_path": "qa_pairs"}},
                    media="manual", data_files=("plotqa/train/qa_pairs.json",),
                    manual="download PlotQA train (Google Drive ids in m2:dataset_builders/"
                           "plot_qa.py) as RAW/plotqa/train/{qa_pairs.json,png/}"),
}
for _c in ("chart", "chemical", "diagram", "document", "math", "music", "table"):
    _exp = _c != "document"  # sft.py lists "cosyn_document" (no explanation)
    IMAGE_SPECS[f"cosyn_{_c}_exp"] = _img(
        "allenai/CoSyn-400K", {"qa_list": "qa_pairs", "style": f"cosyn_{_c}" + "_exp" * _exp,
                               "explanation": "explanation" if _exp else None},
        media="hf", data_files=(f"{_c}/train-*",), licence="odc-by",
        notes="" if _exp else "Molmo2 sft.py uses cosyn_document (answers without explanation)")
for _c in ("chart", "chemical", "diagram", "doc", "music", "table"):
    IMAGE_SPECS[f"cosyn_multidoc_{_c}_exp"] = _img(
        "allenai/Molmo2-SynMultiImageQA",
        {"image": None, "images": "images", "max_images": 5, "qa_list": "qa_pairs",
         "explanation": "explanation", "style": f"cosyn_{_c}_exp"},
        media="hf", data_files=(f"{_c}/train-*",), task=Task.MULTI_IMAGE, modality="multi_image",
        licence="odc-by", notes="PixmoMulitDocQa(max_images=5)")
for _c in ("llava_665k_multi", "nlvr2", "spot-the-diff"):
    IMAGE_SPECS[f"mantis_instruct_{_c}_multi_only"] = _img(
        f"allenai/molmo2-mantis-instruct-{_c}",
        {"image": None, "images": "images", "min_images": 2,
         "qa_list": ["mc_question", "choices", "correct_choice_idx"], "question": "mc_question",
         "options": "choices", "answer_idx": "correct_choice_idx", "answer": None, "mode": "mc",
         "style": "mantis_instruct_mc"},
        media="manual", split="train", task=Task.MULTI_IMAGE, modality="multi_image",
        manual=f"snapshot TIGER-Lab/Mantis-Instruct {_c}/ and unzip {_c}/train_images.zip into "
               f"RAW/mantis-instruct/{_c}/train_images/ (rows' image paths are relative to RAW)",
        notes="MantisInstruct(multi_image_only=True): rows with >1 image, MC questions")


def _vid(repo: str | None, kw: dict[str, Any], *, reader: str = "video_qa", **spec: Any
         ) -> dict[str, Any]:
    if spec.get("task", Task.VIDEO_QA) != Task.VIDEO_QA:
        kw = {**kw, "task": spec["task"]}   # the Examples carry the entry's task
    return _fetch_only_read_files(repo, {"task": Task.VIDEO_QA, "modality": "video",
                                         "repo": repo, "reader": reader, "reader_kwargs": kw,
                                         "media": "manual", "licence": TP, **spec})


_LLAVA = "lmms-lab/LLaVA-Video-178K"
_LLAVA_DIR = f"hf/{_LLAVA}"
_LLAVA_MC = ("0_30_s_perceptiontest", "0_30_s_nextqa", "30_60_s_perceptiontest",
             "30_60_s_nextqa", "1_2_m_nextqa", "2_3_m_nextqa")
_LLAVA_OE = ("0_30_s_activitynetqa", "0_30_s_nextqa", "30_60_s_activitynetqa", "30_60_s_nextqa",
             "1_2_m_activitynetqa", "1_2_m_nextqa", "2_3_m_activitynetqa", "2_3_m_nextqa")
_LLAVA_MANUAL = ("extract every *.tar.gz of the downloaded subset folders in place (RAW/hf/"
                 f"{_LLAVA}/<subset>/), so <data_source>/<video> exists under RAW/hf/{_LLAVA}")
_TEMPLATE = "What action is being performed?"  # first of Molmo2's label question templates


def _segments(home: str, annotations: str, label: str, json_name: str, what: str,
              **kw: Any) -> dict[str, Any]:
    """COIN / YouCook2: a `database` JSON of training videos with labelled segments."""
    return _vid(None, {"segments": annotations, "label": label, "subset": "train", **kw,
                       "video_template": "{video}", "video_dir": f"{V}/{home}/videos",
                       "video_exts": [".mkv", ".mp4", ".webm"],
                       "table": {"record_path": "database"}},
                reader="video_segments", data_files=(f"{V}/{home}/{json_name}",),
                manual=f"{what} into RAW/{V}/{home}/ (videos/<id>.<ext>)")


def _llava(kind: str, subsets: tuple[str, ...], style: str) -> dict[str, Any]:
    """LLaVAVideoAcademic(answer_type): the `*mc*` / `*oe*` json of each academic subset."""
    return _vid(_LLAVA, {"video_template": "{data_source}/{video}", "video_dir": _LLAVA_DIR,
                         "turns": "conversations", "style": style},
                data_files=tuple(f"{s}/*{kind}*.json" for s in subsets),
                allow_patterns=tuple(f"{s}/*" for s in subsets), media="hf",
                manual=_LLAVA_MANUAL, notes=f"LLaVAVideoAcademic({kind}); Molmo2 reads only the "
                                            "first json per subset")

VIDEO_SPECS: dict[str, dict[str, Any]] = {
    "llava_video_mc_academic": _llava("mc", _LLAVA_MC, MC),
    "llava_video_oe_academic": _llava("oe", _LLAVA_OE, OE),
    "funqa": _vid("fesvhtr/FunQA",
                  {"parse": "funqa", "video_template": "train_{kind}/{visual_input}",
                   "video_dir": "hf/fesvhtr/FunQA/train",
                   "where_not": {"task": ["H1", "C1", "M1", "C4", "C5"]},
                   "question": "_q", "answer": "_a", "options": "_options", "answer_idx": "_idx",
                   "mode": "auto", "style": OE, "mc_style": MC},
                  data_files=("FunQA_train.json", "Funqa_mcqa_v1.json"),
                  allow_patterns=("FunQA_train.json", "Funqa_mcqa_v1.json", "train*"),
                  manual="unzip the downloaded train.zip in place, so RAW/hf/fesvhtr/FunQA/train/"
                         "train_{humor,creative,magic}/ hold the videos",
                  notes="open tasks except the timestamp-output ones (H1, C1, M1, C4, C5), plus "
                        "the MC questions of Funqa_mcqa_v1.json"),
    "camerabench_qa": _vid(
        "allenai/Molmo2-CameraBenchTrain",
        {"video": "video_path", "video_dir": f"{V}/CameraBench/train", "qa_list": "mc_qa_list",
         "question": "Question", "answer": "Answer", "negatives": "NegativeAnswers", "mode": "mc",
         "style": MC}, data_files=("camerabench_qa.parquet",),
        manual=f"place the CameraBench train videos as RAW/{V}/CameraBench/train/<video_path>"),
    "social_iq2": _vid(
        "PediaMedAI/Social-IQ-Video",
        {"video_template": "{vid_name}.mp4", "video_dir": f"{V}/social-iq2/video",
         "question": "q", "options": ["a0", "a1", "a2", "a3"], "answer_idx": "answer_idx",
         "answer": None, "mode": "mc", "style": MC}, split="train",
        manual=f"place the Social-IQ 2.0 videos as RAW/{V}/social-iq2/video/<vid_name>.mp4"),
    "motionbench_train": _vid(
        "zai-org/MotionBench",
        {"video": "video_path", "video_dir": "hf/zai-org/MotionBench/MotionBenchCaption-train/"
                                             "videos",
         "template": "Describe the motion in this video.", "answer": "motion_caption",
         "style": "video_motion_caption"}, task=Task.VIDEO_CAPTION, media="hf",
        data_files=("MotionBenchCaption-train/train.jsonl",),
        allow_patterns=("MotionBenchCaption-train/*",),
        notes="MotionBenchCaption: captions, prompt wording ours (style video_motion_caption)"),
    "video_localized_narratives_caption": _vid(
        "allenai/Molmo2-VideoLocalizedNarrativesCaptionHf",
        {"video": "video", "video_dir": V, "qa_list": ["captions", "actor_names"],
         "template": "Describe what the {actor_names} does in this video.",
         "answer": "captions", "style": "video_object_caption"},
        task=Task.VIDEO_CAPTION, data_files=("hf_dataset/*.arrow",),
        allow_patterns=("hf_dataset/*",),
        manual=f"videos (oops, kinetics700, UVO, OVIS) under RAW/{V}/ at each row's `video`"),
    "cinepile_with_sub": _vid(
        "allenai/Molmo2-cinepile",
        {"video_template": "{video_id}/{video_id}.mp4", "video_dir": f"{V}/cinepile/videos",
         "qa_list": "examples", "options": "choices", "answer_idx": "answer_key_position",
         "answer": None, "mode": "mc", "subtitle": "subtitles",
         "style": "video_multiple_choice_w_subtitle"}, split="train",
        manual=f"download the CinePile YouTube clips as RAW/{V}/cinepile/videos/<id>/<id>.mp4"),
    "news_video_qa_filtered": _vid(
        "allenai/Molmo2-NewsVideoQA",
        {"video_template": "train/{uni_clipped_id}.mp4",
         "video_dir": f"{V}/NewsVideoQA/final_data_feb_16/videos", "style": OE},
        data_files=("final_data_feb_16/json_files/raw_files/new_train.json",),
        manual=f"place the NewsVideoQA clips as RAW/{V}/NewsVideoQA/final_data_feb_16/videos/"
               "train/<uni_clipped_id>.mp4", notes="empty answers skipped (filter_empty_answers)"),
    "countix_oe": _vid(
        "allenai/Molmo2-Countix",
        {"video": "video_path", "video_dir": f"{V}/kinetics/kinetics700",
         "question_table": "class", "question": "_question", "answer": "count", "style": OE},
        data_files=("**/countix_train_mapped.csv", "**/class_to_question.json"),
        manual=f"Kinetics-700 videos under RAW/{V}/kinetics/kinetics700/ at each row's "
               "video_path", notes="question: the first of the class's templates in "
                                   "class_to_question.json (Molmo2 draws one at random)"),
    "paxion": _vid(
        "allenai/Molmo2-Paxion",
        {"parse": "paxion", "video": "_video", "video_dir": V, "start": "_start", "end": "_end",
         "template": "What activity does the video depict?",
         "options": ["_label", "_antonym", "_not_sure"], "answer": "_label", "mode": "mc",
         "style": MC},
        data_files=("ssv2/antonyms/train_with_rel_path.json",
                    "ego4d/egoclip_subset_action_antonyms_train_val_test_split/train.jsonl"),
        manual=f"Something-Something v2 videos as RAW/{V}/sth-sth-v2/videos/<rel_vid_path>; "
               f"Ego4D full-scale videos (licence) as RAW/{V}/Ego4d/ego4d_data/v2/full_scale/"
               "<video_uid>.mp4",
        notes="SSv2 + Ego4D action antonyms; Ego4D as clips of the full video (Molmo2 prefers "
              "pre-cut clips); question = first template, options label / antonym / 'Not sure' "
              "in this order (upstream shuffles both)"),
    "tgif": _vid(
        "allenai/Molmo2-TGIF",
        {"parse": "tgif", "video_template": "{gif_name}.mp4", "video_dir": f"{V}/TGIF/videos",
         "options": ["a1", "a2", "a3", "a4", "a5"], "answer_idx": "answer",
         "answer": "answer_text", "mode": "both", "style": OE, "mc_style": MC,
         "table": {"delimiter": "\t"}},
        data_files=tuple(f"Train_{s}_question.csv" for s in ("action", "transition", "count",
                                                             "frameqa")),
        manual=f"TGIF GIFs (github.com/raingo/TGIF-Release) converted to mp4 as RAW/{V}/TGIF/"
               "videos/<gif_name>.mp4",
        notes="TGIF(answer_type='all'): action/transition MC + open, count/frameqa open"),
    "tvqa_with_sub": _vid(
        "allenai/Molmo2-TVQA",
        {"video_template": "{vid_name}.mp4", "video_dir": f"{V}/TVQA/videos", "ts": "ts",
         "question": "q", "options": ["a0", "a1", "a2", "a3", "a4"], "answer_idx": "answer_idx",
         "answer": None, "mode": "mc", "style": "video_multiple_choice_w_subtitle",
         "subtitle_rows": "sub", "subtitle_key": "vid_name"},
        data_files=("tvqa_train.jsonl", "tvqa_preprocessed_subtitles.jsonl"),
        manual=f"TVQA frames (frames_hq) encoded per episode as RAW/{V}/TVQA/videos/"
               "<vid_name>.mp4 (Molmo2 encodes each clip from its frames)",
        notes="clip = the row's ts; subtitles overlapping it, times relative to the clip start"),
    "clevrer": _vid(None, {"parse": "clevrer", "video_template": "{folder}/{video_filename}",
                           "video_dir": f"{V}/CLEVRER", "qa_list": "questions",
                           "options": "choices.choice", "correct": "choices.answer",
                           "mode": "auto", "style": OE, "mc_style": MC},
                    data_files=(f"{V}/CLEVRER/train.json",),
                    urls=("http://data.csail.mit.edu/clevrer/questions/train.json",
                          "http://data.csail.mit.edu/clevrer/videos/train/video_train.zip"),
                    manual=f"put train.json and the unzipped video_train.zip (folders "
                           f"video_XXXXX-YYYYY/) in RAW/{V}/CLEVRER/"),
    "how2qa": _vid(None, {"parse": "how2qa", "video": "clip",
                          "video_dir": f"{V}/how2QA/video-clips",
                          "video_exts": [".mp4", ".webm", ".mkv"], "negatives": "negatives",
                          "mode": "mc", "style": MC, "table": {"header": False}},
                   data_files=(f"{V}/how2QA/how2QA_train_release.csv",),
                   urls=("https://raw.githubusercontent.com/ych133/How2R-and-How2QA/master/"
                         "how2QA/how2QA_train_release.csv",),
                   manual=f"cut the HowTo100M clips as RAW/{V}/how2QA/video-clips/"
                          "<vid>_<start>_<end>.<ext>; csv beside"),
    "intent_qa": _vid(None, {"video_template": "{video_id}.mp4", "video_dir": f"{V}/IntentQA/videos",
                             "options": ["a0", "a1", "a2", "a3", "a4"], "answer_idx": "answer",
                             "answer": None, "mode": "both", "style": OE, "mc_style": MC,
                             "table": {}},
                      data_files=(f"{V}/IntentQA/train.csv",),
                      urls=("https://raw.githubusercontent.com/JoseponLee/IntentQA/main/datasets/"
                            "IntentQA/train.csv",),
                      manual=f"IntentQA (NExT-QA) videos as RAW/{V}/IntentQA/videos/<id>.mp4"),
    "perception_test": _vid(None, {"video_template": "{_key}.mp4",
                                   "video_dir": f"{V}/perception_test/train_videos",
                                   "qa_list": "mc_question", "options": "options",
                                   "answer_idx": "answer_id", "answer": None, "mode": "mc",
                                   "style": MC, "table": {}},
                            data_files=(f"{V}/perception_test/all_train.json",),
                            manual="download all_train.json and train videos from "
                                   "github.com/google-deepmind/perception_test into "
                                   f"RAW/{V}/perception_test/"),
    "nextqa_mc": _vid(None, {"video_template": "{video}.mp4", "video_map": "video",
                             "video_dir": f"{V}/NeXTQA/NExTVideo-all-videos",
                             "options": ["a0", "a1", "a2", "a3", "a4"], "answer_idx": "answer",
                             "answer": None, "mode": "mc", "style": MC, "table": {}},
                      data_files=(f"{V}/NeXTQA/train.csv", f"{V}/NeXTQA/map_vid_vidorID.json"),
                      manual=f"NExT-QA train.csv, map_vid_vidorID.json and the videos into "
                             f"RAW/{V}/NeXTQA/ (videos as NExTVideo-all-videos/<vidorID>.mp4)"),
    "sutd_trafficqa": _vid(None, {"video": "vid_filename",
                                  "video_dir": f"{V}/SUTD-TrafficQA/compressed_videos",
                                  "question": "q_body",
                                  "options": ["option0", "option1", "option2", "option3"],
                                  "answer_idx": "answer", "answer": None, "mode": "mc",
                                  "style": MC, "header_row": True},
                           data_files=(f"{V}/SUTD-TrafficQA/R2_train.jsonl",),
                           manual="request SUTD-TrafficQA, put R2_train.jsonl and "
                                  f"compressed_videos/ in RAW/{V}/SUTD-TrafficQA/"),
    "star": _vid(None, {"video_template": "{video_id}.mp4", "video_dir": f"{V}/Charades/Charades_v1",
                        "start": "start", "end": "end", "options": "choices.choice",
                        "mode": "both", "style": OE, "mc_style": MC, "max_per_video": 10},
                 data_files=(f"{V}/STAR/STAR_train.json",),
                 manual=f"STAR_train.json into RAW/{V}/STAR/, Charades videos into "
                        f"RAW/{V}/Charades/Charades_v1/"),
    "sportsqa_oe": _vid(None, {"video": "video", "video_dir": f"{V}/SportsQA",
                               "video_exts": [".avi", ".mp4", ".webm"], "style": OE},
                        data_files=(f"{V}/SportsQA/meta-data/train.json",),
                        urls=("https://ndownloader.figshare.com/files/57448480",),
                        manual=f"unzip the figshare archive (meta-data/) and place the videos "
                               f"(.avi/.mp4/.webm at each row's `video`) in RAW/{V}/SportsQA/"),
    "road_text_vqa": _vid(None, {"video": "video", "video_dir": f"{V}/RoadTextVQA/videos",
                                 "style": OE, "table": {"record_path": "data"}},
                          data_files=(f"{V}/RoadTextVQA/train.json",),
                          manual=f"RoadTextVQA train.json and videos/ into RAW/{V}/RoadTextVQA/"),
    "video_localized_narratives": _vid(
        None, {"video_template": "{video_name}.mp4", "video_dir": f"{V}/oops/oops_video",
               "qa_list": "qa_pairs", "question": "raw_question", "answer": "raw_answer",
               "style": OE, "table": {"record_path": "annotations"}},
        data_files=(f"{V}/video-localized-narratives/videoqa/text_output/*train*.json",),
        manual=f"VLN video QA json into RAW/{V}/video-localized-narratives/videoqa/text_output/, "
               f"Oops videos into RAW/{V}/oops/oops_video/"),
    "moments_in_time_qa": _vid(
        None, {"video": "transformed_video_path", "video_dir": f"{V}/moments_in_time/"
                                                             "Moments_in_Time_Raw",
               "where_not": {"missing": "True"}, "template": _TEMPLATE, "answer": "label",
               "style": OE, "table": {}},
        data_files=(f"{V}/moments_in_time/Moments_in_Time_Raw/train_with_missing_renamed.csv",),
        manual=f"Moments in Time videos + Molmo2's train_with_missing_renamed.csv in RAW/{V}/"
               "moments_in_time/Moments_in_Time_Raw/", notes="capped at 60,000 by the mix"),
    "kinetics_qa": _vid(
        None, {"video_template": "{label}/{youtube_id}_{time_start:0>6}_{time_end:0>6}.mp4",
               "video_dir": f"{V}/kinetics/kinetics700/train", "template": _TEMPLATE,
               "answer": "label", "style": OE, "table": {}},
        data_files=(f"{V}/kinetics/kinetics700/annotations/train.csv",),
        manual=f"Kinetics-700 train videos as RAW/{V}/kinetics/kinetics700/train/<label>/"
               "<youtube_id>_<start>_<end>.mp4 with annotations/train.csv",
        notes="Kinetics-700 labels (Molmo2 merges K600/K700 into K710 labels)"),
    "charades_sta_all_qa": _vid(
        None, {"parse": "charades_sta", "video_template": "{video}.mp4",
               "video_dir": f"{V}/Charades/Charades_v1", "start": "start", "end": "end",
               "template": _TEMPLATE, "answer": "sentence", "style": "charades_sta"},
        data_files=(f"{V}/Charades/charades_sta_train.txt",),
        manual=f"charades_sta_train.txt and Charades_v1 videos into RAW/{V}/Charades/",
        notes="CharadesSTA(task='all', qa_format=True): a label question on each clip"),
    "coin_all_qa": _segments("coin", "annotation", "label", "COIN.json",
                             "COIN.json and videos (github.com/coin-dataset/annotations)",
                             label_style="coin_label"),
    "youcook2_all_qa": _segments("youcook2", "annotations", "sentence",
                                 "youcookii_annotations_trainval.json",
                                 "YouCook2 annotations json and videos",
                                 label_style="youcook2_label", sentence=True,
                                 start_end_style="video_clip_short_caption_start_end"),
    "activitynet_all_qa": _vid(
        None, {"segments": "annotations", "label": "label", "label_style": "activitynet_label",
               "video_dir": f"{V}/ActivityNet/all-videos", "table": {"record_path": "database"}},
        reader="video_segments",
        data_files=(f"{V}/ActivityNet/activity_net.v1-3.min.json",
                    f"{V}/ActivityNet/train_q.json", f"{V}/ActivityNet/train_a.json"),
        manual=f"ActivityNet videos as RAW/{V}/ActivityNet/all-videos/<id>.mp4 with "
               "activity_net.v1-3.min.json; ActivityNet-QA train_q/train_a.json (github.com/"
               "MILVLG/activitynet-qa) beside",
        notes="segment labels (every database video, as upstream) + ActivityNet-QA"),
    "ego4d_all": _vid(None, {"video": "clip", "video_dir": f"{V}/ego4d-clips",
                             "qa_list": "message_list", "where_not": {"corrupt": True},
                             "style": OE},
                      data_files=(f"{V}/Ego4d/ego4d_cached_train_metadata.jsonl",),
                      manual="Ego4D (licence) + Molmo2's ego4d_cached_train_metadata.jsonl (GCS) "
                             f"into RAW/{V}/Ego4d/; clips cut by m2:scripts/extract_ego4d_clips.py "
                             f"into RAW/{V}/ego4d-clips/", notes="message schema inferred"),
    "epic_kitchens_qa": _vid(
        None, {"video_template": "{participant_id}/videos/{video_id}.MP4",
               "video_dir": f"{V}/epic-kitchens", "start": "start_timestamp",
               "end": "stop_timestamp", "where_not": {"missing": "True"}, "template": _TEMPLATE,
               "answer": "narration", "style": OE, "table": {}},
        data_files=(f"{V}/epic-kitchens/epic-kitchens-100-annotations/EPIC_100_train*.csv",),
        manual=f"EPIC-KITCHENS-100 videos and annotations into RAW/{V}/epic-kitchens/",
        notes="full videos with clip times (Molmo2 prefers pre-extracted clips)"),
    "qv_highlights": _vid(None, {"video_dir": f"{V}/QVHighlights/videos"},
                          reader="qv_highlights",
                          data_files=(f"{V}/QVHighlights/highlight_train_release.jsonl",),
                          urls=("https://raw.githubusercontent.com/jayleicn/moment_detr/refs/heads/"
                                "main/data/highlight_train_release.jsonl",
                                "https://nlp.cs.unc.edu/data/jielei/qvh/qvhilights_videos.tar.gz"),
                          manual=f"untar qvhilights_videos.tar.gz into RAW/{V}/QVHighlights/ and "
                                 "put highlight_train_release.jsonl beside"),
}

# Single-object tracking: allenai/molmo2-single-object-track config = Molmo2 DATASET_NAME,
# videos in the source's own folder (`_get_video_dir`), relative to RAW/video_datasets.
SOT_SOURCES = {  # registry prefix -> (HF config, video dir under video_track/, manual source)
    "webuav": ("webuav", "WebUAV/videos", "WebUAV-3M Train_Single.zip"),
    "got10k": ("got10k", "GOT-10k/videos", "GOT-10k full_data.zip"),
    "vasttrack": ("vasttrack", "VastTrack/videos", "VastTrack zip_files/part-*.zip"),
    "trackingnet": ("trackingnet", "TrackingNet/videos", "TrackingNet TRAIN chunks"),
    "lvosv1": ("lvosv1", "LVOSv1/train/videos", "LVOS v1 (Google Drive)"),
    "lvosv2": ("lvosv2", "LVOSv2/train/videos", "LVOS v2 (Google Drive)"),
    "lasot": ("lasot", "LaSOT/train/videos", "l-lt/LaSOT on the hub"),
    "uwcot": ("uwcot", "UW-COT220/UW-COT220", "UW-COT220"),
    "webuot": ("webuot", "webuot/Train", "WebUOT-1M"),
    "latot": ("latot", "LaTOT/videos", "LaTOT"),
    "tnl2k": ("tnl2k", "TNL2K/videos", "TNL2K"),
    "tnllt": ("tnnlt", "TNLLT/videos", "TNLLT"),  # upstream DATASET_NAME is spelt "tnnlt"
}


def sot_spec(prefix: str) -> dict[str, Any]:
    """DatasetSpec fields of `<prefix>_sot_from_bbox` (Molmo2 `<prefix>_single_point_track`)."""
    if prefix == "burst":  # BURST's SOT task lives in allenai/molmo2-burst
        return {"repo": "allenai/molmo2-burst", "configs": ("single_point_track",),
                "reader_kwargs": {"task": "single_point_track",
                                  "video_dir": f"{V}/video_track/TAO-Amodal/train/videos"},
                "manual": "accept the TAO-Amodal licence, snapshot chengyenhsieh/TAO-Amodal, unzip "
                          f"the frames and encode them as RAW/{V}/video_track/TAO-Amodal/train/"
                          "videos/<video>.mp4 (m2 Burst.download)",
                "notes": "Molmo2 burst_single_point_track (config single_point_track)"}
    config, vdir, src = SOT_SOURCES[prefix]
    return {"repo": "allenai/molmo2-single-object-track", "data_files": (f"{config}/train-*",),
            "allow_patterns": (f"{config}/train-*",),
            "reader_kwargs": {"task": "single_point_track",
                              "video_dir": f"{V}/video_track/{vdir}"},
            "manual": f"download {src}, encode each sequence's frames to mp4 at the row's fps as "
                      f"RAW/{V}/video_track/{vdir}/<video>.mp4 "
                      "(m2 academic_video_track_datasets.py download())",
            "notes": f"Molmo2 {prefix}_single_point_track: config {config}, split train; "
                     "file layout inferred"}
