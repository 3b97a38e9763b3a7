"""layalign.data.numbers: the answer-scoring number functions behave as evaluation/scoring.py documents, and the
strict gold-number reading agrees with the free-text one on every real gold field."""

from __future__ import annotations

import pytest

from data_helpers import DATA, needs_data
from layalign.data import read_mgsm
from layalign.data.io import _jsonl_records
from layalign.data.numbers import canonical_number, format_number, last_number, normalise_digits


@pytest.mark.parametrize(("text", "expected"), [
    ("The answer is: 1,234.5.", 1234.5),
    ("$-5", -5.0),
    ("She is left with -$5.", -5.0),
    ("20 - 5 = 15, so he needs 20 - 5", 5.0),  # subtraction, not a negative number
    ("(3+4)-5", 5.0),
    ("- 5 apples are left", 5.0),  # a list bullet, not a sign
    ("答案是１８。", 18.0),  # full-width digits
    ("উত্তর: ১৮", 18.0),  # Bengali digits
    ("values 1,2345", 2345.0),  # not a thousands group
    ("There is no number here.", None),
])
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_format_number_and_normalise_digits():
    assert [format_number(x) for x in (18.0, 1234.5, -3.0)] == ["18", "1234.5", "-3"]
    assert normalise_digits("１８ ১৮ ๑๘ \u22125") == "18 18 18 -5"


def test_gold_and_text_readings_differ_only_off_the_data():
    # a gold field is one plain literal with commas dropped anywhere; model text keeps commas as separators
    assert canonical_number("1,2345") == "12345" and last_number("1,2345") == 2345.0
    for raw in ("$5", "5.", "+3"):
        with pytest.raises(ValueError, match="not a number"):
            canonical_number(raw)
        assert last_number(raw) is not None


@needs_data
def test_gold_and_text_readings_agree_on_real_gold_fields():
    raws = [line.split("\t")[1] for f in sorted((DATA / "mgsm").glob("mgsm_*.tsv"))
            for line in f.read_text(encoding="utf-8").split("\n") if line.strip()]
    for split in ("train", "test"):
        raws += [r["answer"].rpartition("####")[2] for _, r in _jsonl_records(DATA / "gsm8k" / f"{split}.jsonl")]
    assert len(raws) > 10_000
    assert [r for r in raws if canonical_number(r) != format_number(last_number(r))] == []
    assert all(format_number(last_number(e.gold)) == e.gold for v in read_mgsm(DATA / "mgsm").values() for e in v)
