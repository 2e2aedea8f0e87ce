"""Academic video QA / captioning readers: the Molmo2 `VIDEO_ACADEMIC_DATASETS` -> Examples.

`read_video_qa` is one parametrised reader for the schema families of
`m2:olmo/data/academic_video_datasets.py` (and `Molmo2HumanQA` in `molmo2_datasets.py`):

- one question per row, options in columns or Answer + negatives (How2QA, IntentQA, NExT-QA,
  Social-IQ 2, SUTD-TrafficQA, STAR, SportsQA, RoadTextVQA, TGIF, TVQA, Paxion, NewsVideoQA,
  Countix, human QA), grouped per video / clip into a message tree;
- a list of QAs per video (CameraBench `mc_qa_list`, CLEVRER `questions`, Cinepile `examples`,
  Perception Test `mc_question`, LLaVA-Video `conversations`, VLN `qa_pairs`);
- temporal segments with a label per video (ActivityNet / COIN / YouCook2 `database`, Charades-
  STA lines, Kinetics / Moments in Time / EPIC-Kitchens CSV rows): label questions on the clip.

Clips are VideoRef(start_s, end_s) in seconds of the source video; answers that carry times
(QVHighlights segments) are relative to the video the model sees. Video paths keep the upstream
layout under the media root (`VIDEO_DATA_HOME`).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from data_pipelines.readers.base import Row, clip01, convert_rows, keep_good
from data_pipelines.readers.qa import QA_KEYS, QaSpec, field, matches, qa_conversations, qa_items
from data_pipelines.readers.tables import KEY
from data_pipelines.readers.video import VIDEO_ROOT, first_existing, youtube_cc_candidates
from data_pipelines.schema import BadSample, Conversation, Example, Message, Points, Task, VideoRef
from molmo2_jax.processing import formats


def find_video(media_root: str | None, rel: str, exts: Sequence[str] = ()) -> str:
    """`rel` (or `rel + ext` for the first ext that exists); BadSample if none is local."""
    return first_existing(media_root, [rel + e for e in exts] if exts else [rel], "video")


def _seconds(v: Any) -> float:
    """Seconds from a number or `HH:MM:SS.ff` (EPIC-Kitchens timestamps)."""
    if isinstance(v, str) and ":" in v:
        h, m, s = v.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    return float(v)


_CHARADES = re.compile(r"^(\S+) ([\d.]+) ([\d.]+)##(.*)$")


def charades_row(row: Row) -> dict[str, Any]:
    """Charades-STA `charades_sta_train.txt` line `vid start end##sentence` as a row."""
    m = _CHARADES.match(row["line"])
    if not m:
        raise BadSample("bad_annotation", f"not a Charades-STA line: {row['line'][:60]!r}")
    return {"video": m[1], "start": float(m[2]), "end": float(m[3]), "sentence": m[4].strip()}


def clevrer_row(row: Row) -> dict[str, Any]:
    """CLEVRER: videos live in folders of 1000 (`video_10000-11000/video_10042.mp4`)."""
    k = int(row["video_filename"].split(".")[0].replace("video_", "")) // 1000
    return {**row, "folder": f"video_{k * 1000:05d}-{(k + 1) * 1000:05d}"}


def how2qa_row(row: Row) -> dict[str, Any]:
    """How2QA csv (no header): 0 vid, 1 `[start:end]`, 2-4 wrong answers, 5 question,
    6 answer; the clip file is `<vid>_<start>_<end>.<ext>`."""
    start, end = (float(v) for v in row["1"].strip("[]() ").split(":"))
    return {"clip": f"{row['0']}_{start}_{end}", "question": row["5"], "answer": row["6"],
            "negatives": [row["2"], row["3"], row["4"]]}


FUNQA_DIRS = {"H": "humor", "C": "creative", "M": "magic"}


def funqa_row(row: Row) -> dict[str, Any]:
    """FunQA: open rows (FunQA_train.json: task, visual_input, instruction, output) and MC rows
    (Funqa_mcqa_v1.json: instruction ending "The Question is: q" / "The Options are: [...]",
    gt 1-based) as _q/_a/_options/_idx; the H/C/M letter names the folder (`train_humor`)."""
    kind = FUNQA_DIRS[str(row["visual_input"])[0]]
    if "gt" not in row:
        return {**row, "kind": kind, "_q": row["instruction"], "_a": row["output"]}
    *_, q, opts = row["instruction"].split("\n")
    options = [re.sub(r"^Options \d+: ", "", o).strip()
               for o in ast.literal_eval(opts.replace(" The Options are: ", "").strip())]
    return {**row, "kind": kind, "_q": q.replace("The Question is:", "").strip(),
            "_options": options, "_idx": int(row["gt"]) - 1}


def tgif_row(row: Row) -> dict[str, Any]:
    """TGIF-QA: action/transition rows answer with an index into a1..a5, count/frameqa rows
    with the answer text; `answer_text` is the open answer of both."""
    if row.get("a1") not in (None, ""):
        return {**row, "answer_text": row[f"a{int(row['answer']) + 1}"]}
    return {**row, "answer_text": row["answer"]}


def _paxion_label(label: str) -> str:
    """Paxion `_clean_label`: drop a leading `#X` tag, capitalise."""
    if label.startswith("#") and len(label) > 1 and not label[1].isspace():
        label = label[2:].lstrip()
    return label[:1].upper() + label[1:]


def paxion_row(row: Row) -> dict[str, Any]:
    """Paxion antonyms: SSv2 rows (rel_vid_path, label, label_action_antonym_clip_text) and
    Ego4D rows (video_uid, clip_start, clip_end, clip_text, action_antonym_clip_text) as
    _video/_label/_antonym (+ clip); the third option is always "Not sure"."""
    if "rel_vid_path" in row:
        return {"_video": f"sth-sth-v2/videos/{row['rel_vid_path']}", "_label": row["label"],
                "_antonym": row["label_action_antonym_clip_text"], "_not_sure": "Not sure",
                "_start": None, "_end": None}
    return {"_video": f"Ego4d/ego4d_data/v2/full_scale/{row['video_uid']}.mp4",
            "_label": _paxion_label(row["clip_text"]),
            "_antonym": _paxion_label(row["action_antonym_clip_text"]), "_not_sure": "Not sure",
            "_start": float(row["clip_start"]), "_end": float(row["clip_end"])}


ROW_PARSERS = {"charades_sta": charades_row, "clevrer": clevrer_row, "how2qa": how2qa_row,
               "funqa": funqa_row, "paxion": paxion_row, "tgif": tgif_row}


def with_header(rows: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Rows given as lists after a first list of column names."""
    it = iter(rows)
    names = next(it, None)
    for values in it:
        yield dict(zip(names, values))


