"""Checkpoints: kill-and-resume ends exactly where an uninterrupted run ends, the training time goes on counting
across a resume, and resuming refuses a run whose data order differs. Tiny random models, real data from
../shared/data."""

from __future__ import annotations

import json

import pytest
import torch

from layalign.training import train
from training_helpers import adapters, log, recipe, save_tiny_pair


def kill_at(killed: int):
    """An on_step callback that stops the run after optimiser step `killed`, as a kill would."""

    def on_step(step: int) -> None:
        if step == killed:
            raise RuntimeError("killed")

    return on_step


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    return save_tiny_pair(tmp_path_factory.mktemp("tiny"))


def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(pair, tmp_path):
    whole = train(recipe(pair, tmp_path / "whole", max_steps=8, gradient_accumulation_steps=2))

    settings = dict(max_steps=8, gradient_accumulation_steps=2, save_every=4)
    with pytest.raises(RuntimeError, match="killed"):
        train(recipe(pair, tmp_path / "killed", **settings), on_step=kill_at(6))
    assert [d.name for d in (tmp_path / "killed" / "checkpoints").iterdir()] == ["step-4"]
    with pytest.raises(ValueError, match="--resume"):
        train(recipe(pair, tmp_path / "killed", **settings))  # never silently overwrite a run
    resumed = train(recipe(pair, tmp_path / "killed", **settings), resume=True)
    a, b = adapters(whole / "final"), adapters(resumed / "final")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    assert [r["step"] for r in log(resumed)] == list(range(1, 9))  # the killed run's steps 5-6 were dropped
    assert [r["loss"] for r in log(resumed)] == pytest.approx([r["loss"] for r in log(whole)], abs=1e-5)
    # written when the stage started, not again when it resumed from step 4
    assert (resumed / "fusion_init.json").read_text() == (whole / "fusion_init.json").read_text()


@pytest.mark.parametrize("recorded", [1000.0, "absent"])
def test_the_training_time_goes_on_from_the_checkpoint(pair, tmp_path, recorded):
    """elapsed_s (train_log, stage_result.json) sums a resumed stage's runs; it is None where a checkpoint written
    before it was recorded leaves the earlier runs' time unknown, rather than a number too small."""

    settings = dict(max_steps=4, save_every=2, log_every=1)
    with pytest.raises(RuntimeError, match="killed"):
        train(recipe(pair, tmp_path / "run", **settings), on_step=kill_at(3))
    state_file = tmp_path / "run" / "checkpoints" / "step-2" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert isinstance(state["elapsed_s"], float) and state["elapsed_s"] >= 0
    assert [r["elapsed_s"] for r in log(tmp_path / "run") if "loss" in r][-1] >= state["elapsed_s"]
    if recorded == "absent":
        del state["elapsed_s"]
    else:
        state["elapsed_s"] = recorded  # as if the first run had taken 1000 s to reach step 2
    state_file.write_text(json.dumps(state))
    out = train(recipe(pair, tmp_path / "run", **settings), resume=True)
    steps = [r for r in log(out) if "loss" in r]
    result = json.loads((out / "stage_result.json").read_text())
    if recorded == "absent":
        assert [r["elapsed_s"] for r in steps[2:]] == [None, None] and result["elapsed_s"] is None
    else:
        times = [r["elapsed_s"] for r in steps[2:]]
        assert 1000 <= times[0] <= times[1] <= result["elapsed_s"] < 1000 + 600


def test_resume_refuses_a_different_data_order(pair, tmp_path):
    train(recipe(pair, tmp_path / "run", max_steps=2))
    with pytest.raises(ValueError, match="seed"):
        train(recipe(pair, tmp_path / "run", max_steps=4, seed=1), resume=True)
