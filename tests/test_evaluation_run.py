"""Evaluation runs end to end with a fake system on a few real MGSM / XNLI rows: results files, resuming,
the run record, choice scoring and `layalign evaluate`."""

import csv
import dataclasses
import json
import sys
import types

import pytest

from evaluation_helpers import (
    DATA,
    FakeSystem,
    accuracy_from_predictions,
    math_answerer,
    mgsm_examples,
    needs_data,
    table_row,
)
from layalign.cli import main
from layalign.data.examples import EvalExample
from layalign.evaluation import evaluate, load_predictions
from layalign.tasks import TASKS, get_task


@needs_data
def test_mgsm_end_to_end(tmp_path):
    examples = mgsm_examples()
    right = {"en": {0, 1, 2, 3, 4}, "zh": {0, 2}, "bn": {1}}
    system = FakeSystem("fake-math", math_answerer(examples, lambda ex: int(ex.id.split("-")[-1]) in right[ex.lang]))
    results = evaluate(system, "mgsm", examples, tmp_path, batch_size=4, progress=False, low_resource={"bn"})

    for name in ("predictions.jsonl", "results.json", "results.md", "results.csv", "accuracy.png", "run.json"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "accuracy.png").read_bytes()[:4] == b"\x89PNG"

    # the table is recomputed from predictions.jsonl: the same numbers
    acc = accuracy_from_predictions(tmp_path / "predictions.jsonl")
    assert acc == {"en": 100.0, "zh": 40.0, "bn": 20.0}
    row = table_row((tmp_path / "results.md").read_text(encoding="utf-8"), "fake-math")
    for lang, value in acc.items():
        assert row[lang] == f"{value:.1f}"
    assert row["Avg"] == f"{sum(acc.values()) / 3:.1f}"
    assert row["Low-resource avg"] == "20.0"
    assert results["average"]["accuracy"] == pytest.approx(sum(acc.values()) / 3)
    assert results["system"] == "fake-math" and results["n"] == 15

    pred = json.loads((tmp_path / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(pred) == {"id", "lang", "prompt", "source", "output", "answer", "gold", "correct"}
    assert pred["answer"] == pred["gold"] == "18" and pred["correct"] is True

    with open(tmp_path / "results.csv", encoding="utf-8") as f:
        csv_rows = list(csv.DictReader(f))
    assert csv_rows[0]["system"] == "fake-math" and float(csv_rows[0]["zh"]) == 40.0
    assert system.calls == 4  # 15 examples in batches of 4


@needs_data
def test_resume_skips_finished_rows(tmp_path):
    examples = mgsm_examples(n=4)  # 12 examples
    answer = math_answerer(examples, lambda ex: True)
    killed = FakeSystem("fake", answer, fail_after_calls=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate(killed, "mgsm", examples, tmp_path, batch_size=3, progress=False)
    pred_path = tmp_path / "predictions.jsonl"
    assert len(load_predictions(pred_path)) == 6
    with open(pred_path, "a", encoding="utf-8") as f:
        f.write('{"id": "mgsm-zh-2", "lang": "zh", "prom')  # a row cut off by the kill

    resumed = FakeSystem("fake", answer)
    results = evaluate(resumed, "mgsm", examples, tmp_path, batch_size=3, progress=False)
    assert resumed.calls == 2 and len(resumed.seen) == 6  # only the 6 unfinished examples (the cut row is redone)
    rows = load_predictions(pred_path)
    assert sorted(r["id"] for r in rows) == sorted(ex.id for exs in examples.values() for ex in exs)
    assert results["n"] == 12 and results["average"]["accuracy"] == 100.0

    again = FakeSystem("fake", answer)
    evaluate(again, "mgsm", examples, tmp_path, progress=False)
    assert again.calls == 0  # everything done: nothing generated, tables rewritten


@needs_data
def test_resume_refuses_another_system(tmp_path):
    examples = mgsm_examples(langs=("en",), n=2)
    evaluate(FakeSystem("a", math_answerer(examples, lambda ex: True)), "mgsm", examples, tmp_path, progress=False)
    with pytest.raises(ValueError, match="another run"):
        evaluate(FakeSystem("b", math_answerer(examples, lambda ex: True)), "mgsm", examples, tmp_path,
                 progress=False)


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"id": "1", "lang": "en"}\nnot json\n{"id": "2", "lang": "en"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        load_predictions(path)


@pytest.mark.skipif(not (DATA / "xnli" / "dev").is_dir(), reason=f"XNLI dev not found under {DATA}")
def test_xnli_end_to_end(tmp_path):
    examples = {}
    for lang in ("en", "sw"):
        rows = (DATA / "xnli" / "dev" / f"dev-{lang}.tsv").read_text(encoding="utf-8").splitlines()[:6]
        examples[lang] = [
            EvalExample(id=f"xnli-{lang}-{i}", lang=lang, source=f"Premise: {p}\nHypothesis: {h}\nLabel:", gold=label)
            for i, (p, h, label) in enumerate(line.split("\t") for line in rows)
        ]
    gold = {ex.source: ex.gold for exs in examples.values() for ex in exs}
    # a model that always says "neutral", continuing with another made-up example as small LLMs do
    system = FakeSystem("always-neutral", lambda s: " neutral\n\nPremise: x\nHypothesis: y\nLabel: entailment")
    results = evaluate(system, "xnli", examples, tmp_path, progress=False, low_resource={"sw"})
    acc = accuracy_from_predictions(tmp_path / "predictions.jsonl")
    for lang, exs in examples.items():
        expected = 100 * sum(gold[ex.source] == "neutral" for ex in exs) / len(exs)
        assert acc[lang] == pytest.approx(expected)
        assert results["per_language"][lang]["accuracy"] == pytest.approx(expected)
    row = table_row((tmp_path / "results.md").read_text(encoding="utf-8"), "always-neutral")
    assert row["Low-resource avg"] == f"{acc['sw']:.1f}"


def test_translation_scores_per_language(tmp_path):
    refs = ["The cat sat on the mat.", "It is raining today.", "I like green tea."]
    examples = {lang: [EvalExample(id=f"{lang}-{i}", lang=lang, source=f"<{lang}> {r}", gold=r)
                       for i, r in enumerate(refs)] for lang in ("de", "sw")}
    # perfect for German, poor for Swahili
    system = FakeSystem("fake-mt", lambda s: s.split("> ", 1)[1] + "\nMore text" if s.startswith("<de>") else "No.")
    results = evaluate(system, "translation", examples, tmp_path, progress=False, low_resource={"sw"})
    assert results["per_language"]["de"]["chrf"] == pytest.approx(100.0)
    assert results["per_language"]["sw"]["bleu"] < 10
    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert table_row(md, "fake-mt (chrF)")["de"] == "100.0"
    assert "fake-mt (BLEU)" in md
    assert (tmp_path / "scores.png").is_file()




@needs_data
def test_cli_evaluate_default_out_dir(tmp_path, monkeypatch, capsys):
    examples = mgsm_examples(langs=("en",), n=3)
    system = FakeSystem("llm:Some/Model", math_answerer(examples, lambda ex: True))
    # stand-ins for the loader and the registry's reader (its default data: a folder that exists)
    pipeline = types.ModuleType("layalign.systems")
    pipeline.load_system = lambda model, device=None, dtype=None: system
    monkeypatch.setitem(TASKS, "mgsm", dataclasses.replace(
        TASKS["mgsm"], reader=lambda path, langs=None, limit=None: examples, data_path=str(tmp_path)))
    monkeypatch.setitem(sys.modules, "layalign.systems", pipeline)
    monkeypatch.chdir(tmp_path)

    assert main(["evaluate", "--model", "llm:Some/Model", "--benchmark", "mgsm", "--limit", "3"]) == 0
    out = tmp_path / "runs" / "eval" / "mgsm-llm_Some_Model"
    assert (out / "results.md").is_file()
    assert table_row(capsys.readouterr().out, "llm:Some/Model")["en"] == "100.0"


@needs_data
def test_with_the_real_reader(tmp_path):
    examples = get_task("mgsm").read(DATA / "mgsm", langs=["sw", "en"], limit=2)
    gold = {ex.source: ex.gold for exs in examples.values() for ex in exs}
    system = FakeSystem("echo", lambda s: f"Step 1: 2 + 2 = 4.\nThe answer is: {gold[s]}")
    results = evaluate(system, "mgsm", examples, tmp_path, progress=False)  # low-resource set from the registry
    assert results["average"]["accuracy"] == 100.0
    assert results["low_resource_languages"] == ["sw"] and results["low_resource_average"]["accuracy"] == 100.0


@needs_data
def test_choice_scoring_picks_the_most_likely_allowed_answer(tmp_path):
    """--scoring choices: every example is scored with every label word; the output is the most likely one, the
    row keeps the log-likelihoods, and the run record says how it was scored."""
    rows = (DATA / "xnli" / "dev" / "dev-sw.tsv").read_text(encoding="utf-8").splitlines()[:5]
    examples = {"sw": [EvalExample(id=f"xnli-sw-{i}", lang="sw", source=f"Premise: {p}\nHypothesis: {h}\nLabel:",
                                   prompt=f"Premise: {p}\nHypothesis: {h}\nLabel:", gold=label)
                       for i, (p, h, label) in enumerate(line.split("\t") for line in rows)]}
    preferred = ["contradiction", "neutral", "entailment", "neutral", "contradiction"]

    class Scorer(FakeSystem):
        def score_choices(self, sources, prompts, choices, langs=None):
            assert len(sources) == len(prompts) and choices == ["entailment", "neutral", "contradiction"]
            return [[0.0 if c == preferred[int(s.split("#")[-1])] else -1.0 - len(c) for c in choices]
                    for s in sources]

    for i, ex in enumerate(examples["sw"]):
        examples["sw"][i] = EvalExample(id=ex.id, lang="sw", source=f"{ex.source}#{i}", prompt=ex.prompt,
                                        gold=ex.gold)
    system = Scorer("scorer", answer=None)
    results = evaluate(system, "xnli", examples, tmp_path, batch_size=2, progress=False, scoring="choices")
    predictions = load_predictions(tmp_path / "predictions.jsonl")
    answers = {r["id"]: r["answer"] for r in predictions}  # written longest first, not in file order
    assert [answers[ex.id] for ex in examples["sw"]] == preferred
    assert all(max(r["choice_logprobs"], key=r["choice_logprobs"].get) == r["answer"] for r in predictions)
    expected = 100 * sum(p == ex.gold for p, ex in zip(preferred, examples["sw"], strict=True)) / 5
    assert results["per_language"]["sw"]["accuracy"] == pytest.approx(expected)
    assert json.loads((tmp_path / "run.json").read_text())["scoring"] == "choices"
    assert system.calls == 0  # nothing was generated
    with pytest.raises(ValueError, match="holds another run"):  # a generated run cannot resume into it
        evaluate(system, "xnli", examples, tmp_path, progress=False)
    with pytest.raises(ValueError, match="fixed set of answers"):
        evaluate(system, "mgsm", examples, tmp_path / "m", progress=False, scoring="choices")
