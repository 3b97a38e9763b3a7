"""The trained models shipped with the package: found by name everywhere a model is accepted, and their numerics
pinned by a regression subset of their benchmark's dev set (every row's choice log-likelihoods as recorded when it
was shipped)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layalign import pretrained
from layalign.cli import main

NAME = "layalign-xnli-e5-smollm2"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEV_DATA = {"xnli": SHARED / "xnli" / "dev", "sib200": SHARED / "sib200"}  # each shipped model's benchmark
SHIPPED = sorted(pretrained.shipped_models())
# float32 on another CPU moves a mean log-likelihood by about 1e-5; a change to the model's maths moves it by far
# more. The accuracy margin allows one flipped near-tie per language on another machine.
LOGPROB_TOLERANCE = 2e-3
ACCURACY_MARGIN = 2.0  # points, per language (50 rows: one row is 2 points)


def test_the_xnli_and_sib200_models_are_shipped():
    assert {NAME, "layalign-sib200-e5-smollm2"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_has_its_card_and_regression_record(name):
    folder = pretrained.shipped_models()[name]
    for file in ("adapter.safetensors", "layalign_config.json", "card.json", "regression.json", "README.md"):
        assert (folder / file).is_file(), file
    card = pretrained.card(name)
    assert card["seed"] is not None and card["train"]["task"]["steps"] >= 150
    assert card["benchmark"] in DEV_DATA and "choices" in card["dev"]
    assert len(card["dev"]["choices"]["lenient"]["per_language"]) >= 15
    regression = json.loads((folder / pretrained.REGRESSION).read_text())
    assert regression["benchmark"] == card["benchmark"] and len(regression["rows"]) == 4 * 50
    config = json.loads((folder / "layalign_config.json").read_text())
    assert (config["encoder"], config["llm"]) == ("multilingual-e5-small", "smollm2-135m-instruct")  # catalogue names
    assert (folder / "adapter.safetensors").stat().st_size < 8_000_000  # adapters only, never the backbones


def test_a_shipped_name_resolves_to_its_folder_and_a_local_path_wins(tmp_path, monkeypatch):
    assert pretrained.locate(NAME) == str(pretrained.shipped_models()[NAME])
    assert pretrained.locate("not-a-model") == "not-a-model"
    monkeypatch.chdir(tmp_path)
    (tmp_path / NAME).mkdir()
    assert pretrained.locate(NAME) == NAME  # the user's own folder of that name
    with pytest.raises(ValueError, match="no shipped model"):
        pretrained.card("not-a-model")


def test_models_list_names_the_shipped_model(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "shipped with the package" in out and NAME in out


def test_inspect_by_name_writes_its_heatmap_outside_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", NAME]) == 0
    assert (tmp_path / f"{NAME}-inspect.png").is_file()
    assert not (pretrained.shipped_models()[NAME] / "inspect.png").exists()
    assert "gate" in capsys.readouterr().out.lower()


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_still_gives_its_recorded_scores(name):
    from layalign.evaluation.regression import regression_rows
    from layalign.systems import load_system

    recorded = json.loads((pretrained.shipped_models()[name] / pretrained.REGRESSION).read_text())
    data = DEV_DATA[recorded["benchmark"]]
    if not data.is_dir():
        pytest.skip(f"needs {data}")
    system = load_system(name, device="cpu", dtype=recorded["dtype"])
    now = regression_rows(system, data, langs=tuple(recorded["langs"]), limit=recorded["rows_per_language"],
                          batch_size=recorded["batch_size"], benchmark=recorded["benchmark"])
    assert [(r["lang"], r["id"]) for r in now["rows"]] == [(r["lang"], r["id"]) for r in recorded["rows"]]
    worst = max(abs(now_lp - then_lp)
                for a, b in zip(now["rows"], recorded["rows"], strict=True)
                for now_lp, then_lp in zip(a["choice_logprobs"].values(), b["choice_logprobs"].values(), strict=True))
    assert worst <= LOGPROB_TOLERANCE, f"choice log-likelihoods moved by up to {worst:.4f}"
    for lang, accuracy in recorded["accuracy"].items():
        assert abs(now["accuracy"][lang] - accuracy) <= ACCURACY_MARGIN, (lang, now["accuracy"][lang], accuracy)
