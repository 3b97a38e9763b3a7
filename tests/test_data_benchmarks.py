"""Reading a benchmark through the registry (formerly `layalign.data.read_benchmark`): the default shared paths
and the errors."""

from __future__ import annotations

import pytest

from data_helpers import DATA, REPO, needs_data
from layalign.data.examples import EvalExample
from layalign.tasks import get_task


def read_benchmark(benchmark, path=None, langs=None, limit=None):
    return get_task(benchmark).read(path, langs=langs, limit=limit)


@needs_data
def test_read_benchmark_defaults(monkeypatch):
    monkeypatch.chdir(REPO)  # default paths are relative to the repository root
    assert get_task("mgsm").data_path == "../shared/data/mgsm"
    data = read_benchmark("mgsm", langs=["te", "en"], limit=4)
    assert list(data) == ["te", "en"] and all(len(v) == 4 for v in data.values())
    assert all(isinstance(e, EvalExample) for v in data.values() for e in v)
    assert len(read_benchmark("xnli", langs=["ur"], limit=7)["ur"]) == 7
    assert len(read_benchmark("msvamp", path=DATA / "msvamp_sample", langs=["Thai"])["th"]) == 20
    with pytest.raises(ValueError, match="X-CSQA has no copy.*--data"):
        read_benchmark("xcsqa")
    with pytest.raises(ValueError, match="unknown benchmark"):
        read_benchmark("gsm9k")
    with pytest.raises(ValueError, match="no mgsm file for 'ur'.*found: bn, de, en"):
        read_benchmark("mgsm", langs=["ur"])
    if not (DATA / "msvamp").exists():
        with pytest.raises(FileNotFoundError, match="msvamp_sample"):
            read_benchmark("msvamp")
