"""benchmarks/: the shared timing helper, and every script's --help (the scripts import `common` and `layalign`)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name != "common.py")


def load_common():
    spec = importlib.util.spec_from_file_location("benchmarks_common", BENCHMARKS / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_in_turn_alternates_and_takes_medians(monkeypatch):
    common = load_common()
    clock = iter(range(1000))
    monkeypatch.setattr(common.time, "perf_counter", lambda: float(next(clock)))
    order, returned = [], {"a": iter([9.0, 1.0, 5.0, 3.0]), "b": iter([None] * 4)}

    def candidate(name, extra_ticks):
        def call():
            order.append(name)
            for _ in range(extra_ticks):  # each extra tick is one more "second" on the fake clock
                next(clock)
            return next(returned[name])
        return call

    timings = common.in_turn({"a": candidate("a", 0), "b": candidate("b", 2)}, repeats=3, warmup=1)
    assert order == ["a", "b"] * 4  # one warm-up round, then three rounds in turn
    assert timings.seconds == {"a": 1.0, "b": 3.0}
    assert timings.values == {"a": 3.0}  # the warm-up's 9.0 is not counted; b returned None: no value


def test_in_turn_setup_is_untimed_and_feeds_the_call(monkeypatch):
    common = load_common()
    clock = iter(range(1000))
    monkeypatch.setattr(common.time, "perf_counter", lambda: float(next(clock)))
    seen = []

    def setup():
        for _ in range(5):  # setup's ticks happen before the timer starts
            next(clock)
        return (len(seen),)

    timings = common.in_turn({"x": seen.append}, repeats=2, warmup=2, setup=setup)
    assert seen == [0, 1, 2, 3]
    assert timings.seconds == {"x": 1.0}
    assert timings.values == {}


def test_questions_come_with_math_prompts():
    sources, prompts = load_common().questions(3)
    assert len(sources) == len(prompts) == 3
    assert all(source in prompt for source, prompt in zip(sources, prompts))


@pytest.fixture(scope="module")
def helps():
    """Every script's --help, started at once (each pays for importing torch; together they overlap)."""
    procs = {script: subprocess.Popen([sys.executable, str(BENCHMARKS / script), "--help"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for script in SCRIPTS}
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help(helps, script):
    stdout, stderr = helps[script].communicate(timeout=120)
    assert helps[script].returncode == 0, stderr[-2000:]
    assert "usage" in stdout