def read_video_qa(rows: Iterable[Row], *, media_root: str | None, source: str,
                  skipped: MutableMapping[str, int], video: str = "video",
                  video_template: str | None = None, video_dir: str = "",
                  video_exts: Sequence[str] = (), youtube_cc: bool = False,
                  qa_list: str | list[str] | None = None, turns: str | None = None,
                  start: str | None = None, end: str | None = None, ts: str | None = None,
                  subtitle: str | None = None, where: Mapping[str, Any] | None = None,
                  where_not: Mapping[str, Any] | None = None, parse: str | None = None,
                  subtitle_rows: str | None = None, subtitle_key: str = "vid_name",
                  question_table: str | None = None, video_map: str | None = None,
                  header_row: bool = False,
                  max_per_video: int | None = None, task: str = Task.VIDEO_QA,
                  table: Mapping[str, Any] | None = None, **qa: Any) -> Iterator[Example]:
    """Video QA rows -> one Example per video (or clip) with its QAs as a message tree.

    video / video_template: column with the file name, or a `str.format` template over the row
    (`{vid_name}.mp4`), joined to video_dir; video_exts: extensions to try; youtube_cc: the
    column is a YouTube id found as Molmo2 `_find_video_by_id` (human QA).
    qa_list / turns: column of QA dicts / of alternating {from, value} turns (LLaVA-Video).
    start, end (on the QA item or the row) or ts (`"s-e"`): the clip, in seconds.
    subtitle: a text column, the video's subtitles; subtitle_rows: rows carrying this column
    ([{start, end, text}] per `subtitle_key`, TVQA's subtitle file) give each clip the subtitles
    overlapping it, times relative to the clip start. Either goes to `meta["subtitles"]`, which the
    encoder writes after the video as Molmo2's video preprocessor does (`processing.video.subtitle_text`);
    a `*_w_subtitle` style falls back to the plain style when a clip has none (allenai TVQA, CinePile).
    question_table: the question is the first template listed for this column's value in a
    keyed JSON read alongside ({value: [templates]}, Countix class_to_question.json);
    video_map: this column is mapped through a keyed JSON read alongside before the video
    template sees it (NExT-QA map_vid_vidorID.json).
    where / where_not: {column: value (or list)} filters; parse: a ROW_PARSERS entry for
    formats that need a derived column; header_row: the first row lists the column names
    (SUTD-TrafficQA R2 jsonl); max_per_video: at most this many QAs per Example (STAR 10);
    table: how `tables.iter_table` parses the files (unused here). The rest is a qa.QaSpec.
    """
    bad = set(qa) - QA_KEYS
    if bad:
        raise TypeError(f"read_video_qa: unknown kwargs {sorted(bad)}")
    spec = QaSpec.of(qa)

    def path(row: Row) -> str:
        if youtube_cc:
            vid = str(field(row, video))
            return first_existing(media_root, youtube_cc_candidates(media_root, vid), vid)
        if video_map:
            row = {**row, video_map: lookup[str(row[video_map])]}
        name = video_template.format(**row) if video_template else str(field(row, video))
        return find_video(media_root, os.path.join(video_dir, name), video_exts)

    def clip(item: Mapping[str, Any], row: Row) -> tuple[float | None, float | None]:
        if ts is not None:
            s, e = (float(t) for t in str(row[ts]).split("-"))
            return s, e
        src = {**row, **item}
        s = _seconds(src[start]) if start and src[start] is not None else None
        e = _seconds(src[end]) if end and src[end] is not None else None
        if s is not None and e is not None and not e > s:
            raise BadSample("bad_annotation", f"clip end {e} <= start {s}")
        return s, e

    subs: dict[str, list[Mapping[str, Any]]] = {}
    lookup: dict[str, Any] = {}  # {key: value} rows of a keyed JSON read with the data
    if question_table or video_map:
        rows = list(rows)
        lookup = {str(r[KEY]): r["value"] for r in rows if KEY in r and "value" in r}
        rows = [r for r in rows if not (KEY in r and "value" in r)]
    if subtitle_rows:
        rows = list(rows)
        subs = {str(r[subtitle_key]): r[subtitle_rows] for r in rows if subtitle_rows in r}
        rows = [r for r in rows if subtitle_rows not in r]

    def subtitles_of(item: Mapping[str, Any], row: Row) -> str | list[list[Any]]:
        if subs:
            s, e = clip(item, row)
            return clip_subtitles(subs.get(str(row[subtitle_key]), []), s or 0.0, e)
        if subtitle and row.get(subtitle):
            return str(row[subtitle]).replace("<subtitle> ", "").strip()  # allenai CinePile
        return ""

    def conversations(item: Mapping[str, Any], row: Row) -> list[Conversation]:
        if question_table:
            item = {**item, "_question": lookup[str(row[question_table])][0]}
        convs = qa_conversations(item, spec)
        if (subtitle or subs) and not subtitles_of(item, row):
            convs = [dataclasses.replace(c, style=c.style.removesuffix("_w_subtitle")) for c in convs]
        return convs

    def llava_turns(row: Row) -> list[Conversation]:
        t = row[turns]
        convs = []
        for i in range(0, len(t) - 1, 2):
            q = t[i]["value"].removeprefix("<image>\n")
            convs.append(Conversation([Message("user", q),
                                       Message("assistant", t[i + 1]["value"].strip())],
                                      spec.style))
        return convs

    def convert(row: Row) -> list[tuple[tuple[str, float | None, float | None], Conversation]] | None:
        if parse:
            row = ROW_PARSERS[parse](row)
        if not matches(row, where, where_not):
            return None
        rel = path(row)
        if turns:
            return [((rel, None, None), c, "") for c in llava_turns(row)]
        return [((rel, *clip(item, row)), c, subtitles_of(item, row)) for item in qa_items(row, qa_list)
                for cs in keep_good([item], lambda it: conversations(it, row), skipped)
                for c in cs]

    clips: dict[tuple[str, float | None, float | None], list[Conversation]] = {}
    clip_subs: dict[tuple[str, float | None, float | None], str | list[list[Any]]] = {}
    for triples in convert_rows(with_header(rows) if header_row else rows, convert, skipped):
        for key, conv, sub in triples:
            clips.setdefault(key, []).append(conv)
            if sub:
                clip_subs.setdefault(key, sub)

    for key, convs in clips.items():
        rel, s, e = key
        step = max_per_video or len(convs)
        meta = {"subtitles": clip_subs[key]} if key in clip_subs else {}
        for i in range(0, len(convs), step):
            part = convs[i:i + step]
            ex_id = f"{rel}@{s}-{e}" + (f"#{i // step}" if step < len(convs) else "")
            yield Example(ex_id, source, task, part, video=VideoRef(path=rel, start_s=s, end_s=e), meta=dict(meta))


