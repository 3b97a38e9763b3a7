"""Maths readers: GSM8K rendering, QAlign join, MetaMathQA, MGSM and MSVAMP (real shared data, row counts from
../shared/data/MANIFEST.md, and hand-written files)."""

from __future__ import annotations

import json

import pytest

from data_helpers import DATA, jsonl, needs_data, write
from layalign.data import (
    canonical_number,
    read_gsm8k_english,
    read_metamath_json,
    read_mgsm,
    read_msvamp,
    read_qalign_math,
    render_gsm8k_answer,
)
from layalign.data.examples import TrainExample
from layalign.data.prompts import format_prompt
from layalign.tasks import get_task


def test_canonical_number_and_gsm8k_rendering():
    assert [canonical_number(x) for x in ("1,000", "8.0", "2.50", "-3", "114,200")] == ["1000", "8", "2.5", "-3",
                                                                                        "114200"]
    with pytest.raises(ValueError):
        canonical_number("ten")
    answer = "She sold 48/2 = <<48/2=24>>24 clips.\nIn all 1,000 + 80 = <<1000+80=1080>>1,080.\n#### 1,080"
    assert render_gsm8k_answer(answer) == "She sold 48/2 = 24 clips.\nIn all 1,000 + 80 = 1,080.\nThe answer is: 1080"


@needs_data
def test_mgsm_real():
    data = read_mgsm(DATA / "mgsm")
    assert list(data) == sorted(get_task("mgsm").languages)  # a reader sorts; the registry's read orders
    assert list(get_task("mgsm").read(DATA / "mgsm", limit=1)) == list(get_task("mgsm").languages)
    assert {lang: len(v) for lang, v in data.items()} == dict.fromkeys(get_task("mgsm").languages, 250)
    first = data["en"][0]
    assert first.gold == "18" and first.source.startswith("Janet’s ducks") and first.prompt.endswith("step by step.")
    assert "2125" in {e.gold for e in data["en"]}  # the file writes 2,125
    assert all(canonical_number(e.gold) == e.gold for v in data.values() for e in v)
    only = read_mgsm(DATA / "mgsm" / "mgsm_sw.tsv", limit=5)
    assert list(only) == ["sw"] and len(only["sw"]) == 5


@needs_data
def test_msvamp_sample_real():
    data = read_msvamp(DATA / "msvamp_sample")
    assert {lang: len(v) for lang, v in data.items()} == dict.fromkeys(get_task("msvamp").languages, 20)
    assert data["sw"][0].gold == "8" and data["sw"][0].source.startswith("Julia alicheza")
    assert data["sw"][0].meta["query"].startswith("julia played tag")


@needs_data
def test_qalign_math_join_real():
    stats: dict = {}
    examples = read_qalign_math(DATA / "math_train", DATA / "gsm8k" / "train.jsonl", stats=stats)
    pairs = {"de": 7464, "es": 7468, "fr": 7464, "ja": 7466, "ru": 7360, "sw": 7469, "zh": 7363}
    # whitespace normalisation also joins the question whose GSM8K copy holds U+2028 where QAlign has a space
    assert stats == {lang: {"pairs": n, "joined": n} for lang, n in pairs.items()}
    assert len(examples) == sum(pairs.values())
    first = examples[0]
    assert first.lang == "de" and first.source.startswith("Natalia hat im April")
    assert first.prompt == format_prompt("math", query=first.source)
    assert first.target.endswith("clips altogether in April and May.\nThe answer is: 72")
    assert not any("<<" in e.target or "####" in e.target for e in examples)
    assert len(read_qalign_math(DATA / "math_train", DATA / "gsm8k" / "train.jsonl", langs=["sw"], limit=10)) == 10


@needs_data
def test_gsm8k_english_real():
    examples = read_gsm8k_english(DATA / "gsm8k" / "train.jsonl")
    assert len(examples) == 7473
    assert all(e.prompt is None and e.lang == "en" and "\nThe answer is: " in e.target for e in examples)
    assert read_gsm8k_english(DATA / "gsm8k" / "test.jsonl", limit=2, with_prompt=True)[0].prompt.endswith(
        "step by step.")


def test_metamath_json_array_and_variants(tmp_path):
    records = [{"query": f"Swali {i}", "response": f"Answer {i}. The answer is: {i}", "lang": "Swahili"}
               for i in range(3)]
    records.append({"question": "问题", "answer": "The answer is: 5", "language": "zh"})
    path = write(tmp_path / "metamath_615k.json", json.dumps(records, ensure_ascii=False, indent=2))
    examples = read_metamath_json(path)
    assert [e.lang for e in examples] == ["sw", "sw", "sw", "zh"]
    assert examples[0].prompt == format_prompt("math", query="Swali 0")
    assert examples[0].target == "Answer 0. The answer is: 0"
    assert [e.source for e in read_metamath_json(path, langs=["Swahili"], limit_per_lang=2)] == ["Swali 0", "Swali 1"]
    plain = write(tmp_path / "MetaMathQA.jsonl", jsonl({"query": "Q", "response": "R", "type": "GSM_AnsAug"}))
    assert read_metamath_json(plain, default_lang="en")[0].lang == "en"


def test_qalign_reports_unjoined(tmp_path):
    gsm = write(tmp_path / "gsm8k.jsonl", jsonl({"question": "One  plus one?", "answer": "1+1=<<1+1=2>>2\n#### 2"}))
    write(tmp_path / "q" / "sw-en" / "train.sw", "Moja jumlisha moja?\nSwali jingine?\n")
    write(tmp_path / "q" / "sw-en" / "train.en", "One plus one?\nAnother question?\n")
    stats: dict = {}
    examples = read_qalign_math(tmp_path / "q", gsm, stats=stats)
    assert stats == {"sw": {"pairs": 2, "joined": 1}}
    assert examples == [TrainExample("Moja jumlisha moja?", "1+1=2\nThe answer is: 2",
                                     format_prompt("math", query="Moja jumlisha moja?"), "sw")]
