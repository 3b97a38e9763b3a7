"""A trained model records the input lengths it was trained with, and `load_system` (evaluate, generate) reuses
them unless told otherwise."""

from __future__ import annotations

import json

import pytest

from layalign.systems import load_system
from layalign.training import train
from training_helpers import DATA, recipe, save_tiny_pair


@pytest.mark.skipif(not (DATA / "parallel").is_dir(), reason=f"shared data not found at {DATA}")
def test_saved_models_record_their_lengths_and_evaluation_reuses_them(tmp_path):
    pair = save_tiny_pair(tmp_path / "tiny")
    out = train(recipe(pair, tmp_path / "run", max_steps=1, max_source_length=40, max_prompt_length=100,
                       max_target_length=30))
    config = json.loads((out / "final" / "layalign_config.json").read_text(encoding="utf-8"))
    assert config["extra"]["lengths"] == {"max_source_length": 40, "max_prompt_length": 100,
                                          "max_target_length": 30}
    system = load_system(str(out / "final"), device="cpu")
    assert system.lengths == {"max_source_length": 40, "max_prompt_length": 100}
    assert load_system(str(out / "final"), device="cpu", max_source_length=64).lengths["max_source_length"] == 64
