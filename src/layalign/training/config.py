"""The recipe of one training stage: `TrainConfig`, read from YAML with `key=value` overrides on top.

Every key of a recipe file is a field of `TrainConfig`; an unknown key is an error, so a typo never passes
silently. Overrides (`max_steps=20`, `model.variant=mindmerger`) are read as YAML values.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from layalign.model.config import known_keys

STAGES = ("translation", "task")
SELECTIONS = ("best", "final")  # which adapters are a stage's result (TrainConfig.select)
LR_SCHEDULERS = ("cosine", "constant", "linear")


@dataclass
class TrainConfig:
    """One training stage. Paths may use {data_dir}; a reader spec with `langs` whose reader reads one language
    per file also expands {lang} in its paths (one call per language)."""

    stage: str = "translation"
    output_dir: str = "runs/train"
    model: dict[str, Any] = field(default_factory=dict)  # LayAlignConfig fields (ignored with init_from)
    init_from: str | None = None  # a LayAlign directory or a previous stage's output_dir (the model it selected)
    data_dir: str = "../shared/data"
    train_data: list[dict[str, Any]] = field(default_factory=list)
    dev_data: list[dict[str, Any]] = field(default_factory=list)
    dev_size: int = 0  # held out from train_data when dev_data is empty (the recipe holds out 3,000 pairs)
    # optimisation (the paper: AdamW 0.8/0.999, eps 1e-8, wd 3e-7, cosine with 5% warm-up; MindMerger and
    # LangBridge: a constant learning rate)
    learning_rate: float = 4e-5
    lr_scheduler: str = "cosine"  # "cosine", "constant" or "linear" (decay to 0), each after `warmup_ratio`
    batch_size: int = 8  # per process and micro-batch
    gradient_accumulation_steps: int = 1
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs
    warmup_ratio: float = 0.05
    weight_decay: float = 3e-7
    adam_betas: tuple[float, float] = (0.8, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"  # "no" or "bf16" (autocast; set model.dtype=bfloat16 to store the frozen parts so)
    gradient_checkpointing: bool = False
    seed: int = 0
    max_source_length: int = 200
    max_prompt_length: int = 512
    max_target_length: int = 512
    group_by_length: bool = True
    # the stage's result, what `init_from` and evaluation of the output_dir use: "best" = the lowest dev perplexity
    # (MindMerger's release), "final" = the last step's adapters (LayAlign's and LangBridge's)
    select: str = "best"
    # bookkeeping
    log_every: int = 10
    eval_every: int = 0  # 0: evaluate on dev only at the end
    save_every: int = 0  # 0: checkpoint only at the end (and when interrupted)
    save_total_limit: int = 2
    report_to: str | None = None  # "tensorboard" or "wandb", through accelerate
    device: str | None = None  # "cpu" forces the CPU; otherwise accelerate's choice

    def __post_init__(self) -> None:
        for f in fields(self):  # YAML reads `5e-3` (no dot) as a string: take it as the number it means
            value = getattr(self, f.name)
            if isinstance(value, str) and str(f.type).split(" |")[0] in ("float", "int"):
                try:
                    setattr(self, f.name, float(value) if str(f.type).startswith("float") else int(value))
                except ValueError:
                    raise ValueError(f"{f.name} must be a number, got {value!r}") from None
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; choose one of {list(STAGES)}")
        for name, value, choices in (("select", self.select, SELECTIONS),
                                     ("lr_scheduler", self.lr_scheduler, LR_SCHEDULERS)):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose one of {list(choices)}")
        if self.mixed_precision in (False, None):  # YAML reads a bare `no` as false
            self.mixed_precision = "no"
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        for name in ("batch_size", "gradient_accumulation_steps", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.adam_betas = tuple(float(b) for b in self.adam_betas)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**known_keys(cls, data, "training settings"))

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training recipe not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping of settings")
        return cls.from_dict(apply_overrides(data, overrides))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["adam_betas"] = list(self.adam_betas)
        return data

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`key=value` or `model.variant=mindmerger`; values are read as YAML (numbers, lists, null...)."""
    import yaml

    data = json.loads(json.dumps(data))  # a deep copy
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not key=value")
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return data
