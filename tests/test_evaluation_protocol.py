"""The paper protocol beside the lenient default: the authors' exact scoring rules, the runs that record their
protocol, MGSM's average without Telugu, and `layalign compare` refusing to mix protocols unless told to."""

import json

import pytest

from evaluation_helpers import FakeSystem, table_row
from layalign.cli import build_parser, main
from layalign.data.examples import EvalExample
from layalign.evaluation import compare_runs, evaluate
from layalign.evaluation.scoring import PROTOCOLS, authors_last_number, extract_answer, is_correct


@pytest.mark.parametrize(("text", "expected"), [
    ("The answer is: 1,234.5.", 1234.5),  # commas between digits dropped, as extract_last_num does
    ("She is left with -$5.", 5.0),  # no sign is read
    ("答案是１８。", 18.0),  # Python's \d matches any decimal digit, float() reads it
    ("There is no number here.", 0.0),  # none: 0.0
    ("half is 1/2", 2.0),
])
def test_the_authors_last_number(text, expected):
    assert authors_last_number(text) == expected


def test_paper_maths_rules_differ_from_lenient_where_the_authors_code_does():
    # a negative answer: the authors read neither sign, so a wrong sign is right under their rule
    assert is_correct("mgsm", extract_answer("mgsm", "It is 5", "paper"), "-5", "paper")
    assert not is_correct("mgsm", extract_answer("mgsm", "It is 5"), "-5")
    # no number at all reads as 0
    assert extract_answer("mgsm", "I do not know", "paper") == "0"
    assert is_correct("mgsm", extract_answer("mgsm", "I do not know", "paper"), "0", "paper")
    assert extract_answer("mgsm", "I do not know") is None
    # tolerance: strictly below 1e-3
    assert is_correct("mgsm", "18.0009", "18", "paper") and not is_correct("mgsm", "18.001", "18", "paper")
    assert is_correct("msvamp", extract_answer("msvamp", "The answer is: 1,080", "paper"), "1080", "paper")


@pytest.mark.parametrize(("bench", "output", "gold", "lenient", "paper"), [
    ("xnli", " entailment ", "entailment", True, True),  # stripped output equal to the label word
    ("xnli", "entailment\n\nPremise: x", "entailment", True, False),  # anything after counts under paper
    ("xnli", "Entailment", "entailment", True, False),  # so does case
    ("xnli", "Yes", "entailment", True, False),
    ("xcsqa", "B", "B", True, True),
    ("xcsqa", "B. a river", "B", True, False),
    ("xcsqa", "The answer is (b)", "B", True, False),
])
def test_paper_classification_is_exact_match_of_the_stripped_output(bench, output, gold, lenient, paper):
    assert is_correct(bench, extract_answer(bench, output), gold) is lenient
    assert is_correct(bench, extract_answer(bench, output, "paper"), gold, "paper") is paper


def test_unknown_protocol_is_refused(tmp_path):
    assert PROTOCOLS == ("lenient", "paper")
    with pytest.raises(ValueError, match="unknown protocol 'strict'"):
        extract_answer("mgsm", "5", "strict")
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate(FakeSystem("f", lambda s: "5"), "mgsm", {}, tmp_path, progress=False, protocol="strict")


def mgsm_toy(langs=("te", "bn", "en")):
    # te always wrong, the others right: the paper average (without te) differs from the all-language one
    return {lang: [EvalExample(id=f"{lang}-{i}", lang=lang, source=f"{lang} q{i}", gold="7", prompt="p")
                   for i in range(2)] for lang in langs}


def answer_toy(source):
    return "The answer is: 8" if source.startswith("te") else "The answer is: 7"


def test_a_paper_run_records_its_protocol_and_mgsm_averages_without_telugu(tmp_path):
    results = evaluate(FakeSystem("f", answer_toy), "mgsm", mgsm_toy(), tmp_path / "p", progress=False,
                       protocol="paper")
    assert results["protocol"] == "paper"
    assert results["average"]["accuracy"] == pytest.approx(200 / 3)  # all three languages
    assert results["paper_average"] == {"languages": ["bn", "en"], "excluded": ["te"], "accuracy": 100.0}
    assert json.loads((tmp_path / "p" / "run.json").read_text())["protocol"] == "paper"
    assert json.loads((tmp_path / "p" / "results.json").read_text())["protocol"] == "paper"
    md = (tmp_path / "p" / "results.md").read_text(encoding="utf-8")
    assert table_row(md, "f")["Avg w/o te"] == "100.0" and table_row(md, "f")["Avg"] == "66.7"
    assert "paper protocol" in md
    assert "Avg w/o te" in (tmp_path / "p" / "results.csv").read_text(encoding="utf-8")

    lenient = evaluate(FakeSystem("f", answer_toy), "mgsm", mgsm_toy(), tmp_path / "l", progress=False)
    assert lenient["protocol"] == "lenient" and "paper_average" not in lenient
    assert "Avg w/o te" not in (tmp_path / "l" / "results.md").read_text(encoding="utf-8")
    # the rows were judged under the run's protocol: resuming under another one is refused
    with pytest.raises(ValueError, match="protocol: 'lenient' there, 'paper' now"):
        evaluate(FakeSystem("f", answer_toy), "mgsm", mgsm_toy(), tmp_path / "l", progress=False, protocol="paper")


def test_compare_refuses_mixed_protocols_unless_allowed_and_then_says_so(tmp_path, capsys):
    xnli = {"en": [EvalExample(id=f"x{i}", lang="en", source="s", gold="neutral") for i in range(2)]}
    chatty = FakeSystem("chatty", lambda s: "Neutral.")
    evaluate(chatty, "xnli", xnli, tmp_path / "lenient", progress=False)
    evaluate(chatty, "xnli", xnli, tmp_path / "paper", progress=False, protocol="paper")
    runs = [tmp_path / "lenient", tmp_path / "paper"]
    with pytest.raises(ValueError, match="different protocols.*--allow-mixed-protocols"):
        compare_runs(runs, tmp_path / "cmp")
    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "cmp")]) == 2
    assert "different protocols" in capsys.readouterr().err

    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "cmp"), "--allow-mixed-protocols"]) == 0
    md = (tmp_path / "cmp" / "compare.md").read_text(encoding="utf-8")
    assert "MIXED PROTOCOLS" in md
    assert table_row(md, "chatty [lenient] (lenient)")["en"] == "100.0"
    assert table_row(md, "chatty [paper] (paper)")["en"] == "0.0"
    # one protocol: the table says which
    assert "Protocol: paper." in compare_runs([tmp_path / "paper"], tmp_path / "cmp1")


def test_the_cli_offers_the_protocol():
    args = build_parser().parse_args(["evaluate", "--model", "m", "--benchmark", "mgsm", "--protocol", "paper"])
    assert args.protocol == "paper"
    assert build_parser().parse_args(["evaluate", "--model", "m", "--benchmark", "mgsm"]).protocol == "lenient"
    assert build_parser().parse_args(["compare", "a", "--allow-mixed-protocols"]).allow_mixed_protocols
