"""Translation pairs: the shared parallel corpora (row counts from ../shared/data/MANIFEST.md), the translation
test set, and the TSV / JSONL / line-aligned formats."""

from __future__ import annotations

from collections import Counter

import pytest

from data_helpers import DATA, jsonl, needs_data, write
from layalign.data import (
    read_authors_bilingual,
    read_parallel_files,
    read_parallel_jsonl,
    read_parallel_tsv,
    read_shared_parallel,
    read_translation_eval,
)
from layalign.data.examples import TrainExample
from layalign.tasks import get_task


@needs_data
def test_parallel_real():
    tatoeba = read_shared_parallel(DATA / "parallel", split="train")
    counts = Counter(e.lang for e in tatoeba)
    expected = dict.fromkeys(get_task("translation").languages, 1000) | {"sw": 390 + 9000, "te": 234, "th": 548,
                                                                          "fr": 1000 + 9000}
    assert counts == expected
    assert all(e.prompt is None and e.source and e.target for e in tatoeba)
    ntrex = read_shared_parallel(DATA / "parallel", langs=["swa", "zho-CN"], split="test")
    assert Counter(e.lang for e in ntrex) == {"sw": 1997, "zh": 1997}
    assert ntrex[0].target == "Welsh AMs worried about 'looking like muppets'"
    # en-fr holds U+2028 inside lines and NUL bytes; alignment must survive both
    fr = read_authors_bilingual(DATA / "parallel" / "mindmerger_fork_pairs", ["fr", "sw"], stem="train_9k")
    assert Counter(e.lang for e in fr) == {"fr": 9000, "sw": 9000}
    assert not any("\x00" in e.target for e in fr)


@needs_data
def test_translation_eval_real():
    data = read_translation_eval(DATA / "parallel", langs=["bn", "sw"], limit=3)
    assert list(data) == ["bn", "sw"] and all(len(v) == 3 for v in data.values())
    assert data["sw"][0].gold == "Welsh AMs worried about 'looking like muppets'"
    assert data["sw"][0].prompt is None and data["sw"][0].meta == {"corpus": "ntrex"}
    assert {lang: len(v) for lang, v in read_translation_eval(DATA / "parallel").items()} == dict.fromkeys(
        get_task("translation").languages, 1997)


def test_parallel_tsv_and_jsonl(tmp_path):
    tsv = write(tmp_path / "p.tsv", "Habari\tHello\n\nAsante\tThank you\n")
    assert [(e.source, e.target, e.lang) for e in read_parallel_tsv(tsv, "swh")] == [
        ("Habari", "Hello", "sw"), ("Asante", "Thank you", "sw")]
    js = write(tmp_path / "p.jsonl", jsonl({"x": "Hallo", "en": "Hello"}))
    assert read_parallel_jsonl(js, "de", src_key="x", tgt_key="en")[0] == TrainExample("Hallo", "Hello", None, "de")


def test_parallel_files_of_different_length(tmp_path):
    src, en = write(tmp_path / "x.sw", "a\nb\nc\n"), write(tmp_path / "x.en", "a\nb\n")
    with pytest.raises(ValueError, match=r"x\.sw has 3 lines.*x\.en has 2"):
        read_parallel_files(src, en, "sw")
