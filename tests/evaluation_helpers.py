"""Shared by tests/test_evaluation_*.py: a fake system, a few real MGSM rows, and readers of the written tables."""

import json
from pathlib import Path

import pytest

from layalign.data.examples import EvalExample

DATA = Path(__file__).parents[1] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "mgsm").is_dir(), reason=f"shared data not found at {DATA}")


class FakeSystem:
    """The shape `layalign.systems.load_system` returns. Answers right when `right(source)` says so, in the
    style of a real model; counts what it was asked."""

    def __init__(self, name, answer, fail_after_calls=None):
        self.name = name
        self.answer = answer  # source -> output text
        self.calls = 0
        self.seen: list[str] = []
        self.fail_after_calls = fail_after_calls
        self.langs: list[str] = []  # the languages evaluation passed, in order

    def generate(self, sources, prompts, max_new_tokens, langs=None):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt  # as if the run were killed
        assert len(sources) == len(prompts)
        self.calls += 1
        self.seen += sources
        self.langs += langs or []
        return [self.answer(s) for s in sources]


def mgsm_examples(langs=("en", "zh", "bn"), n=5):
    out = {}
    for lang in langs:
        rows = (DATA / "mgsm" / f"mgsm_{lang}.tsv").read_text(encoding="utf-8").splitlines()[:n]
        out[lang] = [EvalExample(id=f"mgsm-{lang}-{i}", lang=lang, source=q, gold=a, prompt=f"Q: {q}")
                     for i, (q, a) in enumerate(line.split("\t") for line in rows)]
    return out


def math_answerer(examples_by_lang, right):
    """A chain-of-thought answer that is right for the examples `right(example)` picks, off by one otherwise."""
    by_source = {ex.source: ex for exs in examples_by_lang.values() for ex in exs}

    def answer(source):
        ex = by_source[source]
        gold = float(ex.gold.replace(",", ""))
        value = gold if right(ex) else gold + 1
        return f" First, 3 + 4 = 7 and 16 - 7 = 9.\nSo the total is ${value:,.2f}.\nThe answer is: {value:,g}"

    return answer


def table_row(md: str, label: str) -> dict[str, str]:
    lines = [line for line in md.splitlines() if line.startswith("|")]
    header = [c.strip().rstrip("*") for c in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == label:
            return dict(zip(header, cells, strict=True))
    raise AssertionError(f"no row {label!r} in\n{md}")


def accuracy_from_predictions(path: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    langs = dict.fromkeys(r["lang"] for r in rows)
    return {lang: 100 * sum(r["correct"] for r in rows if r["lang"] == lang) / sum(r["lang"] == lang for r in rows)
            for lang in langs}
