"""XNLI readers: the real dev and train sets, JSONL and single-file layouts."""

from __future__ import annotations

from collections import Counter

from data_helpers import DATA, jsonl, needs_data, write
from layalign.data import (
    read_xnli_eval,
    read_xnli_train_jsonl,
)
from layalign.tasks import get_task


@needs_data
def test_xnli_dev_real():
    data = read_xnli_eval(DATA / "xnli")
    assert {lang: len(v) for lang, v in data.items()} == dict.fromkeys(get_task("xnli").languages, 2490)
    assert Counter(e.gold for e in data["sw"]) == dict.fromkeys(("entailment", "neutral", "contradiction"), 830)
    example = data["en"][0]
    assert example.source == example.prompt == ("Premise: And he said, Mama, I'm home.\nHypothesis: He called his mom "
                                                 "as soon as the school bus dropped him off.\nLabel:")
    assert example.gold == "neutral"
    # the label sequence is identical across languages (MANIFEST)
    assert [e.gold for e in data["zh"]] == [e.gold for e in data["en"]]


@needs_data
def test_xnli_train_real():
    files = sorted((DATA / "xnli" / "train").glob("train-*.jsonl"))
    assert len(files) == 8
    for f in files:
        lang = f.stem.split("-")[1]
        examples = read_xnli_train_jsonl(f, lang)
        assert len(examples) == 9000
        assert Counter(e.target for e in examples) == dict.fromkeys(("entailment", "neutral", "contradiction"), 3000)
        assert all(e.source == e.prompt and e.lang == lang for e in examples)


def test_xnli_eval_jsonl_and_single_file(tmp_path):
    write(tmp_path / "test-sw.jsonl", jsonl({"sentence1": "P", "sentence2": "H", "label": 2}))
    data = read_xnli_eval(tmp_path, split="test")
    assert data["sw"][0].gold == "contradiction" and data["sw"][0].source == "Premise: P\nHypothesis: H\nLabel:"
    assert list(read_xnli_eval(tmp_path / "test-sw.jsonl")) == ["sw"]  # a file's own name gives split and language
