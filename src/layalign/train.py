"""Two-stage training of the adapters (method notes, "Training recipe"), on one CPU or many GPUs.

    layalign train --config configs/small/translation.yaml            # stage 1: X -> English pairs
    layalign train --config configs/small/xnli-task.yaml              # stage 2: starts from stage 1's best/
    accelerate launch -m layalign train --config ...                  # the same, data-parallel

One optimiser step consumes one *global batch* of `batch_size x gradient_accumulation_steps x processes`
examples, cut into micro-batches; each process runs its own. The loss of a step is the mean over every target
token of the global batch (token-weighted, as if it were one batch), so 2 processes give the same update as
1 process with twice the accumulation. The data order is a pure function of (seed, step): a resumed run sees
exactly the batches the killed one would have seen.

Output directory:
    train_config.yaml     the recipe as run (overrides applied)
    train_log.jsonl       one line per logged step and per dev evaluation
    checkpoints/step-N/   adapters + optimiser + scheduler + RNG + position (safetensors and JSON, no pickle)
    best/                 the adapters with the lowest dev perplexity (what the next stage starts from)
    final/                the adapters after the last step
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from layalign import data as readers
from layalign.data.examples import TrainExample
from layalign.model.config import CONFIG_NAME, LayAlignConfig
from layalign.model.modeling import LayAlignModel
from layalign.model.processing import LayAlignProcessor

logger = logging.getLogger(__name__)

STAGES = ("translation", "task")
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.safetensors"
RNG_NAME = "rng.safetensors"

# reader name in a recipe -> function of layalign.data.readers; the spec's other keys are its arguments
READERS: dict[str, Callable[..., list[TrainExample]]] = {
    "parallel_files": readers.read_parallel_files,
    "parallel_tsv": readers.read_parallel_tsv,
    "parallel_jsonl": readers.read_parallel_jsonl,
    "authors_bilingual": readers.read_authors_bilingual,
    "shared_parallel": readers.read_shared_parallel,
    "qalign_math": readers.read_qalign_math,
    "metamath": readers.read_metamath_json,
    "gsm8k_english": readers.read_gsm8k_english,
    "xnli_train": readers.read_xnli_train_jsonl,
    "xcsqa_train": readers.read_xcsqa_jsonl,
}


@dataclass
class TrainConfig:
    """One training stage. Paths may use {data_dir}; a reader spec with `langs` whose reader reads one language
    per file also expands {lang} in its paths (one call per language)."""

    stage: str = "translation"
    output_dir: str = "runs/train"
    model: dict[str, Any] = field(default_factory=dict)  # LayAlignConfig fields (ignored with init_from)
    init_from: str | None = None  # a LayAlign directory or a previous stage's output_dir (its best/ or final/)
    data_dir: str = "../shared/data"
    train_data: list[dict[str, Any]] = field(default_factory=list)
    dev_data: list[dict[str, Any]] = field(default_factory=list)
    dev_size: int = 0  # held out from train_data when dev_data is empty (the recipe holds out 3,000 pairs)
    # optimisation (the paper: AdamW 0.8/0.999, eps 1e-8, wd 3e-7, cosine with 5% warm-up)
    learning_rate: float = 4e-5
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
    # bookkeeping
    log_every: int = 10
    eval_every: int = 0  # 0: evaluate on dev only at the end
    save_every: int = 0  # 0: checkpoint only at the end (and when interrupted)
    save_total_limit: int = 2
    report_to: str | None = None  # "tensorboard" or "wandb", through accelerate
    device: str | None = None  # "cpu" forces the CPU; otherwise accelerate's choice

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; choose one of {list(STAGES)}")
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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        return cls(**data)

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


# ------------------------------------------------------------------------------------------------------------ data


def read_examples(specs: list[dict[str, Any]], data_dir: str, seed: int = 0) -> list[TrainExample]:
    """Every example the reader specs name, in order. A spec: {"reader": NAME, ...that reader's arguments}, plus
    optionally `sample: N`: N examples drawn at random (with `seed`) from what each reader call returns. Use it
    rather than the readers' `limit` (the first N) where a file is sorted, as the XNLI training files are (by label)."""
    examples: list[TrainExample] = []
    for spec in specs:
        spec = dict(spec)
        name = spec.pop("reader", None)
        sample = spec.pop("sample", None)
        if name not in READERS:
            raise ValueError(f"unknown reader {name!r} in the recipe; known: {', '.join(READERS)}")
        function = READERS[name]
        accepted = set(inspect.signature(function).parameters)
        spec = {k: v.replace("{data_dir}", data_dir) if isinstance(v, str) else v for k, v in spec.items()}
        if "langs" in spec and "langs" not in accepted and "lang" in accepted:
            calls = [{**{k: v.replace("{lang}", lang) if isinstance(v, str) else v
                         for k, v in spec.items() if k != "langs"}, "lang": lang} for lang in spec["langs"]]
        else:
            calls = [spec]
        for kwargs in calls:
            unknown = sorted(set(kwargs) - accepted)
            if unknown:
                raise ValueError(f"reader {name!r} takes {sorted(accepted)}, not {unknown}")
            read = function(**kwargs)
            if sample is not None:
                if not 0 < int(sample) <= len(read):
                    raise ValueError(f"reader {name!r}: sample={sample}, but the call {kwargs} returned {len(read)} "
                                     "examples")
                read = random.Random(seed).sample(read, int(sample))
            examples += read
    return examples


def plan_batches(lengths: list[int], global_batch: int, seed: int, epoch: int, group_by_length: bool
                 ) -> list[list[int]]:
    """The global batches of one epoch: shuffled, then (optionally) sorted by length within chunks of 50 batches so
    that a batch holds similar lengths, then the batches shuffled. The last incomplete batch is dropped."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        chunk = global_batch * 50
        order = [i for start in range(0, len(order), chunk)
                 for i in sorted(order[start:start + chunk], key=lambda i: -lengths[i])]
    batches = [order[i:i + global_batch] for i in range(0, len(order) - global_batch + 1, global_batch)]
    rng.shuffle(batches)
    return batches


class Batcher:
    """Texts -> tensors for one stage: the translation stage has no LLM prompt; the task stage uses the
    example's prompt when the model takes one (not LangBridge)."""

    def __init__(self, processor: LayAlignProcessor, stage: str, use_prompt: bool):
        self.processor, self.with_prompt = processor, stage == "task" and use_prompt

    def __call__(self, examples: list[TrainExample]) -> dict[str, torch.Tensor]:
        prompts = [e.prompt for e in examples] if self.with_prompt else None
        return self.processor([e.source for e in examples], prompts, [e.target for e in examples])


# ----------------------------------------------------------------------------------------------------- the trainer


class NonFiniteLoss(RuntimeError):
    pass


def train(config: TrainConfig, resume: bool = False, model: LayAlignModel | None = None,
          processor: LayAlignProcessor | None = None,
          on_step: Callable[[int], None] | None = None) -> Path:
    """Run one stage; returns the output directory. `model`/`processor` replace the ones the config would load
    (tests pass tiny models); `on_step(step)` is called after every optimiser step."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    out = Path(config.output_dir)
    accelerator = Accelerator(cpu=config.device == "cpu", mixed_precision=config.mixed_precision,
                              log_with=config.report_to, project_dir=str(out))
    main, world, rank = accelerator.is_main_process, accelerator.num_processes, accelerator.process_index
    checkpoints = out / "checkpoints"
    if not resume and (_latest_checkpoint(checkpoints) or (out / "final").exists()):
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another output_dir")
    set_seed(config.seed)

    # data: read everything before loading models, so that a bad file fails in seconds
    train_examples = read_examples(config.train_data, config.data_dir, config.seed)
    dev_examples = read_examples(config.dev_data, config.data_dir, config.seed)
    if not dev_examples and config.dev_size:
        train_examples, dev_examples = readers.split_dev(train_examples, config.dev_size, seed=config.seed)
    global_batch = config.batch_size * config.gradient_accumulation_steps * world
    if len(train_examples) < global_batch:
        raise ValueError(f"{len(train_examples)} training examples, fewer than one global batch of {global_batch}")
    steps_per_epoch = len(train_examples) // global_batch
    max_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    lengths = [len(e.source) + len(e.prompt or "") + len(e.target) for e in train_examples]
    epoch_batches = functools.lru_cache(maxsize=1)(
        lambda epoch: plan_batches(lengths, global_batch, config.seed, epoch, config.group_by_length))

    if model is None:
        model = load_model(config)
    if processor is None:
        processor = LayAlignProcessor.from_model(model, max_source_length=config.max_source_length,
                                                 max_prompt_length=config.max_prompt_length,
                                                 max_target_length=config.max_target_length)
    batcher = Batcher(processor, config.stage, model.config.use_prompt)
    processor.warn_truncation = False  # counted instead, reported in the log and at the end
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model.llm)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_eps,
                                  weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * max_steps), max_steps)
    wrapped = accelerator.prepare_model(model)
    unwrapped = accelerator.unwrap_model(wrapped)

    step, best = 0, math.inf
    if resume:
        found = _latest_checkpoint(checkpoints)
        if found is None:  # nothing to continue: a rerun script may pass --resume every time
            if main:
                print(f"--resume: no checkpoint under {checkpoints} yet, starting from the beginning")
        else:
            step, best = _load_checkpoint(found, unwrapped, optimizer, scheduler, config, world)
            if main:
                print(f"resuming from {found} (step {step} of {max_steps})")
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        _trim_log(out / "train_log.jsonl", step)
        print(f"{config.stage} stage: {len(train_examples)} training examples, {len(dev_examples)} dev, "
              f"{unwrapped.num_trainable_parameters():,} trainable parameters, global batch {global_batch}, "
              f"{max_steps} steps, {world} process(es) on {accelerator.device}")
    if config.report_to:
        accelerator.init_trackers("layalign", config={k: v for k, v in config.to_dict().items()
                                                      if isinstance(v, int | float | str | bool)})

    def save(step: int) -> None:
        if main:
            _save_checkpoint(checkpoints, step, unwrapped, optimizer, scheduler, best, config, world)
        accelerator.wait_for_everyone()

    def evaluate_dev(step: int) -> None:
        nonlocal best
        ppl = dev_perplexity(wrapped, batcher, dev_examples, config.batch_size, accelerator)
        if ppl < best:
            best = ppl
            if main:
                _replace_dir(out / "best", unwrapped.save_pretrained)
        _log(out, {"step": step, "dev_ppl": round(ppl, 4), "best_dev_ppl": round(best, 4)}, main, accelerator)
        if main:
            tqdm.write(f"step {step}: dev perplexity {ppl:.3f} (best {best:.3f})")
        wrapped.train()

    if dev_examples and step == 0:
        evaluate_dev(0)  # where training starts from (a stage may make things worse: best/ then keeps this)
    bar = tqdm(total=max_steps, initial=step, disable=not main, desc=config.stage, dynamic_ncols=True)
    window_tokens, window_start = 0, time.perf_counter()
    wrapped.train()
    try:
        while step < max_steps:
            epoch, index = divmod(step, steps_per_epoch)
            batch_ids = epoch_batches(epoch)[index]
            micro = [batch_ids[i:i + config.batch_size] for i in range(0, global_batch, config.batch_size)]
            mine = micro[rank * config.gradient_accumulation_steps:(rank + 1) * config.gradient_accumulation_steps]
            tensors = [batcher([train_examples[i] for i in ids]) for ids in mine]
            counts = [int(t["labels_attention_mask"].sum()) for t in tensors]
            total = int(accelerator.reduce(torch.tensor(sum(counts), device=accelerator.device), "sum"))
            loss_sum = torch.zeros((), device=accelerator.device)
            for k, (batch, count) in enumerate(zip(tensors, counts)):
                batch = {name: t.to(accelerator.device) for name, t in batch.items()}
                sync = k == len(tensors) - 1
                with accelerator.no_sync(wrapped) if not sync else contextlib.nullcontext():
                    loss = wrapped(**batch).loss
                    # token-weighted: x count / total tokens of the global batch; x world undoes DDP's mean
                    (loss * (count * world / total)).backward()
                loss_sum += loss.detach().float() * count
            mean_loss = float(accelerator.reduce(loss_sum, "sum")) / total
            if not math.isfinite(mean_loss):
                raise NonFiniteLoss(f"step {step + 1}: the loss is {mean_loss}")
            grad_norm = None
            if config.max_grad_norm:
                grad_norm = float(accelerator.clip_grad_norm_(parameters, config.max_grad_norm))
                if not math.isfinite(grad_norm):
                    raise NonFiniteLoss(f"step {step + 1}: the gradient norm is {grad_norm}")
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_tokens += total
            lr = scheduler.get_last_lr()[0]
            bar.update(1)
            if step % config.log_every == 0 or step == max_steps:
                elapsed = time.perf_counter() - window_start
                record = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": round(mean_loss, 6),
                          "lr": lr, "grad_norm": grad_norm, "target_tokens_per_s": round(window_tokens / elapsed, 1),
                          "truncated": dict(processor.truncated)}
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{window_tokens / elapsed:.0f}")
                _log(out, record, main, accelerator)
                window_tokens, window_start = 0, time.perf_counter()
            if dev_examples and ((config.eval_every and step % config.eval_every == 0) or step == max_steps):
                evaluate_dev(step)
            if config.save_every and step % config.save_every == 0 and step < max_steps:
                save(step)
            if on_step is not None:
                on_step(step)
    except NonFiniteLoss as err:
        # the update was not applied: the adapters are still those of the last good step
        save(step)
        bar.close()
        raise NonFiniteLoss(f"{err}; stopped. The last good state (step {step}) is in {checkpoints}/step-{step}. "
                            "Lower learning_rate or check the data, then --resume.") from None
    except KeyboardInterrupt:
        bar.close()
        # interrupted between or inside a step: the optimiser state is that of the last completed step
        save(step)
        if main:
            print(f"interrupted: saved {checkpoints}/step-{step}; continue with --resume")
        raise
    bar.close()
    save(step)
    if main:
        _replace_dir(out / "final", unwrapped.save_pretrained)
        if processor.truncated:
            limits = {"source": config.max_source_length, "prompt": config.max_prompt_length,
                      "target": config.max_target_length}
            print("truncated texts (over max_*_length): " + ", ".join(
                f"{n} {what} (> {limits.get(what)} tokens)" for what, n in processor.truncated.items()))
        print(f"done: {out / 'final'}" + (f", best dev perplexity {best:.3f} in {out / 'best'}" if dev_examples
                                          else ""))
    if config.report_to:
        accelerator.end_training()
    accelerator.wait_for_everyone()
    return out


@torch.no_grad()
def dev_perplexity(model, batcher: Batcher, examples: list[TrainExample], batch_size: int, accelerator) -> float:
    """exp(mean cross-entropy per target token) over the dev set, shared out between processes."""
    model.eval()
    mine = examples[accelerator.process_index::accelerator.num_processes]
    total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    for start in range(0, len(mine), batch_size):
        batch = batcher(mine[start:start + batch_size])
        output = model(**{name: t.to(accelerator.device) for name, t in batch.items()})
        total += torch.tensor([float(output.loss) * output.num_target_tokens, output.num_target_tokens],
                              dtype=torch.float64, device=accelerator.device)
    total = accelerator.reduce(total, "sum")
    return math.exp(float(total[0] / total[1]))


def enable_gradient_checkpointing(llm) -> None:
    """Recompute the frozen LLM's layer activations in the backward pass instead of storing them (non-reentrant:
    the gradient flows through the layers into the adapters although no LLM weight requires one)."""
    if hasattr(llm, "activation_checkpointing_enable"):  # the name in later 5.x releases
        llm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def load_model(config: TrainConfig) -> LayAlignModel:
    """A fresh model from `config.model`, or the adapters of a previous stage (`init_from`)."""
    if config.init_from:
        directory = resolve_model_dir(config.init_from)
        overrides = {k: v for k, v in config.model.items() if k == "dtype"}
        return LayAlignModel.from_pretrained(directory, **overrides)
    return LayAlignModel(LayAlignConfig.from_dict(dict(config.model)))


def resolve_model_dir(path: str | Path) -> Path:
    """A LayAlign directory, or a training output_dir (its best/, else its final/)."""
    path = Path(path)
    for candidate in (path, path / "best", path / "final"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise FileNotFoundError(f"{path} holds no LayAlign model ({CONFIG_NAME}), nor best/ or final/ with one")


# ------------------------------------------------------------------------------------------ checkpoints and logs


def _latest_checkpoint(checkpoints: Path) -> Path | None:
    complete = [d for d in checkpoints.glob("step-*") if (d / TRAINER_STATE).is_file() and d.name[5:].isdigit()]
    return max(complete, key=lambda d: int(d.name[5:]), default=None)


def _save_checkpoint(checkpoints: Path, step: int, model: LayAlignModel, optimizer, scheduler, best: float,
                     config: TrainConfig, world: int) -> Path:
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
                         "python_random": _jsonable(random.getstate()), "train_config": config.to_dict()}
        (tmp / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=1) + "\n", encoding="utf-8")

    target = _replace_dir(checkpoints / f"step-{step}", build)
    kept = sorted((d for d in checkpoints.glob("step-*") if d.name[5:].isdigit()), key=lambda d: int(d.name[5:]))
    for old in kept[:-max(1, config.save_total_limit)]:
        shutil.rmtree(old, ignore_errors=True)
    return target


# settings that decide which batch comes at which step: a resumed run must share them
_DATA_ORDER_KEYS = ("seed", "batch_size", "gradient_accumulation_steps", "train_data", "dev_data", "dev_size",
                    "group_by_length", "data_dir")


def _load_checkpoint(directory: Path, model: LayAlignModel, optimizer, scheduler, config: TrainConfig, world: int
                     ) -> tuple[int, float]:
    state = json.loads((directory / TRAINER_STATE).read_text(encoding="utf-8"))
    saved = state["train_config"]
    changed = [k for k in _DATA_ORDER_KEYS if json.dumps(saved.get(k)) != json.dumps(config.to_dict()[k])]
    if changed or state["world_size"] * saved["gradient_accumulation_steps"] != (
            world * config.gradient_accumulation_steps):
        raise ValueError(f"{directory} was written by a run with different {changed or ['number of processes']}; "
                         "resuming would not continue the same run")
    model.load_adapter_state_dict(load_file(directory / "adapter.safetensors"), source=str(directory))
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
    return int(state["step"]), math.inf if best is None else float(best)


def _replace_dir(target: Path, build: Callable[[Path], Any]) -> Path:
    """Write a directory next to its final place, then swap it in: a crash never leaves a half-written one."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build(tmp)
    old = target.with_name(target.name + ".old")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def _log(out: Path, record: dict[str, Any], main: bool, accelerator) -> None:
    if main:
        with (out / "train_log.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    if accelerator.trackers:
        accelerator.log({k: v for k, v in record.items() if k != "step" and v is not None}, step=record["step"])


def _trim_log(path: Path, step: int) -> None:
    """On resume, drop what a killed run logged after its checkpoint (those steps are run again)."""
    if path.is_file():
        kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple | list) else value


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def cli_train(args) -> int:
    config = TrainConfig.from_yaml(args.config, args.overrides)
    try:
        train(config, resume=args.resume)
    except NonFiniteLoss as err:
        print(f"layalign train: {err}")
        return 1
    return 0
