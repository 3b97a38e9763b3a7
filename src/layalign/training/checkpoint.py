"""Checkpoints of a training run, and the model directories a run starts from or writes.

    checkpoints/step-N/   adapters + optimiser + scheduler + RNG + position (safetensors and JSON, no pickle)
    best/, final/         adapters only (`LayAlignModel.save_pretrained`)
    stage_result.json     which of them is the stage's result (TrainConfig.select): what `resolve_model_dir`, and
                          so the next stage's `init_from` and evaluation, take for the output directory

Every directory is written beside its place and renamed in (`layalign.files.replace_directory`): a crash never
leaves a half-written one, and a checkpoint counts only once its trainer state is there.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from layalign.files import replace_directory
from layalign.model.config import ADAPTER_NAME, CONFIG_NAME, LayAlignConfig
from layalign.model.lora import LORA_VARIANT, LLMLoRAModel, LoRAConfig, is_lora_directory
from layalign.model.modeling import LayAlignModel
from layalign.training.config import TrainConfig

TRAINER_STATE = "trainer_state.json"
STAGE_RESULT = "stage_result.json"
OPTIMIZER_NAME = "optimizer.safetensors"
RNG_NAME = "rng.safetensors"


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The checkpoint of the highest step that was written completely (its trainer state is written last)."""
    complete = [d for d in checkpoints.glob("step-*") if (d / TRAINER_STATE).is_file() and d.name[5:].isdigit()]
    return max(complete, key=lambda d: int(d.name[5:]), default=None)


def save_checkpoint(checkpoints: Path, step: int, model: LayAlignModel, optimizer: Optimizer, scheduler: LRScheduler,
                    best: float, config: TrainConfig, world: int, elapsed_s: float | None = None) -> Path:
    """Write checkpoints/step-N (atomically), then drop the oldest beyond `save_total_limit`. `elapsed_s`: the
    training time so far (None: unknown), so that a resumed run goes on counting from it."""

    def build(tmp: Path) -> None:
        model.save_pretrained(tmp)
        state = optimizer.state_dict()
        tensors = {f"{index}.{key}": value.detach().cpu().contiguous() if torch.is_tensor(value)
                   else torch.tensor(value)
                   for index, slot in state["state"].items() for key, value in slot.items()}
        save_file(tensors, tmp / OPTIMIZER_NAME)
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng |= {f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
        save_file(rng, tmp / RNG_NAME)
        trainer_state = {"step": step, "best_dev_ppl": best if math.isfinite(best) else None, "world_size": world,
                         "param_groups": state["param_groups"], "scheduler": scheduler.state_dict(),
                         "python_random": _jsonable(random.getstate()), "train_config": config.to_dict(),
                         "elapsed_s": elapsed_s}
        (tmp / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=1) + "\n", encoding="utf-8")

    target = replace_directory(checkpoints / f"step-{step}", build)
    kept = sorted((d for d in checkpoints.glob("step-*") if d.name[5:].isdigit()), key=lambda d: int(d.name[5:]))
    for old in kept[:-max(1, config.save_total_limit)]:
        shutil.rmtree(old, ignore_errors=True)
    return target


# settings that decide which batch comes at which step: a resumed run must share them
_DATA_ORDER_KEYS = ("seed", "batch_size", "gradient_accumulation_steps", "train_data", "dev_data", "dev_size",
                    "group_by_length", "data_dir")


def load_checkpoint(directory: Path, model: LayAlignModel, optimizer: Optimizer, scheduler: LRScheduler,
                    config: TrainConfig, world: int) -> tuple[int, float, float | None]:
    """Restore adapters, optimiser, scheduler and RNG from a checkpoint; returns (step, best dev perplexity, training
    seconds so far: None from a checkpoint written before they were recorded)."""
    state = json.loads((directory / TRAINER_STATE).read_text(encoding="utf-8"))
    saved = state["train_config"]
    changed = [k for k in _DATA_ORDER_KEYS if json.dumps(saved.get(k)) != json.dumps(config.to_dict()[k])]
    if changed or state["world_size"] * saved["gradient_accumulation_steps"] != (
            world * config.gradient_accumulation_steps):
        raise ValueError(f"{directory} was written by a run with different {changed or ['number of processes']}; "
                         "resuming would not continue the same run")
    # the LoRA baseline keeps peft's file name (LLMLoRAModel.adapter_file)
    adapter = directory / getattr(model, "adapter_file", ADAPTER_NAME)
    model.load_adapter_state_dict(load_file(adapter), source=str(directory))
    tensors = load_file(directory / OPTIMIZER_NAME)
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": state["param_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    rng = load_file(directory / RNG_NAME)
    torch.set_rng_state(rng["torch"])
    random.setstate(_tupled(state["python_random"]))
    best = state["best_dev_ppl"]
    return int(state["step"]), math.inf if best is None else float(best), state.get("elapsed_s")


def save_adapters(directory: Path, model: LayAlignModel) -> Path:
    """best/ or final/: the adapters and config, swapped in whole."""
    return replace_directory(directory, model.save_pretrained)


def load_model(config: TrainConfig) -> LayAlignModel:
    """A fresh model from `config.model`, or the adapters of a previous stage (`init_from`), where `config.model` may
    still set how the frozen parts run (dtype, encoder_dropout), not what the model is."""
    if config.init_from:
        directory = resolve_model_dir(config.init_from)
        overrides = {k: v for k, v in config.model.items() if k in ("dtype", "encoder_dropout")}
        if is_lora_directory(directory):
            return LLMLoRAModel.from_pretrained(directory, **overrides)
        if config.model.get("variant") == LORA_VARIANT:  # would otherwise be ignored, silently training another model
            raise ValueError(f"model.variant={LORA_VARIANT}, but init_from {directory} is not an {LORA_VARIANT} "
                             "model: the baseline starts from the bare LLM (init_from: null)")
        return LayAlignModel.from_pretrained(directory, **overrides)
    if config.model.get("variant") == LORA_VARIANT:
        return LLMLoRAModel(LoRAConfig.from_dict(dict(config.model)))
    return LayAlignModel(LayAlignConfig.from_dict(dict(config.model)))


def write_stage_result(out: Path, select: str, chosen: str, record: dict[str, Any]) -> Path:
    """Record which model directory (`chosen`: "best" or "final") is the stage's result, and why."""
    path = out / STAGE_RESULT
    path.write_text(json.dumps({"select": select, "model": chosen, **record}, indent=1) + "\n", encoding="utf-8")
    return path


def resolve_model_dir(path: str | Path) -> Path:
    """A LayAlign directory, or a training output_dir: the model its stage selected (stage_result.json); for a run
    without that record (unfinished, or older), its best/, else its final/."""
    path = Path(path)
    if (path / CONFIG_NAME).is_file():
        return path
    record = path / STAGE_RESULT
    if record.is_file():
        chosen = path / json.loads(record.read_text(encoding="utf-8"))["model"]
        if not (chosen / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{record} names {chosen}, which holds no LayAlign model ({CONFIG_NAME})")
        return chosen
    for candidate in (path / "best", path / "final"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise FileNotFoundError(f"{path} holds no LayAlign model ({CONFIG_NAME}), nor best/ or final/ with one")


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple | list) else value


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value
