"""VQAv2 accuracy, ANLS, multiple choice and counting on hand-worked cases."""

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molmo2_jax.eval.vqa import (
    anls,
    counting_accuracy,
    levenshtein,
    multiple_choice_accuracy,
    normalize_vqa_answer,
    select_mc_option,
    vqa_accuracy,
)


@pytest.mark.parametrize("raw, normalized", [
    ("Two", "2"),  # lower-cased, then number word -> digit
    ("ten", "10"),
    ("none", "0"),
    ("dont", "don't"),  # contraction restored
    ("don't", "don't"),  # "'" is not punctuation for VQAv2 (EvalAI list)
    ("Yes.", "yes"),  # period not followed by a digit dropped
    ("3.5", "3.5"),  # period before a digit kept
    ("a dog", "dog"),  # articles removed
    ("The Cat", "cat"),
    ("1,000", "1000"),  # digit-comma-digit: every punctuation mark is deleted, not spaced
    ("hot dog, please", "hot dog please"),  # "," touches a space -> deleted
    ("dog-house", "dog house"),  # "-" touches no space -> replaced by a space
    ("  red\tand\nblue  ", "red and blue"),
    ("what?!", "what"),
])
def test_vqa_normalization_matches_official_rules(raw, normalized):
    assert normalize_vqa_answer(raw) == normalized


@pytest.mark.parametrize("num_matching, expected", [
    # 10 humans, m agree with the prediction. Leaving out an agreeing human leaves m-1 agreeing,
    # leaving out another leaves m: acc = (m * min((m-1)/3, 1) + (10-m) * min(m/3, 1)) / 10.
    (0, 0.0),
    (1, 0.3),  # (1*0 + 9*(1/3)) / 10
    (2, 0.6),  # (2*(1/3) + 8*(2/3)) / 10 = 6/10
    (3, 0.9),  # (3*(2/3) + 7*1) / 10
    (4, 1.0),  # (4*1 + 6*1) / 10
])
def test_vqa_accuracy_averages_leave_one_out_subsets(num_matching, expected):
    answers = ["2"] * num_matching + ["3"] * (10 - num_matching)
    assert vqa_accuracy("Two", answers) == pytest.approx(expected)


def test_vqa_accuracy_without_leave_one_out_is_min_count_over_three():
    assert vqa_accuracy("2", ["2", "2", "3", "4"], leave_one_out=False) == pytest.approx(2 / 3)


def test_vqa_accuracy_normalizes_both_sides():
    assert vqa_accuracy("A dog.", ["dog"] * 10) == 1.0
    assert vqa_accuracy("1,000", ["1000"] * 10) == 1.0
    assert vqa_accuracy("dont", ["don't"] * 10) == 1.0


def test_vqa_accuracy_single_reference_is_exact_match():
    assert vqa_accuracy("Yes", "yes") == 1.0
    assert vqa_accuracy("no", ["yes"]) == 0.0


@settings(max_examples=60, deadline=None)
@given(pred=st.sampled_from(["a", "b", "c"]),
       answers=st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=10))
def test_vqa_accuracy_closed_form_equals_literal_leave_one_out(pred, answers):
    # Letters "a" are articles and vanish on both sides; the literal loop uses normalised strings too.
    norm = [normalize_vqa_answer(a) for a in answers]
    p = normalize_vqa_answer(pred)
    literal = sum(min(1.0, sum(o == p for o in norm[:i] + norm[i + 1:]) / 3) for i in range(len(norm))) / len(norm)
    assert vqa_accuracy(pred, answers) == pytest.approx(literal)


@pytest.mark.parametrize("a, b, distance", [
    ("kitten", "sitting", 3),  # k->s, e->i, +g
    ("", "abc", 3),
    ("abc", "abc", 0),
    ("flaw", "lawn", 2),  # -f, +n
])
def test_levenshtein_hand_cases(a, b, distance):
    assert levenshtein(a, b) == distance
    assert levenshtein(b, a) == distance


@settings(max_examples=60, deadline=None)
@given(a=st.text("abc", max_size=6), b=st.text("abc", max_size=6))
def test_levenshtein_matches_recursive_definition(a, b):
    @functools.cache
    def rec(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(rec(i - 1, j) + 1, rec(i, j - 1) + 1, rec(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    assert levenshtein(a, b) == rec(len(a), len(b))


@pytest.mark.parametrize("pred, answers, expected", [
    ("hello", ["hello"], 1.0),
    ("helo", ["hello"], 0.8),  # distance 1 / max length 5 = 0.2 -> 1 - 0.2
    ("Hello  ", ["hello"], 1.0),  # case and surrounding whitespace ignored
    ("ab", ["ac"], 0.0),  # NL = 1/2 is not below the 0.5 threshold
    ("abcd", ["abce"], 0.75),  # NL = 1/4
    ("abc", ["xyz"], 0.0),
    ("helo", ["nothing", "hello"], 0.8),  # best over accepted answers
    ("", [""], 1.0),
])
def test_anls_hand_cases(pred, answers, expected):
    assert anls(pred, answers) == pytest.approx(expected)


OPTIONS = ["cat", "dog", "a bird"]


@pytest.mark.parametrize("pred, index", [
    ("B", 1), ("(b)", 1), ("B.", 1), ("B. dog", 1), ("(C) a bird", 2),
    ("The answer is C.", 2),
    ("the answer is a bird", 2),  # lower-case "a" is an article, not option A
    ("dog", 1), ("Dog.", 1), ("cats", 0), ("A cat", 0),
    ("D", -1),  # letter past the last option
    ("", -1),
    ("a brid", 2),  # nothing matches: smallest edit distance
])
def test_select_mc_option(pred, index):
    assert select_mc_option(pred, OPTIONS) == index


def test_multiple_choice_accuracy_accepts_index_letter_or_text():
    assert multiple_choice_accuracy("B", OPTIONS, 1) == 1.0
    assert multiple_choice_accuracy("dog", OPTIONS, "B") == 1.0
    assert multiple_choice_accuracy("(B)", OPTIONS, "dog") == 1.0
    assert multiple_choice_accuracy("cat", OPTIONS, "B") == 0.0
    with pytest.raises(ValueError, match="neither an option letter"):
        multiple_choice_accuracy("cat", OPTIONS, "horse")


def test_counting_accuracy_is_exact_integer_match():
    assert counting_accuracy("Counting the <points coords=\"1 1 500 500\">cat</points> shows a total of 1.", 1) == 1.0
    assert counting_accuracy("There are 4", 3) == 0.0
    assert counting_accuracy("I cannot tell", 0) == 0.0
