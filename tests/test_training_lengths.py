"""A trained model records the input lengths it was trained with, and `load_system` (evaluate, generate) reuses
them unless told otherwise."""

from __future__ import annotations

import json

import pytest
import torch

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


@pytest.mark.skipif(not (DATA / "parallel").is_dir(), reason=f"shared data not found at {DATA}")
def test_a_run_directory_evaluates_as_the_model_its_select_chose(tmp_path):
    """`layalign evaluate --model RUN_DIR` loads what the stage selected (stage_result.json), as init_from does."""
    pair = save_tiny_pair(tmp_path / "tiny")
    out = train(recipe(pair, tmp_path / "run", max_steps=1, select="final", max_source_length=40))
    chosen = json.loads((out / "stage_result.json").read_text(encoding="utf-8"))["model"]
    assert chosen == "final"
    from_run = load_system(str(out), device="cpu").model.trainable_state_dict()
    from_final = load_system(str(out / "final"), device="cpu").model.trainable_state_dict()
    assert from_run.keys() == from_final.keys()
    assert all(torch.equal(from_run[name], from_final[name]) for name in from_run)
