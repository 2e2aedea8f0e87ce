"""Question/answer plumbing shared by the academic image and video readers (Molmo2 `DataFormatter`).

Upstream academic loaders yield messages `{question, answer | answers | options + answer_idx,
explanation?, style}`; `qa_message` turns one of them into a user/assistant turn the way
`DataFormatter` does in its deterministic (eval) branch: multiple choice is
`question + "\\nOnly return the correct answer option.\\n" + "A. opt\\nB. opt"` answered
`"B. opt"`; several reference answers give the most common one (`select_answer="best"`, ties by
lowest); an explanation gives `explanation + " Answer: " + answer` (CoSyn `_exp` styles).
`QaSpec` names where a source keeps each part, so one reader serves a whole schema family.
"""

from __future__ import annotations

import collections
import dataclasses
import string
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from data_pipelines.schema import BadSample, Conversation, Message

MC_INSTRUCTION = "\nOnly return the correct answer option.\n"


def field(obj: Any, path: str | None) -> Any:
    """`obj[a][b]...` for a dotted `path`; over a list it maps (`answers.raw_answer`)."""
    if path is None:
        return None
    for part in path.split("."):
        if isinstance(obj, list):
            obj = [o[part] for o in obj]
        else:
            obj = obj[part]
    return obj


def qa_items(row: Mapping[str, Any], qa_list: str | Sequence[str] | None
             ) -> list[Mapping[str, Any]]:
    """The QA dicts of a row: the row itself, a list column, a dict of parallel lists
    (`qa_pairs = {question: [...], answer: [...]}`), or parallel list columns (Mantis)."""
    if qa_list is None:
        return [row]
    if not isinstance(qa_list, str):
        return [dict(zip(qa_list, vals)) for vals in zip(*(row[c] for c in qa_list))]
    items = field(row, qa_list)
    if isinstance(items, Mapping):
        keys = list(items)
        return [dict(zip(keys, vals)) for vals in zip(*(items[k] for k in keys))]
    return list(items)


def matches(row: Mapping[str, Any], where: Mapping[str, Any] | None,
            where_not: Mapping[str, Any] | None = None) -> bool:
    """Row filter: every `where` column equals its value (or is in its list), no `where_not`."""
    def hit(k: str, v: Any) -> bool:
        return row.get(k) in v if isinstance(v, (list, tuple)) else row.get(k) == v
    return (all(hit(k, v) for k, v in (where or {}).items())
            and not any(hit(k, v) for k, v in (where_not or {}).items()))


def best_answer(answers: Any) -> str:
    """Molmo2 `select_vqa_answer(..., "best")`: the most common reference answer."""
    if isinstance(answers, str):
        return answers
    if not isinstance(answers, (list, tuple)):
        return str(answers)   # FigureQA / PlotQA / Countix numbers
    answers = [str(a) for a in answers]
    if not answers:
        raise BadSample("bad_annotation", "no reference answer")
    counts = collections.Counter(answers)
    top = max(counts.values())
    return min(a for a, c in counts.items() if c == top)


def fixed_position(key: str, n: int) -> int:
    """Where the correct answer goes among `n` options: fixed per question (crc32), so shards
    are deterministic (upstream draws `randint(0, n_negatives)` per epoch)."""
    return zlib.crc32(key.encode()) % n


def mc_turn(question: str, options: Sequence[Any], answer_idx: int | None,
            labelled: bool = True) -> tuple[str, str]:
    """(prompt, answer) of a multiple-choice question in Molmo2's standard layout."""
    options = [str(o) for o in options]
    if answer_idx is None or not 0 <= int(answer_idx) < len(options):
        raise BadSample("bad_annotation", f"answer index {answer_idx} outside {len(options)} "
                                          "options")
    names = string.ascii_uppercase[:len(options)]
    outputs = [f"{n}. {o}" for n, o in zip(names, options)] if labelled else options
    return question + MC_INSTRUCTION + "\n".join(outputs), outputs[int(answer_idx)]


