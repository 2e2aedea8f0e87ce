"""Multiple-choice answer extraction exactly as allenai/molmo2's evaluators do it (`olmo/eval/vqa.py`, `evaluators.py`).

Each benchmark family has its own rule, reproduced with its quirks (they decide the published numbers):

- `mc` (A-OKVQA MC, AI2D, ScienceQA; `select_mc_option`): the answer is compared with the option *names*
  (the letters "A", "B", ... when the options were labelled): exact match, then a unique prefix match
  either way, then a unique substring, then the smallest edit distance (ties: the first option). So
  "B." picks B, "(B)" picks B (edit distance 2 vs 3), and "The answer is B" picks A (every letter is
  14-15 edits away and "a" ties first).
- `em_start` (MVBench, MotionBench, MLVU-MC, VideoEval-Pro MC; LVBench): the lower-cased answer must start
  with the first character of the target ("B."): "b) cat" is right, "(B)" and "The answer is B" are wrong.
- Video-MME: strip answer prefixes ("The answer is" ...), then the first capital A-D anywhere; answers
  with more than 10 words and no A-D, or no letter at all, are *dropped* from the score (not wrong).
- LongVideoBench: the same prefix stripping with A-E; unparsable answers get a random letter.
- MuirBench / BLINK / MMIU-style (`muir_bench_parse_multi_choice_response`), NExT-QA, EgoSchema and
  Perception Test have their own candidate rules, see each function.
Random fallbacks take a `random.Random` so that scoring is reproducible.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence

from molmo2_jax.eval.vqa import levenshtein


def select_mc_option(prediction: str, options: Sequence[str]) -> int:
    """allenai `select_mc_option`: index of the option (name) the answer picks; never -1."""
    target = prediction.lower().strip()
    opts = [o.lower().strip() for o in options]
    for picks in ([i for i, o in enumerate(opts) if o == target][:1],
                  [i for i, o in enumerate(opts) if target.startswith(o)],
                  [i for i, o in enumerate(opts) if o.startswith(target)],
                  [i for i, o in enumerate(opts) if target in o]):
        if len(picks) == 1:
            return picks[0]
    distances = [levenshtein(o, target) for o in opts]
    return distances.index(min(distances))


def em_start(prediction: str, answer: str) -> bool:
    """allenai `em_start`: the lower-cased answer starts with the target's first character."""
    target = answer.lower().strip()
    return bool(target) and prediction.lower().strip().startswith(target[0])


# allenai's list misses two commas, so Python joins those literals; kept, since that is what scored.
_MME_PREFIXES = (
    "The best answer is", "The correct answer is", "The answer is", "The answer",
    "The best option isThe correct option is", "Best answer:Best option:", "Answer:", "Option:",
    "The correct answer", "The correct option",
)


def video_mme_letter(prediction: str) -> str:
    """allenai `VideoMMEEval.extract_characters_regex`: first A-D after stripping prefixes; "" = dropped."""
    s = prediction.strip()
    for prefix in _MME_PREFIXES:
        s = s.replace(prefix, "")
    if len(s.split()) > 10 and not re.search("[ABCD]", s):
        return ""
    match = re.search(r"[ABCD]", s)
    return match[0] if match else ""


_LVB_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
                 "The best option is", "The correct option is", "Best answer:", "Best option:")


def long_video_bench_letter(prediction: str, num_options: int, rng: random.Random) -> tuple[str, bool]:
    """allenai `LongVideoBenchEval.parse_multi_choice_response`: (letter, parsed); random when unparsable."""
    choices = [chr(ord("A") + i) for i in range(num_options)]
    s = prediction.strip()
    for prefix in _LVB_PREFIXES:
        s = s.replace(prefix, "")
    match = re.search(r"[ABCDE]", s)
    if (len(s.split()) > 10 and not match) or match is None:
        return rng.choice(choices), False
    return match[0], True


def _strip_response(response: str) -> str:
    for char in (",", ".", "!", "?", ";", ":", "'"):
        response = response.strip(char)
    return " " + response + " "


def muir_bench_letter(prediction: str, options: Sequence[str], rng: random.Random | None = None) -> str:
    """allenai `muir_bench_parse_multi_choice_response` (MuirBench, BLINK, MMIU): a letter, or "N/A"."""
    choices = list(string.ascii_uppercase[:len(options)])
    index2ans = {c: o.strip() for c, o in zip(choices, options)}
    response = _strip_response(prediction)
    candidates: list[str] = []
    kinds = []
    for kind, form in (("brack", "({})"), ("last_brack", "{})"), ("dot", "{}."), ("colon", "{}:")):
        hits = [c for c in choices if form.format(c) in response]
        candidates += hits
        if hits:
            kinds.append((kind, form))
    index_ans = True
    if not candidates:
        for c in choices:
            if response.strip() == c:
                return c
            if f" {c} " in response:
                candidates.append(c)
    if not candidates and len(response.split()) > 5:
        candidates = [c for c, a in index2ans.items() if a.lower() in response.lower()]
        index_ans = False
    if not candidates:
        return rng.choice(choices) if rng is not None else "N/A"
    if len(candidates) == 1:
        return candidates[0]
    if index_ans:
        form = kinds[0][1] if kinds else " {} "
        starts = [response.rfind(form.format(c)) for c in candidates]
    else:
        starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    return candidates[starts.index(max(starts))]


def nextqa_letter(prediction: str, options: Sequence[str], rng: random.Random) -> str:
    """allenai `nextqa_parse_multi_choice_response`: "(X)", then " X ", then "X.", then option text; last wins."""
    choices = list("ABCDE")
    index2ans = {c: options[i].strip() for i, c in enumerate(choices)}
    response = _strip_response(prediction)
    candidates: list[str] = []
    form = None
    for f in ("({})", " {} ", "{}."):
        candidates = [c for c in choices if f.format(c) in response]
        if candidates:
            form = f
            break
    if not candidates and len(response.split()) > 5:
        candidates = [c for c, a in index2ans.items() if a.lower() in response.lower()]
    if not candidates:
        return rng.choice(choices)
    if len(candidates) == 1:
        return candidates[0]
    if form is not None:
        starts = [response.rfind(form.format(c)) for c in candidates]
    else:
        starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    return candidates[starts.index(max(starts))]


def perception_test_index(prediction: str) -> int:
    """allenai `select_perception_test_option`: the first standalone A-D, else -1."""
    match = re.search(r"\b([A-D])\b", prediction.strip())
    return "ABCD".index(match.group(1)) if match else -1
