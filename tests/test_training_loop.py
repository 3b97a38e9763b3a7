"""Training: the loss goes down, both stages run from the CLI, two processes equal one with twice the
accumulation, NaN stops cleanly, gradient checkpointing changes nothing, the data order is a function of seed and
epoch. Tiny random models saved as ordinary transformers directories, real data from ../shared/data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from layalign.cli import main as cli
from layalign.model.modeling import LayAlignModel
from layalign.training import NonFiniteLoss, plan_batches, train
from training_helpers import XNLI, adapters, log, recipe, save_tiny_pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    return save_tiny_pair(tmp_path_factory.mktemp("tiny"))


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
