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
  shipped; tests/test_pretrained.py recomputes them, so a change that alters the model's numerics fails the suite.

`scripts/ship_model.py` writes a folder from a finished comparison unit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from layalign.model.config import CONFIG_NAME

SHIPPED_DIR = Path(__file__).resolve().parent
CARD = "card.json"
REGRESSION = "regression.json"
# the fixed regression subset: two languages the task stage trained on and two it never saw, 50 rows each
REGRESSION_LANGS = ("en", "zh", "sw", "ur")
REGRESSION_ROWS = 50


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


def regression_rows(system: Any, data: str | Path, langs: tuple[str, ...] = REGRESSION_LANGS,
                    limit: int = REGRESSION_ROWS, batch_size: int = 8) -> dict[str, Any]:
    """Choice-score the regression subset of XNLI dev (the first `limit` rows of each language): every row's
    choice log-likelihoods and pick, and the accuracy per language and on average. What `regression.json` records
    and what the test compares against it."""
    import tempfile

    from layalign.evaluation import evaluate, load_predictions
    from layalign.tasks import get_task

    examples = get_task("xnli").read(data, langs=list(langs), limit=limit)
    missing = [lang for lang in langs if len(examples.get(lang, [])) < limit]
    if missing:
        raise ValueError(f"{data}: fewer than {limit} XNLI dev rows for {', '.join(missing)}")
    with tempfile.TemporaryDirectory() as tmp:
        results = evaluate(system, "xnli", examples, tmp, batch_size=batch_size, scoring="choices",
                           progress=False)
        rows = [{"lang": r["lang"], "id": r["id"], "output": r["output"], "correct": r["correct"],
                 "choice_logprobs": r["choice_logprobs"]} for r in load_predictions(Path(tmp) / "predictions.jsonl")]
    order = {(ex.lang, ex.id): i for i, ex in enumerate(ex for found in examples.values() for ex in found)}
    rows.sort(key=lambda r: order[r["lang"], r["id"]])  # file order (choice scoring runs longest first)
    accuracy = {lang: s["accuracy"] for lang, s in results["per_language"].items()}
    return {"langs": list(langs), "rows_per_language": limit, "scoring": "choices", "batch_size": batch_size,
            "dtype": results.get("dtype"), "lengths": results.get("lengths"), "accuracy": accuracy,
            "average": results["average"]["accuracy"], "rows": rows}


__all__ = ["CARD", "REGRESSION", "REGRESSION_LANGS", "REGRESSION_ROWS", "SHIPPED_DIR", "card", "locate",
           "regression_rows", "shipped_models"]