@dataclasses.dataclass(frozen=True)
class QaSpec:
    """Where one source keeps a question's parts (dotted paths into a QA dict).

    answer: one answer or a list of references; options + answer_idx: multiple choice (or
    options + answer when the answer is given as text); negatives: the correct `answer` plus
    wrong ones, placed at a fixed position; correct: per-option flags, the one equal to
    correct_value is the answer (questions with several are skipped as upstream);
    mode: "oe", "mc", "both" (IntentQA/TGIF `all`: MC and open, open only for items without
    options) or "auto" (MC where the item has options, else open).
    """

    question: str = "question"
    answer: str | None = "answer"
    options: str | tuple[str, ...] | None = None
    answer_idx: str | None = None
    negatives: str | None = None
    correct: str | None = None           # per-option flags (CLEVRER choices.answer)
    correct_value: str = "correct"
    explanation: str | None = None
    hint: str | None = None
    template: str | None = None          # fixed question text, `str.format`ted with the QA dict
    mode: str = "oe"
    style: str = "vqa"
    mc_style: str | None = None

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> "QaSpec":
        """A spec from registry reader_kwargs (lists become tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})


QA_KEYS = frozenset(f.name for f in dataclasses.fields(QaSpec))


def _options(item: Mapping[str, Any], spec: QaSpec) -> tuple[list[Any], int]:
    if spec.negatives is not None:
        options = list(field(item, spec.negatives))
        correct = field(item, spec.answer)
        pos = fixed_position(f"{field(item, spec.question)}|{correct}", len(options) + 1)
        options.insert(pos, correct)
        return options, pos
    if isinstance(spec.options, tuple):
        options = [field(item, k) for k in spec.options]
    else:
        options = list(field(item, spec.options))
    if spec.correct is not None:
        hits = [i for i, f in enumerate(field(item, spec.correct)) if f == spec.correct_value]
        if len(hits) != 1:
            raise BadSample("bad_annotation", f"{len(hits)} correct options (need one)")
        return options, hits[0]
    if spec.answer_idx is not None:
        return options, int(field(item, spec.answer_idx))
    answer = field(item, spec.answer)
    if answer not in options:
        raise BadSample("bad_annotation", f"answer {answer!r} is not one of the options")
    return options, options.index(answer)


def qa_conversations(item: Mapping[str, Any], spec: QaSpec, prefix: str = ""
                     ) -> list[Conversation]:
    """The user/assistant turn(s) of one QA dict (two for mode "both": open and MC)."""
    question = (spec.template.format(**item) if spec.template
                else str(field(item, spec.question))).strip()
    if spec.hint and field(item, spec.hint):
        question = f"{field(item, spec.hint)}\n{question}"
    question = prefix + question
    if not question:
        raise BadSample("bad_annotation", "empty question")
    out = []
    mode = spec.mode
    if mode in ("auto", "both"):  # no options on this item (CLEVRER / TGIF count): open only
        head = spec.negatives or (spec.options if isinstance(spec.options, str)
                                  else (spec.options or ("",))[0])
        has = bool(head) and item.get(head.split(".")[0]) not in (None, "")
        mode = ("mc" if mode == "auto" else "both") if has else "oe"
    if mode in ("mc", "both"):
        prompt, answer = mc_turn(question, *_options(item, spec))
        out.append(Conversation([Message("user", prompt), Message("assistant", answer)],
                                spec.mc_style or spec.style))
    if mode in ("oe", "both"):
        if mode == "both" and spec.answer is None:
            options, idx = _options(item, spec)
            answer = str(options[idx])
        else:
            answer = best_answer(field(item, spec.answer))
        if spec.explanation and field(item, spec.explanation):
            answer = f"{field(item, spec.explanation)} Answer: {answer}"
        answer = answer.strip()
        if not answer:   # Molmo2 drops empty answers (HumanQA, NewsVideoQA filter_empty_answers)
            raise BadSample("bad_annotation", f"empty answer to {question[:60]!r}")
        out.append(Conversation([Message("user", question), Message("assistant", answer)],
                                item.get("_style", spec.style)))
    if not out:
        raise ValueError(f"unknown QA mode {spec.mode!r}; use oe, mc or both")
    return out
