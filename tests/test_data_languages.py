"""Language codes, and each benchmark's language table (now in the registry)."""

from __future__ import annotations

import pytest

from layalign.data import normalize_lang
from layalign.tasks import TASKS


@pytest.mark.parametrize("name, code", [
    ("swh", "sw"), ("swa", "sw"), ("Swahili", "sw"), ("cmn", "zh"), ("zho-CN", "zh"), ("Chinese", "zh"),
    ("deu", "de"), ("jpn", "ja"), ("jap", "ja"), ("arb", "ar"), ("ben", "bn"), ("Flemish", "nl"), ("EN", "en"),
    ("deu_Latn", "de"),
])
def test_normalize_lang(name, code):
    assert normalize_lang(name) == code


def test_unknown_language_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown language 'xx'.*sw \(Swahili\)"):
        normalize_lang("xx")


def test_benchmark_tables_are_consistent():
    LANGS = {name: task.languages for name, task in TASKS.items()}  # noqa: N806 - the old tables' names
    LOW_RESOURCE = {name: task.low_resource for name, task in TASKS.items()}  # noqa: N806
    assert len(LANGS["mgsm"]) == 11 and len(LANGS["msvamp"]) == 10
    assert len(LANGS["xnli"]) == 15 and len(LANGS["xcsqa"]) == 16
    assert LOW_RESOURCE["mgsm"] == ("bn", "th", "sw", "te")
    for bench, low in LOW_RESOURCE.items():
        assert set(low) <= set(LANGS[bench]), bench