def clip_subtitles(subs: Iterable[Mapping[str, Any]], start: float, end: float | None) -> list[list[Any]]:
    """Molmo2 `TVQA.get_clip_subtitles`: [start_s, end_s, text] of the subtitles overlapping [start, end],
    times relative to the clip start (items without start/end/text are dropped)."""
    out = []
    for x in subs:
        try:
            s, e, text = float(x["start"]), float(x["end"]), x["text"]
        except (KeyError, TypeError, ValueError):
            continue
        if e > start and (end is None or s < end):
            out.append([s - start, e - start, text])
    return out


def read_video_segments(rows: Iterable[Row], *, media_root: str | None, source: str,
                        skipped: MutableMapping[str, int], segments: str = "annotations",
                        label: str = "label", subset: str | None = None,
                        template: str = "What action is being performed?",
                        label_style: str = "video_short_answer", sentence: bool = False,
                        start_end_style: str | None = None, **video: Any) -> Iterator[Example]:
    """Temporal segments of a `database` JSON (ActivityNet / COIN / YouCook2: {video id:
    {subset, annotations [{segment [s, e], label | sentence}]}}) as label questions on each
    clip (Molmo2 `qa_format=True`, first question template), plus ActivityNet-QA rows
    (`train_q.json` {question_id, video_name, question} joined with `train_a.json`
    {question_id, answer}) as open questions on the whole video.

    subset: keep videos whose `subset` contains it ("train" in "training", as upstream);
    sentence: labels end with a period (YouCook2); start_end_style: also caption each segment
    on the whole video, asked as `"<start>-<end>"` in seconds of the video (YouCook2
    `caption_start_end`, style video_clip_short_caption_start_end).
    The remaining kwargs go to read_video_qa (video_template over {video}, video_dir, exts).
    """
    def flat() -> Iterator[dict[str, Any]]:
        questions, answers = {}, {}
        for r in rows:
            if segments in r:
                if subset is not None and subset not in r.get("subset", ""):
                    skipped["filtered"] = skipped.get("filtered", 0) + 1
                    continue
                for ann in r[segments]:
                    s, e = ann["segment"]
                    text = ann[label] + ("." if sentence and not ann[label].endswith(".") else "")
                    yield {"video": r["_key"], "start": s, "end": e, "question": template,
                           "answer": text, "_style": label_style}
                    if start_end_style and e > s:
                        yield {"video": r["_key"], "start": None, "end": None,
                               "question": f"{round(s, 2)}-{round(e, 2)}", "answer": text,
                               "_style": start_end_style}
            elif "question" in r:
                questions[r["question_id"]] = r
            elif "answer" in r:
                answers[r["question_id"]] = r["answer"]
        for qid, q in questions.items():
            if qid in answers:
                text = q["question"].strip()
                yield {"video": q["video_name"], "start": None, "end": None,
                       "question": text if text.endswith("?") else text + "?",
                       "answer": answers[qid], "_style": "video_short_answer"}
    video.setdefault("video_template", "{video}.mp4")
    return read_video_qa(flat(), media_root=media_root, source=source, skipped=skipped,
                         start="start", end="end", style=label_style, **video)


