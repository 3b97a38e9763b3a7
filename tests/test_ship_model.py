"""scripts/ship_model.py's card: where the study's every-language unit scored the shipped unit's model, the card
gives its average, each language group's and each language's accuracy, with its gates and with every gate at zero;
where it scored another seed, or has not run, the card says nothing of it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("ship_model", ROOT / "scripts" / "ship_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_results(folder: Path, accuracy: dict[str, float]) -> None:
    folder.mkdir(parents=True)
    per = {lang: {"accuracy": acc, "n": 2} for lang, acc in accuracy.items()}
    (folder / "results-lenient.json").write_text(json.dumps(
        {"n": 2 * len(per), "per_language": per, "average": {"accuracy": sum(accuracy.values()) / len(per)}}))


def test_the_card_gives_the_every_language_scores_of_the_shipped_seed_only(tmp_path):
    ship = load_script()
    every = tmp_path / "layalign-all-languages"
    write_results(every / "eval" / "choices", {"eng_Latn": 100.0, "deu_Latn": 50.0, "bod_Tibt": 0.0})
    write_results(every / "eval" / "choices-zero-gates", {"eng_Latn": 50.0, "deu_Latn": 0.0, "bod_Tibt": 0.0})
    (every / "unit.json").write_text(json.dumps({"unit": "layalign-all-languages", "best_of": {"unit": "layalign-s1"}}))
    assert ship.every_language(tmp_path, "layalign", "layalign-s0") is None  # another seed's model
    assert ship.every_language(tmp_path / "none", "layalign", "layalign-s1") is None  # not run
    found = ship.every_language(tmp_path, "layalign", "layalign-s1")
    assert (found["languages"], found["rows"], found["average"], found["zero_gates_average"]) == (3, 6, 50.0, 16.6667)
    groups = {g["name"]: g for g in found["groups"]}
    assert groups["every language (3)"]["accuracy"] == 50.0
    # eng and deu are in multilingual-e5's pretraining languages, Tibetan is not
    assert groups["in the encoder's pretraining set"] == {"name": "in the encoder's pretraining set", "languages": 2,
                                                           "accuracy": 75.0, "zero_gates": 25.0}
    assert groups["outside it"]["accuracy"] == 0.0
    card = {"every_language": found}
    text = "\n".join(ship.every_language_markdown(card, "SIB-200"))
    assert "on all 3 languages (6 rows): 50.0 on average, 16.7 with every fusion gate at zero" in text
    assert "| in the encoder's pretraining set | 2 | 75.0 | 25.0 |" in text
    assert ship.every_language_markdown({}, "SIB-200") == []
