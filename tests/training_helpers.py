"""Shared by tests/test_training_*.py: a tiny model pair on disk, a small recipe over real data, readers of what a
run wrote."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from layalign.testing import byte_tokenizer, tiny_encoder, tiny_llm
from layalign.training import TrainConfig

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PARALLEL = {"reader": "shared_parallel", "parallel_dir": "{data_dir}/parallel", "langs": ["sw", "fr"], "limit": 24}
XNLI = {"reader": "xnli_train", "path": "{data_dir}/xnli/train/train-{lang}.jsonl", "langs": ["en", "sw"],
        "limit": 24}


def save_tiny_pair(root: Path) -> dict[str, str]:
    """A tiny encoder and LLM saved like any model on disk, with byte-level tokenizers."""
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
