"""Training conventions of the releases: which adapters are a stage's result (`select`), the learning-rate schedule
(`lr_scheduler`), the optimiser settings reaching AdamW; every recipe under configs/ loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from layalign.model.modeling import LayAlignModel
from layalign.training import TrainConfig, load_model, resolve_model_dir, train
from layalign.training.loop import make_scheduler
from training_helpers import adapters, log, recipe, save_tiny_pair

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    return save_tiny_pair(tmp_path_factory.mktemp("tiny"))


def rates(name: str, warmup: int = 0, steps: int = 10) -> list[float]:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, name, warmup, steps)
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return out


def test_schedules():
    assert rates("constant") == [1.0] * 10  # MindMerger, LangBridge: no scheduler at all
    assert rates("constant", warmup=2)[:3] == [0.0, 0.5, 1.0]
    cosine, linear = rates("cosine"), rates("linear")
    assert cosine[0] == linear[0] == 1.0 and cosine[5] == pytest.approx(0.5) and linear[5] == pytest.approx(0.5)
    assert cosine[1] > linear[1] and all(a > b for a, b in zip(linear, linear[1:]))
    with pytest.raises(ValueError, match="lr_scheduler"):
        TrainConfig(lr_scheduler="step")


def test_a_constant_recipe_trains_at_one_rate_with_its_optimiser_settings(pair, tmp_path):
    out = train(recipe(pair, tmp_path / "run", max_steps=3, lr_scheduler="constant", warmup_ratio=0.0,
                       learning_rate=6e-4, weight_decay=0.0, adam_betas=(0.9, 0.95), max_grad_norm=1.0))
    assert [r["lr"] for r in log(out) if "lr" in r] == [6e-4] * 3
    assert all(r["grad_norm"] is not None for r in log(out) if "loss" in r)  # clipping measured the norm
    state = json.loads((out / "checkpoints" / "step-3" / "trainer_state.json").read_text())
    group = state["param_groups"][0]
    assert (group["lr"], group["weight_decay"], group["betas"]) == (6e-4, 0.0, [0.9, 0.95])
    # the default stays the paper's cosine schedule: the rate falls
    cosine = train(recipe(pair, tmp_path / "cosine", max_steps=3, warmup_ratio=0.0))
    lrs = [r["lr"] for r in log(cosine) if "lr" in r]
    assert lrs[0] > lrs[1] > lrs[2]


def run_that_worsens(pair, out: Path, select: str) -> Path:
    """A run whose adapters are spoiled after step 3 of 4: its dev perplexity at step 4 is worse than at step 2, so
    best/ and final/ differ."""
    config = recipe(pair, out, max_steps=4, learning_rate=1e-2, dev_size=8, eval_every=2, select=select)
    model = load_model(config)

    def spoil(step: int) -> None:
        if step == 3:
            with torch.no_grad():
                for parameter in model.adapters().parameters():
                    parameter.mul_(-30.0)

    return train(config, model=model, on_step=spoil)


@pytest.mark.parametrize("select", ["best", "final"])
def test_select_decides_what_the_stage_hands_on(pair, tmp_path, select):
    out = run_that_worsens(pair, tmp_path / select, select)
    best, final = adapters(out / "best"), adapters(out / "final")
    assert any(not torch.equal(best[k], final[k]) for k in best)
    record = json.loads((out / "stage_result.json").read_text())
    assert record["select"] == select and record["model"] == select and record["step"] == 4
    assert resolve_model_dir(out) == out / select
    # the next stage starts from it (init_from = the output directory)
    nxt = load_model(TrainConfig(init_from=str(out)))
    chosen = adapters(out / select)
    assert all(torch.equal(nxt.trainable_state_dict()[k], v) for k, v in chosen.items())


def test_select_best_without_dev_data_hands_on_the_final_adapters(pair, tmp_path):
    out = train(recipe(pair, tmp_path / "nodev", max_steps=2, select="best"))
    assert not (out / "best").exists()
    assert json.loads((out / "stage_result.json").read_text())["model"] == "final"
    assert resolve_model_dir(out) == out / "final"
    with pytest.raises(ValueError, match="select"):
        TrainConfig(select="last")


def test_an_output_dir_without_a_stage_record_resolves_as_before(pair, tmp_path):
    out = run_that_worsens(pair, tmp_path / "old", "final")
    (out / "stage_result.json").unlink()  # a run written before `select` existed
    assert resolve_model_dir(out) == out / "best"
    assert isinstance(LayAlignModel.from_pretrained(resolve_model_dir(out)), LayAlignModel)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("**/*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_recipe_loads(path):
    if path.parent.name in ("accelerate", "studies"):
        pytest.skip("accelerate's own launcher config or a study (tests/test_studies.py), not a recipe")
    config = TrainConfig.from_yaml(path)
    assert config.select in ("best", "final") and config.lr_scheduler in ("cosine", "constant", "linear")
    # every recipe says which schedule it runs, and why, in its header comment
    assert path.read_text(encoding="utf-8").startswith("#")


def paper(name: str) -> TrainConfig:
    return TrainConfig.from_yaml(CONFIGS / "paper" / f"{name}.yaml")


def test_the_published_schedules_are_what_the_recipes_say():
    # LayAlign's recipes: cosine, the encoder's dropout on, the last step handed on; maths task data without English
    for name in ("math", "xnli", "xcsqa"):
        for stage in ("translation", "task"):
            config = paper(f"{name}-{stage}")
            assert (config.lr_scheduler, config.select, config.model["encoder_dropout"]) == ("cosine", "final", True)
            mm = paper(f"mindmerger-{name}-{stage}")
            assert (mm.lr_scheduler, mm.learning_rate, mm.warmup_ratio, mm.select) == ("constant", 2e-5, 0.0, "best")
            assert mm.adam_betas == (0.8, 0.999) and mm.weight_decay == 3e-7 and mm.max_grad_norm == 1.0
            assert mm.batch_size * mm.gradient_accumulation_steps * 8 == 128 and mm.epochs == 3
        assert paper(f"mindmerger-{name}-task").init_from == f"runs/paper/mindmerger-{name}-translation"
    assert paper("math-task").train_data[0]["langs"] == ["bn", "th", "sw", "ja", "zh", "de", "fr", "ru", "es"]
    lb = paper("langbridge-math")
    assert (lb.stage, lb.init_from, lb.model["variant"], lb.model["encoder_dropout"]) == ("task", None, "langbridge",
                                                                                           True)
    assert (lb.learning_rate, lb.lr_scheduler, lb.warmup_ratio, lb.weight_decay, lb.max_grad_norm, lb.epochs,
            lb.select) == (6e-4, "constant", 0.0, 0.0, 1.0, 1, "final")
    assert lb.batch_size * lb.gradient_accumulation_steps * 8 == 128 and lb.max_source_length == 1024


def test_the_reproduction_langbridge_is_one_english_stage_with_the_others_steps():
    lb = TrainConfig.from_yaml(CONFIGS / "reproduction" / "langbridge.yaml")
    assert lb.init_from is None and lb.model["variant"] == "langbridge" and lb.stage == "task"
    assert [spec["langs"] for spec in lb.train_data] == [["en"]]
    for other in ("layalign", "mindmerger"):
        config = TrainConfig.from_yaml(CONFIGS / "reproduction" / f"{other}.yaml")
        assert (config.max_steps, config.batch_size * config.gradient_accumulation_steps) == (
            lb.max_steps, lb.batch_size * lb.gradient_accumulation_steps)