def read_qv_highlights(rows: Iterable[Row], *, media_root: str | None, source: str,
                       skipped: MutableMapping[str, int], video_dir: str = "QVHighlights/videos",
                       max_windows: int = 5) -> Iterator[Example]:
    """QVHighlights `highlight_train_release.jsonl` (qid, query, vid, duration,
    relevant_windows [[s, e]] in seconds): Molmo2 `QVHighlights.qa_template`; queries with more
    than `max_windows` windows are dropped as upstream."""
    def convert(row: Row) -> Example | None:
        windows = row["relevant_windows"]
        if len(windows) > max_windows:
            return None
        query = row["query"].rstrip(".")
        question = (f"Here is a query: {query}. Where are all the segments for the query? "
                    "Report the segments in seconds.")
        answer = "Segments: " + ", ".join(f"[{s}-{e}]" for s, e in windows)
        rel = find_video(media_root, os.path.join(video_dir, f"{row['vid']}.mp4"))
        return Example(f"{row['qid']}_{row['vid']}", source, Task.VIDEO_QA,
                       [Conversation([Message("user", question), Message("assistant", answer)],
                                     "video_short_answer")],
                       video=VideoRef(path=rel), meta={"relevant_windows": windows})
    return convert_rows(rows, convert, skipped)


ACADEMIC_POINT_VIDEO_ROOTS = {   # m2:academic_video_datasets.py::_ACADEMIC_POINT_VIDEO_ROOTS
    "lvvis": "LV-VIS/{split}/videos-2fps", "ovis": "OVIS/videos-2fps",
    "burst": "TAO-Amodal/{split}/videos-2fps", "refdavis17": "Ref-DAVIS17/{split}/videos-2fps",
    "mevis": "mevis/MeViS_release/{split}/videos-2fps",
    "refyoutube": "Ref-YT-VOS/{split}/videos-2fps",
}


