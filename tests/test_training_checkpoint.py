"""Checkpoints: kill-and-resume ends exactly where an uninterrupted run ends, and resuming refuses a run whose
data order differs. Tiny random models, real data from ../shared/data."""

from __future__ import annotations

import pytest
import torch

from layalign.training import train
from training_helpers import adapters, log, recipe, save_tiny_pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    return save_tiny_pair(tmp_path_factory.mktemp("tiny"))


def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(pair, tmp_path):
    whole = train(recipe(pair, tmp_path / "whole", max_steps=8, gradient_accumulation_steps=2))

    def kill_at_step_6(step: int) -> None:
        if step == 6:
            raise RuntimeError("killed")

    settings = dict(max_steps=8, gradient_accumulation_steps=2, save_every=4)
    with pytest.raises(RuntimeError, match="killed"):
        train(recipe(pair, tmp_path / "killed", **settings), on_step=kill_at_step_6)
    assert [d.name for d in (tmp_path / "killed" / "checkpoints").iterdir()] == ["step-4"]
    with pytest.raises(ValueError, match="--resume"):
        train(recipe(pair, tmp_path / "killed", **settings))  # never silently overwrite a run
    resumed = train(recipe(pair, tmp_path / "killed", **settings), resume=True)
    a, b = adapters(whole / "final"), adapters(resumed / "final")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    assert [r["step"] for r in log(resumed)] == list(range(1, 9))  # the killed run's steps 5-6 were dropped
    assert [r["loss"] for r in log(resumed)] == pytest.approx([r["loss"] for r in log(whole)], abs=1e-5)


def test_resume_refuses_a_different_data_order(pair, tmp_path):
    train(recipe(pair, tmp_path / "run", max_steps=2))
    with pytest.raises(ValueError, match="seed"):
        train(recipe(pair, tmp_path / "run", max_steps=4, seed=1), resume=True)
