"""Training: the loss goes down, both stages run from the CLI, kill-and-resume is exact, two processes equal one
with twice the accumulation, NaN stops cleanly, gradient checkpointing changes nothing. Tiny random models saved
as ordinary transformers directories, real data from ../shared/data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from layalign.cli import main as cli
from layalign.model.modeling import LayAlignModel
from layalign.testing import byte_tokenizer, tiny_encoder, tiny_llm, tiny_model
from layalign.train import (
    NonFiniteLoss,
    TrainConfig,
    apply_overrides,
    enable_gradient_checkpointing,
    plan_batches,
    read_examples,
    train,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PARALLEL = {"reader": "shared_parallel", "parallel_dir": "{data_dir}/parallel", "langs": ["sw", "fr"], "limit": 24}
XNLI = {"reader": "xnli_train", "path": "{data_dir}/xnli/train/train-{lang}.jsonl", "langs": ["en", "sw"],
        "limit": 24}


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    """A tiny encoder and LLM saved like any model on disk, with byte-level tokenizers."""
    root = tmp_path_factory.mktemp("tiny")
    for name, model in (("encoder", tiny_encoder("bert")), ("llm", tiny_llm("llama"))):
        model.save_pretrained(root / name)
        byte_tokenizer().save_pretrained(root / name)
    return {"encoder": str(root / "encoder"), "llm": str(root / "llm")}


def recipe(pair: dict[str, str], out: Path, **settings) -> TrainConfig:
    base = dict(stage="translation", output_dir=str(out), model=dict(pair), data_dir=str(DATA),
                train_data=[PARALLEL], learning_rate=3e-3, batch_size=4, max_steps=6, log_every=1,
                device="cpu", max_source_length=48, max_target_length=48)
    return TrainConfig(**{**base, **settings})


def adapters(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "adapter.safetensors")


def log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_loss_goes_down(pair, tmp_path):
    out = train(recipe(pair, tmp_path / "run", max_steps=30, learning_rate=1e-2, dev_size=16, eval_every=10))
    dev = [r["dev_ppl"] for r in log(out) if "dev_ppl" in r]
    assert len(dev) == 4 and dev[-1] < dev[0] - 1.0  # steps 0, 10, 20, 30
    losses = [r["loss"] for r in log(out) if "loss" in r]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    # best/ holds the lowest dev perplexity, final/ the last step (the same here: perplexity kept falling)
    best = min(dev)
    assert json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])["best_dev_ppl"] == pytest.approx(best)
    assert all(torch.equal(adapters(out / "best")[k], v) for k, v in adapters(out / "final").items())


def test_both_stages_from_the_cli(pair, tmp_path):
    stage1 = tmp_path / "translation.yaml"
    stage1.write_text(yaml.safe_dump(recipe(pair, tmp_path / "stage1", dev_size=8).to_dict()))
    assert cli(["train", "--config", str(stage1), "max_steps=4", "model.variant=layalign"]) == 0
    stage2 = tmp_path / "task.yaml"
    task = recipe(pair, tmp_path / "stage2", stage="task", model={}, init_from=str(tmp_path / "stage1"),
                  train_data=[XNLI], max_source_length=96, max_prompt_length=96, max_target_length=8)
    stage2.write_text(yaml.safe_dump(task.to_dict()))
    assert cli(["train", "--config", str(stage2), "max_steps=3"]) == 0
    first, second = adapters(tmp_path / "stage1" / "best"), adapters(tmp_path / "stage2" / "final")
    assert first.keys() == second.keys() and any(not torch.equal(first[k], second[k]) for k in first)
    # the task stage started from stage 1: its first loss is logged, its config names the same pair
    assert json.loads((tmp_path / "stage2" / "final" / "layalign_config.json").read_text())["llm"] == pair["llm"]
    assert len([r for r in log(tmp_path / "stage2") if "loss" in r]) == 3


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


def test_two_processes_equal_one_with_twice_the_accumulation(pair, tmp_path):
    one = train(recipe(pair, tmp_path / "one", max_steps=3, batch_size=2, gradient_accumulation_steps=2))
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump(recipe(pair, tmp_path / "two", max_steps=3, batch_size=2).to_dict()))
    # accelerate's --cpu launcher starts a single process (several need mpirun); --multi_gpu with
    # ACCELERATE_USE_CPU starts torchrun's gloo processes on the CPU
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               "29517", "-m", "layalign", "train", "--config", str(config)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stdout
    a, b = adapters(one / "final"), adapters(tmp_path / "two" / "final")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    assert [r["loss"] for r in log(one)] == pytest.approx([r["loss"] for r in log(tmp_path / "two")], abs=1e-5)


def test_nan_loss_stops_and_keeps_the_last_good_state(pair, tmp_path, monkeypatch):
    model = LayAlignModel.from_pretrained(train(recipe(pair, tmp_path / "base", max_steps=1)) / "final")
    forward = LayAlignModel.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # the third optimiser step
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(LayAlignModel, "forward", poisoned)
    with pytest.raises(NonFiniteLoss, match="step 3"):
        train(recipe(pair, tmp_path / "nan", max_steps=5), model=model)
    kept = tmp_path / "nan" / "checkpoints" / "step-2"
    assert kept.is_dir() and not (tmp_path / "nan" / "final").exists()
    # what was kept are the adapters after step 2, finite, and the model was not touched by the bad step
    saved = adapters(kept)
    assert all(torch.isfinite(v).all() for v in saved.values())
    assert all(torch.equal(saved[k], v) for k, v in model.trainable_state_dict().items())


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = tiny_model("layalign")
    for p in model.parameters():
        if p.requires_grad:
            p.data.normal_(0, 0.3)
    from layalign.model.processing import LayAlignProcessor

    batch = LayAlignProcessor.from_model(model)(["Habari ya asubuhi", "Bonjour"], ["Q: ?", None],
                                                ["Good morning", "Hello"])

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model.train()
        model(**batch).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    calls = {"n": 0}
    model.llm.model.layers[0].mlp.up_proj.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    plain = grads()
    assert calls["n"] == 1
    enable_gradient_checkpointing(model.llm)
    checkpointed = grads()
    assert calls["n"] == 3  # checkpointed: the layer ran again during the backward pass
    assert not model.llm.model.layers[0].self_attn.training  # but dropout & co. stayed in eval mode
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], rtol=1e-5, atol=1e-7)


def test_batches_are_a_function_of_seed_and_epoch():
    lengths = [(i * 37) % 101 for i in range(230)]
    a = plan_batches(lengths, 8, seed=0, epoch=0, group_by_length=True)
    assert a == plan_batches(lengths, 8, seed=0, epoch=0, group_by_length=True)
    assert a != plan_batches(lengths, 8, seed=0, epoch=1, group_by_length=True)
    assert len(a) == 230 // 8 and all(len(b) == 8 for b in a)
    flat = [i for b in a for i in b]
    assert len(set(flat)) == len(flat)
    # grouping by length leaves little padding: the spread inside a batch is far below the data's
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    assert spread < 10


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
    recipes = [c for c in configs if "accelerate" not in c.parts]
    assert len(recipes) >= 6
    for path in recipes:
        config = TrainConfig.from_yaml(path)
        assert config.train_data, path
        assert config.init_from or config.model.get("encoder"), path