def academic_point_video(row: Row, split: str, video_dir: str = VIDEO_ROOT) -> str:
    """Molmo2 `_make_video_path`: where an academic-video-points row's 2 fps video lives."""
    root = os.path.join(video_dir, ACADEMIC_POINT_VIDEO_ROOTS[row["subset"]].format(split=split))
    if row["subset"] == "burst":
        return os.path.join(root, row.get("dataset") or "", f"{row['video_name']}.mp4")
    if row["subset"] in ("refdavis17", "mevis", "refyoutube"):
        return os.path.join(root, row["video_name"])
    return os.path.join(root, f"{row['video_name']}.mp4")


def read_academic_video_points(rows: Iterable[Row], *, media_root: str | None, source: str,
                               skipped: MutableMapping[str, int], split: str = "train",
                               max_points: int = 60, max_seconds: float = 63, fps: float = 2,
                               video_dir: str = VIDEO_ROOT) -> Iterator[Example]:
    """allenai/molmo2-academic-video-points (subset, video_name, dataset, category, count,
    timestamps, points [[{x, y}]] 0-100 per timestamp, video_duration, clip_start_time,
    clip_end_time): Molmo2 `AcademicVideoPoint(use_clips_from_metadata=True, max_points=60)`.

    Timestamps become relative to `clip_start_time` and snapped to the 1/fps grid as upstream;
    answers are point-then-count over the clip (`mode` point_count).
    """
    step = 1.0 / fps

    def convert(row: Row) -> Example | None:
        count = int(row["count"])
        times = [float(t) for t in row["timestamps"]]
        if count > max_points or not times or max(times) - min(times) > max_seconds:
            return None
        c0, c1 = float(row["clip_start_time"]), float(row["clip_end_time"])
        if not (c0 <= min(times) and max(times) <= c1 and c1 - c0 <= max_seconds):
            raise BadSample("bad_annotation", f"{row['video_name']}: points outside the clip "
                                              f"[{c0}, {c1}]")
        label = row["category"].lower()
        points = []
        for i in sorted(range(len(times)), key=lambda j: times[j]):
            t = (times[i] - c0) // step * step
            xy = sorted((clip01(p["x"] / 100), clip01(p["y"] / 100)) for p in row["points"][i])
            points.append(Points(label, xy, time=round(t, 6)))
        n = sum(len(p.xy) for p in points)
        if n != count:
            raise BadSample("bad_annotation", f"{row['video_name']}: count {count}, {n} points")
        rel = find_video(media_root, academic_point_video(row, split, video_dir))
        question = f"Point to and count the {label} in the video."
        return Example(f"{rel}_{label}@{c0}", source, Task.VIDEO_POINTING,
                       [Conversation([Message("user", question),
                                      Message("assistant", formats.format_count(
                                          [(float(p.time), p.xy) for p in points], label))],
                                     "video_point_count")],
                       video=VideoRef(path=rel, start_s=c0, end_s=c1),
                       points=[p for p in points if p.xy], count=count)
    return convert_rows(rows, convert, skipped)
