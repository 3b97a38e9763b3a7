"""Recipes: overrides, errors, every shipped recipe parses; reader specs expand languages and report bad rows."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from layalign.cli import main as cli
from layalign.training import READERS, TrainConfig, apply_overrides, read_examples
from training_helpers import DATA, XNLI


def test_recipe_readers_expand_languages_and_report_bad_rows(tmp_path):
    examples = read_examples([XNLI], str(DATA))
    assert len(examples) == 48 and {e.lang for e in examples} == {"en", "sw"}
    assert all(e.prompt == e.source and e.target in ("entailment", "neutral", "contradiction") for e in examples)
    bad = tmp_path / "train-xx.jsonl"
    bad.write_text('{"premise": "a", "hypothesis": "b", "label": 0}\n{"premise": "a"}\n')
    with pytest.raises(ValueError, match=r"train-xx.jsonl.*line 2|line 2.*train-xx.jsonl"):
        read_examples([{"reader": "xnli_train", "path": str(bad), "lang": "sw"}], str(DATA))
    # the XNLI training files are sorted by label: `limit` takes the first rows (one label), `sample` a random mix
    assert {e.target for e in examples} == {"entailment"}
    sampled = read_examples([{**XNLI, "sample": 24, "limit": None}], str(DATA), seed=0)
    assert len(sampled) == 48 and len({e.target for e in sampled}) == 3
    assert sampled == read_examples([{**XNLI, "sample": 24, "limit": None}], str(DATA), seed=0)
    with pytest.raises(ValueError, match="sample=30"):
        read_examples([{**XNLI, "sample": 30}], str(DATA))
    with pytest.raises(ValueError, match="unknown reader"):
        read_examples([{"reader": "nope"}], str(DATA))
    with pytest.raises(ValueError, match="takes"):
        read_examples([{"reader": "xnli_train", "path": str(bad), "lang": "sw", "colour": 1}], str(DATA))


def test_recipe_overrides_and_errors(tmp_path):
    data = apply_overrides({"model": {"variant": "layalign"}, "max_steps": 10},
                           ["model.variant=mindmerger", "max_steps=3", "adam_betas=[0.9, 0.99]"])
    assert data == {"model": {"variant": "mindmerger"}, "max_steps": 3, "adam_betas": [0.9, 0.99]}
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["max_steps"])
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"learning_rte": 1})
    with pytest.raises(FileNotFoundError):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")
    assert cli(["train", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_shipped_recipes_parse():
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))
    recipes = [c for c in configs if "accelerate" not in c.parts and "studies" not in c.parts]  # studies: not recipes
    assert len(recipes) >= 6
    for path in recipes:
        config = TrainConfig.from_yaml(path)
        assert config.train_data, path
        # a fused model names its encoder or starts from a stage that did; the LoRA baseline has no encoder
        assert config.init_from or config.model.get("encoder") or config.model.get("variant") == "llm-lora", path


def test_the_reader_table_matches_the_reader_functions():
    for name, reader in READERS.items():
        parameters = tuple(inspect.signature(reader.function).parameters)
        assert set(reader.arguments) == set(parameters), name
        assert reader.one_language == ("lang" in parameters and "langs" not in parameters), name


def test_numbers_without_a_decimal_point_are_numbers():
    """YAML 1.1 reads `5e-3` as a string; a recipe or override means the number (and a word is refused)."""
    config = TrainConfig.from_dict({"learning_rate": "5e-3", "max_steps": "20", "max_grad_norm": "1e0"})
    assert config.learning_rate == 5e-3 and config.max_steps == 20 and config.max_grad_norm == 1.0
    with pytest.raises(ValueError, match="learning_rate must be a number"):
        TrainConfig.from_dict({"learning_rate": "fast"})
