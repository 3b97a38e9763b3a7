"""X-CSQA readers on the hand-written X-CSR fixture: nested and flat layouts, Japanese as "jap"."""

from __future__ import annotations

from data_helpers import FIXTURES, write
from layalign.data import (
    read_xcsqa_eval,
    read_xcsqa_jsonl,
)
from layalign.data.examples import TrainExample


def test_xcsqa_fixture_eval_and_train():
    data = read_xcsqa_eval(FIXTURES / "xcsqa")
    assert {lang: len(v) for lang, v in data.items()} == {"zh": 3, "en": 3}
    first = data["en"][0]
    assert first.id == "fx-0001" and first.gold == "B"
    assert first.source == first.prompt == (
        "Where would you keep milk so that it stays cold?\n"
        "Options:A. oven\tB. refrigerator\tC. bookshelf\tD. garden\tE. bathtub\nAnswer:")
    train = read_xcsqa_jsonl(FIXTURES / "xcsqa" / "zh" / "dev.jsonl", "zh")
    assert [e.target for e in train] == ["B", "A", "C"] and isinstance(train[0], TrainExample)
    assert train[0].source == train[0].prompt and train[0].source.startswith("你会把牛奶")


def test_xcsqa_flat_layout_and_japanese_folder(tmp_path):
    en = (FIXTURES / "xcsqa" / "en" / "dev.jsonl").read_text(encoding="utf-8")
    write(tmp_path / "flat" / "dev-en.jsonl", en)
    write(tmp_path / "flat" / "dev-jap.jsonl", en)
    data = read_xcsqa_eval(tmp_path / "flat", langs=["ja"], limit=2)
    assert list(data) == ["ja"] and len(data["ja"]) == 2
    write(tmp_path / "nested" / "jap" / "dev.jsonl", en)
    assert list(read_xcsqa_eval(tmp_path / "nested")) == ["ja"]
    assert list(read_xcsqa_eval(tmp_path / "nested" / "jap" / "dev.jsonl")) == ["ja"]
