"""Text-answer metrics: VQAv2 soft accuracy, ANLS, multiple choice and counting.

VQA normalisation follows the official VQAv2 evaluation (GT-Vision-Lab `vqaEval.py`):
punctuation is deleted when it touches a space (or the answer holds a digit-comma-digit such as
"1,000"), otherwise replaced by a space; periods not followed by a digit are dropped; words are
lower-cased, number words zero..ten (and "none") become digits, articles are removed and
apostrophe-less contractions are restored ("dont" -> "don't"). The punctuation list and the
straight-apostrophe contraction table are the ones of the EvalAI VQA server (also used by Molmo's
own eval); the GT-Vision-Lab copy lists "'" and ":" as punctuation and writes curly apostrophes.
Differences from the official script, on purpose: reference answers get the same normalisation
as the prediction (the script assumes pre-normalised annotations), and a lone reference answer is
scored by exact match (leave-one-out is undefined for one answer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from molmo2_jax.processing.formats import parse_count

_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
                ",", "?", "!")
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
# The official pattern is "(?!<=\d)(\.)(?!\d)": its first group is a (mistyped) look-ahead that
# never fires, so in effect it drops every period not followed by a digit.
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_NUMBER_WORDS_VQA = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                     "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})
# The official table's capitalised keys ("Im", "Ive", "Id've", "I'dve") can never match after
# lower-casing, so they are left out; everything else is the table as published.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}


def _process_punctuation(text: str) -> str:
    """VQAv2 punctuation rule: delete marks touching a space (or all, given "1,000"), else space them."""
    out = text
    has_digit_comma = _COMMA_BETWEEN_DIGITS.search(text) is not None
    for mark in _PUNCTUATION:
        if mark + " " in text or " " + mark in text or has_digit_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out)


def _process_digits_articles(text: str) -> str:
    """VQAv2 word rule: lower-case, number words -> digits, drop articles, restore contractions."""
    words = [_NUMBER_WORDS_VQA.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def normalize_vqa_answer(text: str) -> str:
    """Normalise an answer string the way the official VQAv2 evaluation does."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _process_digits_articles(_process_punctuation(text))


def vqa_accuracy(prediction: str, answers: Sequence[str] | str, *, leave_one_out: bool = True) -> float:
    """VQAv2 soft accuracy: min(#humans agreeing / 3, 1), averaged over the leave-one-out subsets."""
    if isinstance(answers, str):
        answers = [answers]
    if not answers:
        raise ValueError("vqa_accuracy needs at least one reference answer; drop examples without answers.")
    pred = normalize_vqa_answer(prediction)
    refs = [normalize_vqa_answer(a) for a in answers]
    matches = sum(r == pred for r in refs)
    if len(refs) == 1:
        return float(matches)
    if not leave_one_out:
        return min(matches / 3.0, 1.0)
    # Leaving out a matching answer leaves matches-1 agreeing humans, leaving out another leaves matches.
    n = len(refs)
    return (matches * min((matches - 1) / 3.0, 1.0) + (n - matches) * min(matches / 3.0, 1.0)) / n


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _normalize_anls(text: str) -> str:
    """ANLS answers are case-insensitive; surrounding and repeated whitespace is ignored."""
    return " ".join(text.strip().lower().split())


def anls(prediction: str, answers: Sequence[str] | str, *, threshold: float = 0.5) -> float:
    """Average Normalised Levenshtein Similarity (DocVQA/ST-VQA): best 1 - NL over answers, 0 if NL >= threshold."""
    if isinstance(answers, str):
        answers = [answers]
    if not answers:
        raise ValueError("anls needs at least one reference answer; drop examples without answers.")
    pred = _normalize_anls(prediction)
    best = 0.0
    for answer in answers:
        ref = _normalize_anls(answer)
        longest = max(len(pred), len(ref))
        distance = levenshtein(pred, ref) / longest if longest else 0.0
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best


_LETTER_ONLY = re.compile(r"^\(?([A-Za-z])\)?[.:]?$")
_LETTER_THEN_TEXT = re.compile(r"^(?:\(([A-Za-z])\)|([A-Za-z])[.):])\s")
# Upper-case only, so that "the answer is a cat" stays text.
_ANSWER_IS_LETTER = re.compile(r"(?i:answer|option|choice)\s*(?i:is|:)?\s*\(?([A-Z])\)?(?=[.:),\s]|$)")


