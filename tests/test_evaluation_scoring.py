"""Answer extraction on outputs shaped like real model outputs."""

import pytest

from layalign.evaluation.scoring import extract_answer, is_correct, translation_scores

METAMATH_COT = (
    " Janet's ducks lay 16 eggs per day.\nShe eats 3 eggs for breakfast and uses 4 eggs for muffins, so she uses "
    "3 + 4 = 7 eggs.\nThe remaining eggs are 16 - 7 = 9 eggs.\nShe sells each egg for $2, so she makes 9 * $2 = "
    "$18.\nThe answer is: 18"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (METAMATH_COT, "18"),
        ("The answer is: 1,234.5.", "1234.5"),
        ("He made a profit of $70,000.\nThe answer is: 70000", "70000"),
        ("$-5", "-5"),
        ("She is left with -$5.", "-5"),
        ("The temperature is -3 degrees.", "-3"),
        ("#### 72", "72"),
        ("So the total is 18.00", "18"),
        ("It costs $18.", "18"),
        ("The answer is 0.5", "0.5"),
        ("20 - 5 = 15, so he needs 20 - 5", "5"),  # subtraction, not a negative number
        ("(3+4)-5", "5"),
        ("- 5 apples are left", "5"),  # a list bullet, not a sign
        ("答案是１８。", "18"),  # full-width digits
        ("答案是18元", "18"),
        ("উত্তর: ১৮", "18"),  # Bengali digits
        ("3,4 and 5", "5"),
        ("values 1,2345", "2345"),  # not a thousands group
        ("half is 1/2", "2"),  # fractions are not parsed (as in the paper)
        ("There is no number here.", None),
        ("", None),
    ],
)
def test_math_last_number(text, expected):
    assert extract_answer("mgsm", text) == expected
    assert extract_answer("msvamp", text) == expected


@pytest.mark.parametrize(
    ("pred", "gold", "ok"),
    [("18", "18", True), ("18", "18.0", True), ("1234.5", "1,234.5", True), ("8.0004", "8.0", True),
     ("8.002", "8.0", False), ("-5", "5", False), (None, "3", False), ("70000", "70,000", True)],
)
def test_math_is_correct(pred, gold, ok):
    assert is_correct("mgsm", pred, gold) is ok


def test_math_gold_must_be_a_number():
    with pytest.raises(ValueError, match="not a number"):
        is_correct("mgsm", "3", "three")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" B", "B"),
        ("B", "B"),
        ("Answer: B", "B"),
        ("The answer is (c).", "C"),
        ("(D) bank", "D"),
        ("B. bank\n\nQuestion: Where would you put a plate? Options: A. shelf", "B"),
        ("E)", "E"),
        ("A person would go to the store. So: C", "C"),  # the article "A" is not an answer
        ("E.g. you could go there. The answer is A", "A"),  # explicit answer wins over earlier letters
        ("C\nExplanation: A. is wrong", "C"),
        ("I don't know", None),
        ("F.", None),
    ],
)
def test_xcsqa_choice_letter(text, expected):
    assert extract_answer("xcsqa", text) == expected


def test_xcsqa_is_correct():
    assert is_correct("xcsqa", "B", " b")
    assert not is_correct("xcsqa", "A", "B")
    assert not is_correct("xcsqa", None, "B")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" entailment\n\nPremise: The cat sat.\nHypothesis: ...\nLabel: neutral", "entailment"),
        ("Neutral.", "neutral"),
        ("CONTRADICTION", "contradiction"),
        ("The premise entails the hypothesis.", "entailment"),
        ("The hypothesis contradicts the premise", "contradiction"),
        ("Yes, it follows.", "entailment"),
        ("maybe", "neutral"),
        ("No", "contradiction"),
        ("Not sure", None),  # "not" is not "no"
        ("", None),
    ],
)
def test_xnli_label(text, expected):
    assert extract_answer("xnli", text) == expected


def test_translation_first_line_and_corpus_scores():
    assert extract_answer("translation", "\n The cat sat on the mat.\nGerman: Die Katze") == "The cat sat on the mat."
    assert extract_answer("translation", "") == ""
    perfect = translation_scores(["The cat sat on the mat."], ["The cat sat on the mat."])
    assert perfect["chrf"] == pytest.approx(100.0) and perfect["bleu"] == pytest.approx(100.0)
    worse = translation_scores(["A dog ran."], ["The cat sat on the mat."])
    assert worse["chrf"] < 50 and worse["bleu"] < 50
    with pytest.raises(ValueError, match="corpus"):
        is_correct("translation", "x", "x")


def test_unknown_benchmark():
    with pytest.raises(ValueError, match="unknown benchmark"):
        extract_answer("gsm9k", "1")
