"""Trained models shipped inside the package, loadable by name wherever a model directory is accepted:

    layalign generate "Swali..." --model layalign-xnli-e5-smollm2 --task xnli
    layalign evaluate --model layalign-xnli-e5-smollm2 --benchmark xnli --scoring choices
    layalign inspect layalign-xnli-e5-smollm2
    load_system("layalign-xnli-e5-smollm2")

Each is a folder beside this file holding the trained adapters (`adapter.safetensors`, a few MB) and
`layalign_config.json`, which names the frozen encoder and LLM by their catalogue names (pulled into the cache on
first use, never shipped), plus:

- `card.json` / `README.md`: where the model came from (the comparison unit, its recipes, seed, steps, commands,
  wall time) and its XNLI dev scores;
- `regression.json`: the choice log-likelihoods and accuracy it gave on a fixed subset of XNLI dev when it was
  shipped (`layalign.evaluation.regression`); tests/test_pretrained.py recomputes them, so a change that alters the
  model's numerics fails the suite.

This module only finds the folders (a path lookup, below the model that loads them); checking a model is an
evaluation. `scripts/ship_model.py` writes a folder from a finished comparison unit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from layalign.model.config import CONFIG_NAME

SHIPPED_DIR = Path(__file__).resolve().parent
CARD = "card.json"
REGRESSION = "regression.json"


def shipped_models() -> dict[str, Path]:
    """Name -> folder of every model shipped with the package."""
    return {p.name: p for p in sorted(SHIPPED_DIR.iterdir()) if (p / CONFIG_NAME).is_file()}


def locate(model: str | Path) -> str:
    """A shipped model's name -> its folder; anything else is returned unchanged (a local path of the same name
    wins, so a user's own folder is never shadowed)."""
    model = str(model)
    if Path(model).exists():
        return model
    found = shipped_models().get(model)
    return str(found) if found else model


def card(name: str) -> dict[str, Any]:
    """A shipped model's card (provenance and dev scores)."""
    folder = shipped_models().get(name)
    if folder is None:
        raise ValueError(f"no shipped model {name!r}; shipped: {', '.join(shipped_models()) or 'none'}")
    return json.loads((folder / CARD).read_text(encoding="utf-8"))


__all__ = ["CARD", "REGRESSION", "SHIPPED_DIR", "card", "locate", "shipped_models"]