def select_mc_option(prediction: str, options: Sequence[str]) -> int:
    """Index of the option a free-form answer picks ("B", "(B) cat", "The answer is B", "cat"); -1 for none."""
    raw = " ".join(prediction.split()).rstrip(".")
    pred = raw.lower()
    opts = [" ".join(o.lower().split()).rstrip(".") for o in options]
    if not pred or not opts:
        return -1
    if pred in opts:
        return opts.index(pred)
    for pattern in (_LETTER_ONLY, _LETTER_THEN_TEXT, _ANSWER_IS_LETTER):
        match = pattern.search(raw)
        if match:
            index = ord(next(g for g in match.groups() if g).lower()) - ord("a")
            if index < len(opts):
                return index
            if pattern is _LETTER_ONLY:
                return -1  # a lone letter past the last option picks nothing
    for picks in ([i for i, o in enumerate(opts) if pred.startswith(o)],
                  [i for i, o in enumerate(opts) if o.startswith(pred)],
                  [i for i, o in enumerate(opts) if o in pred],
                  [i for i, o in enumerate(opts) if pred in o]):
        if len(picks) == 1:
            return picks[0]
    distances = [levenshtein(pred, o) for o in opts]
    return distances.index(min(distances))


def multiple_choice_accuracy(prediction: str, options: Sequence[str], answer: int | str) -> float:
    """1.0 if the option picked by the prediction is the correct one; answer is an index, letter or option text."""
    if isinstance(answer, str):
        letter = answer.strip().lower()
        texts = [o.strip().lower() for o in options]
        if letter in texts:
            answer = texts.index(letter)
        elif len(letter) == 1 and "a" <= letter <= "z":
            answer = ord(letter) - ord("a")
        else:
            raise ValueError(f"answer {answer!r} is neither an option letter nor one of the options {list(options)}")
    return float(select_mc_option(prediction, options) == answer)


def counting_accuracy(prediction: str, target: int) -> float:
    """1.0 if the count parsed from the prediction (`formats.parse_count`) equals the target exactly."""
    return float(parse_count(prediction) == int(target))


# ------------------------------------------------------------------------------------------------
# allenai/molmo2 `VqaEval` (olmo/eval/vqa.py, evaluators.py): the scores its benchmark table reports.


def clean_vqa_prediction(prediction: str) -> str:
    """VqaEval's answer cleanup: text after "Answer:", else the most frequent line, whitespace collapsed."""
    pred = prediction.strip()
    if "Answer:" in pred:
        return pred.split("Answer:")[1].strip()
    if "\n" in pred:
        lines = [" ".join(x.strip().split()) for x in pred.split("\n")]
        counts = {line: lines.count(line) for line in lines}
        most = max(counts.values())
        return next(line for line in lines if counts[line] == most)
    return " ".join(pred.split())


def _allenai_preprocess(text: str) -> str:
    """allenai `preprocess_answer`: lower-case and strip first, then the VQAv2 rules."""
    return normalize_vqa_answer(text.replace("\n", " ").replace("\t", " ").lower().strip())


def allenai_vqa_score(answers: Sequence[str] | str, prediction: str) -> float:
    """allenai `vqa_score`: min(#matching answers / 3, 1) with no leave-one-out; a str target is exact match."""
    pred = _allenai_preprocess(prediction)
    if isinstance(answers, str):
        return float(pred == answers)
    refs = [_allenai_preprocess(a) for a in answers]
    return min(refs.count(pred) / 3.0, 1.0)


def allenai_anls(answer: str, prediction: str, theta: float = 0.5) -> float:
    """allenai `anls_metric` (pix2struct): case-insensitive, space-sensitive normalised Levenshtein."""
    longest = max(len(answer), len(prediction))
    distance = levenshtein(answer.lower(), prediction.lower()) / longest if longest else 0.0
    return 1 - distance if distance < theta else 0.0


def relaxed_correctness(answer: str, prediction: str, max_relative_change: float = 0.05) -> bool:
    """ChartQA relaxed accuracy (pix2struct): numbers within 5% ("12%" = 0.12), else case-insensitive match."""
    def to_float(text: str) -> float | None:
        try:
            return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            return None

    pred, target = to_float(prediction), to_float(answer)
    if pred is not None and target:
        return abs(pred - target) / abs(target) <= max_relative_change
    return prediction.lower() == answer.lower()


def exact_match(answers: Sequence[str], prediction: str) -> bool:
    """allenai `em`: the prediction equals one answer, ignoring case."""
    return prediction.lower() in [a.lower() for a in answers]
