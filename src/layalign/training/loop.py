"""The training loop of one stage: set up, then `train_step` until `max_steps`, evaluating and saving on the way.

One optimiser step consumes one *global batch* of `batch_size x gradient_accumulation_steps x processes`
examples, cut into micro-batches; each process runs its own. The loss of a step is the mean over every target
token of the global batch (token-weighted, as if it were one batch), so 2 processes give the same update as
1 process with twice the accumulation.

Output directory:
    train_config.yaml     the recipe as run (overrides applied)
    fusion_init.json      a model with layer-wise fusion: its gates and layer mix before the first optimiser step
                          (`layalign.inspection`; not rewritten when a run resumes from a checkpoint)
    train_log.jsonl       one line per logged step (loss, lr, ..., elapsed_s: training time over all the
                          stage's runs) and per dev evaluation; a last {"step", "diverged"} line where a step's loss
                          or gradient norm was not finite (NonFiniteLoss: the run stops)
    checkpoints/step-N/   see `layalign.training.checkpoint`
    best/                 the adapters with the lowest dev perplexity
    final/                the adapters after the last step
    stage_result.json     which of the two is the stage's result (`select`): what the next stage starts from,
                          and the stage's step, best dev perplexity and elapsed_s
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from layalign.data import TrainExample, split_dev
from layalign.files import relative_to_root
from layalign.model.fusion_weights import FusionWeights, fusion_weights_of, write_fusion_init
from layalign.model.modeling import LayAlignModel
from layalign.model.processing import LayAlignProcessor
from layalign.training.batching import Batcher, plan_batches, process_share
from layalign.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_model,
    save_adapters,
    save_checkpoint,
    write_stage_result,
)
from layalign.training.config import TrainConfig
from layalign.training.recipe import read_examples


class NonFiniteLoss(ValueError):
    """The loss or gradient norm of a step is NaN or infinite: the step was not applied. A ValueError so that
    `layalign train` reports it in one line (bad data or settings, not a bug), with an exit code of its own, so that
    a caller (a study's learning-rate sweep) can tell a diverged run from a failed one."""

    exit_code = 3


@dataclass
class Run:
    """Everything one stage works with, fixed once set up."""

    config: TrainConfig
    out: Path
    accelerator: Any  # accelerate.Accelerator (imported lazily: slow to import)
    model: torch.nn.Module  # as prepared by accelerate (DDP-wrapped with several processes)
    unwrapped: LayAlignModel
    processor: LayAlignProcessor
    batcher: Batcher
    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_examples: list[TrainExample]
    dev_examples: list[TrainExample]
    global_batch: int
    steps_per_epoch: int
    max_steps: int
    epoch_batches: Callable[[int], list[list[int]]]

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"


@dataclass
class TrainState:
    """What changes as the run goes (and what a checkpoint restores)."""

    step: int = 0
    best: float = math.inf  # the lowest dev perplexity so far
    # wall-clock seconds spent reaching `step`, over all the runs of a resumed stage (a killed run's steps after its
    # last checkpoint are not counted: they are run again); None after resuming from a checkpoint without this record
    elapsed_before: float | None = 0.0
    started: float = field(default_factory=time.monotonic)  # when this run's count began

    @property
    def elapsed(self) -> float | None:
        return None if self.elapsed_before is None else round(self.elapsed_before + time.monotonic() - self.started, 1)


def train(config: TrainConfig, resume: bool = False, model: LayAlignModel | None = None,
          processor: LayAlignProcessor | None = None,
          on_step: Callable[[int], None] | None = None) -> Path:
    """Run one stage; returns the output directory. `model`/`processor` replace the ones the config would load
    (tests pass tiny models); `on_step(step)` is called after every optimiser step."""
    from tqdm.auto import tqdm

    run = setup(config, resume, model, processor)
    state = start(run, resume)
    if run.dev_examples and state.step == 0:
        evaluate(run, state)  # where training starts from (a stage may make things worse: best/ then keeps this)
    bar = tqdm(total=run.max_steps, initial=state.step, disable=not run.main, desc=config.stage, dynamic_ncols=True)
    window_tokens, window_start = 0, time.perf_counter()
    run.model.train()
    try:
        while state.step < run.max_steps:
            loss, grad_norm, tokens = train_step(run, state.step)
            state.step += 1
            window_tokens += tokens
            bar.update(1)
            if state.step % config.log_every == 0 or state.step == run.max_steps:
                elapsed = time.perf_counter() - window_start
                log_step(run, state, loss, grad_norm, window_tokens / elapsed, bar)
                window_tokens, window_start = 0, time.perf_counter()
            if run.dev_examples and ((config.eval_every and state.step % config.eval_every == 0)
                                     or state.step == run.max_steps):
                evaluate(run, state)
            if config.save_every and state.step % config.save_every == 0 and state.step < run.max_steps:
                save(run, state)
            if on_step is not None:
                on_step(state.step)
    except NonFiniteLoss as err:
        # the update was not applied: the adapters are still those of the last good step
        save(run, state)
        bar.close()
        # the training log says why it stopped (a resume trims this line with the steps after it); a message is no
        # metric for the trackers
        _log(run, {"step": state.step + 1, "diverged": str(err)}, trackers=False)
        raise NonFiniteLoss(f"{err}; stopped. The last good state (step {state.step}) is in "
                            f"{run.checkpoints}/step-{state.step}. Lower learning_rate or check the data, then "
                            "--resume.") from None
    except KeyboardInterrupt:
        bar.close()
        # interrupted between or inside a step: the optimiser state is that of the last completed step
        save(run, state)
        if run.main:
            print(f"interrupted: saved {run.checkpoints}/step-{state.step}; continue with --resume")
        raise
    bar.close()
    finish(run, state)
    return run.out


def train_step(run: Run, step: int) -> tuple[float, float | None, int]:
    """One optimiser step on the global batch of `step` (0-based); returns (mean loss per target token, gradient
    norm before clipping or None, target tokens in the global batch). Raises NonFiniteLoss before updating."""
    config, accelerator = run.config, run.accelerator
    world = accelerator.num_processes
    epoch, index = divmod(step, run.steps_per_epoch)
    mine = process_share(run.epoch_batches(epoch)[index], config.batch_size, config.gradient_accumulation_steps,
                         accelerator.process_index)
    tensors = [run.batcher([run.train_examples[i] for i in ids]) for ids in mine]
    counts = [int(t["labels_attention_mask"].sum()) for t in tensors]
    total = int(accelerator.reduce(torch.tensor(sum(counts), device=accelerator.device), "sum"))
    loss_sum = torch.zeros((), device=accelerator.device)
    for k, (batch, count) in enumerate(zip(tensors, counts)):
        batch = {name: t.to(accelerator.device) for name, t in batch.items()}
        sync = k == len(tensors) - 1  # gradients are all-reduced once, after the last micro-batch
        with accelerator.no_sync(run.model) if not sync else contextlib.nullcontext():
            loss = run.model(**batch).loss
            # token-weighted: x count / total tokens of the global batch; x world undoes DDP's mean
            (loss * (count * world / total)).backward()
        loss_sum += loss.detach().float() * count
    mean_loss = float(accelerator.reduce(loss_sum, "sum")) / total
    if not math.isfinite(mean_loss):
        raise NonFiniteLoss(f"step {step + 1}: the loss is {mean_loss}")
    grad_norm = None
    if config.max_grad_norm:
        grad_norm = float(accelerator.clip_grad_norm_(run.parameters, config.max_grad_norm))
        if not math.isfinite(grad_norm):
            raise NonFiniteLoss(f"step {step + 1}: the gradient norm is {grad_norm}")
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return mean_loss, grad_norm, total


def setup(config: TrainConfig, resume: bool, model: LayAlignModel | None, processor: LayAlignProcessor | None
          ) -> Run:
    """Accelerator, data, model, optimiser and schedule of a stage. Refuses to overwrite a finished or started run
    unless resuming."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    out = Path(config.output_dir)
    accelerator = Accelerator(cpu=config.device == "cpu", mixed_precision=config.mixed_precision,
                              log_with=config.report_to, project_dir=str(out))
    if not resume and (latest_checkpoint(out / "checkpoints") or (out / "final").exists()):
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another output_dir")
    set_seed(config.seed)

    # data: read everything before loading models, so that a bad file fails in seconds
    train_examples = read_examples(config.train_data, config.data_dir, config.seed)
    dev_examples = read_examples(config.dev_data, config.data_dir, config.seed)
    if not dev_examples and config.dev_size:
        train_examples, dev_examples = split_dev(train_examples, config.dev_size, seed=config.seed)
    global_batch = config.batch_size * config.gradient_accumulation_steps * accelerator.num_processes
    if len(train_examples) < global_batch:
        raise ValueError(f"{len(train_examples)} training examples, fewer than one global batch of {global_batch}")
    steps_per_epoch = len(train_examples) // global_batch
    max_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    lengths = [len(e.source) + len(e.prompt or "") + len(e.target) for e in train_examples]
    # one epoch's plan at a time: made again only when the epoch changes
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
    # every saved model records its lengths: evaluation and generate reuse them (layalign.systems.load_system)
    model.config.extra["lengths"] = processor.lengths.as_dict()
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()  # the model's: it restores the fusion state when recomputing
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_eps,
                                  weight_decay=config.weight_decay)
    scheduler = make_scheduler(optimizer, config.lr_scheduler, math.ceil(config.warmup_ratio * max_steps), max_steps)
    wrapped = accelerator.prepare_model(model)
    return Run(config=config, out=out, accelerator=accelerator, model=wrapped,
               unwrapped=accelerator.unwrap_model(wrapped), processor=processor, batcher=batcher,
               parameters=parameters, optimizer=optimizer, scheduler=scheduler, train_examples=train_examples,
               dev_examples=dev_examples, global_batch=global_batch, steps_per_epoch=steps_per_epoch,
               max_steps=max_steps, epoch_batches=epoch_batches)


def initial_fusion_weights(config: TrainConfig) -> FusionWeights | None:
    """The gates and layer mix a stage of `config` starts from (what it stores in fusion_init.json), rebuilt
    without training. The same random draws as `setup`: the seed set, then the model built; the readers `setup`
    runs between the two draw from their own random.Random(seed), not from the global generators (a test checks
    the equality). None for a model without gates."""
    from accelerate.utils import set_seed

    set_seed(config.seed)
    return fusion_weights_of(load_model(config))


def make_scheduler(optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, max_steps: int
                   ) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule (TrainConfig.lr_scheduler), each with a linear warm-up over `warmup_steps`."""
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    if name == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup_steps)
    if name == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup_steps, max_steps)
    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, max_steps)


def start(run: Run, resume: bool) -> TrainState:
    """The state to start from (the last checkpoint's when resuming), and the run's opening lines on disk."""
    config, main, world = run.config, run.main, run.accelerator.num_processes
    state = TrainState()
    if resume:
        found = latest_checkpoint(run.checkpoints)
        if found is None:  # nothing to continue: a rerun script may pass --resume every time
            if main:
                print(f"--resume: no checkpoint under {run.checkpoints} yet, starting from the beginning")
        else:
            state.step, state.best, state.elapsed_before = load_checkpoint(
                found, run.unwrapped, run.optimizer, run.scheduler, config, world)
            state.started = time.monotonic()
            if main:
                print(f"resuming from {found} (step {state.step} of {run.max_steps})")
    if main:
        run.out.mkdir(parents=True, exist_ok=True)
        # paths relative to the current directory (the repository root): the record names no disk
        (run.out / "train_config.yaml").write_text(relative_to_root(config.to_yaml()), encoding="utf-8")
        if state.step == 0:  # the stage starts here: its fusion weights before any update
            write_fusion_init(run.unwrapped, run.out)
        _trim_log(run.out / "train_log.jsonl", state.step)
        print(f"{config.stage} stage: {len(run.train_examples)} training examples, {len(run.dev_examples)} dev, "
              f"{run.unwrapped.num_trainable_parameters():,} trainable parameters, global batch {run.global_batch}, "
              f"{run.max_steps} steps, {world} process(es) on {run.accelerator.device}")
    if config.report_to:
        run.accelerator.init_trackers("layalign", config={k: v for k, v in config.to_dict().items()
                                                          if isinstance(v, int | float | str | bool)})
    return state


def evaluate(run: Run, state: TrainState) -> None:
    """Dev perplexity now; a new best is saved to best/. Leaves the model in training mode."""
    from tqdm.auto import tqdm

    ppl = dev_perplexity(run.model, run.batcher, run.dev_examples, run.config.batch_size, run.accelerator)
    if ppl < state.best:
        state.best = ppl
        if run.main:
            save_adapters(run.out / "best", run.unwrapped)
    _log(run, {"step": state.step, "dev_ppl": round(ppl, 4), "best_dev_ppl": round(state.best, 4)})
    if run.main:
        tqdm.write(f"step {state.step}: dev perplexity {ppl:.3f} (best {state.best:.3f})")
    run.model.train()


def save(run: Run, state: TrainState) -> None:
    """checkpoints/step-N, written by the main process while the others wait."""
    if run.main:
        save_checkpoint(run.checkpoints, state.step, run.unwrapped, run.optimizer, run.scheduler, state.best,
                        run.config, run.accelerator.num_processes, elapsed_s=state.elapsed)
    run.accelerator.wait_for_everyone()


def log_step(run: Run, state: TrainState, loss: float, grad_norm: float | None, tokens_per_s: float, bar: Any
             ) -> None:
    """One line of train_log.jsonl (and the progress bar's figures)."""
    lr = run.scheduler.get_last_lr()[0]
    record = {"step": state.step, "epoch": round(state.step / run.steps_per_epoch, 4), "loss": round(loss, 6),
              "lr": lr, "grad_norm": grad_norm, "target_tokens_per_s": round(tokens_per_s, 1),
              "truncated": dict(run.processor.truncated), "elapsed_s": state.elapsed}
    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:.0f}")
    _log(run, record)


def finish(run: Run, state: TrainState) -> None:
    """The last checkpoint, final/, and the closing lines."""
    config = run.config
    save(run, state)
    if run.main:
        save_adapters(run.out / "final", run.unwrapped)
        # without dev data there is no best/: the last step's adapters are the result whatever `select` says
        chosen = "best" if config.select == "best" and (run.out / "best").is_dir() else "final"
        write_stage_result(run.out, config.select, chosen,
                           {"step": state.step, "best_dev_ppl": state.best if math.isfinite(state.best) else None,
                            "elapsed_s": state.elapsed})
        if run.processor.truncated:
            limits = {"source": config.max_source_length, "prompt": config.max_prompt_length,
                      "target": config.max_target_length}
            print("truncated texts (over max_*_length): " + ", ".join(
                f"{n} {what} (> {limits.get(what)} tokens)" for what, n in run.processor.truncated.items()))
        print(f"done: the stage's result ({config.select}) is {run.out / chosen}"
              + (f"; best dev perplexity {state.best:.3f} in {run.out / 'best'}" if run.dev_examples else ""))
    if config.report_to:
        run.accelerator.end_training()
    run.accelerator.wait_for_everyone()


@torch.no_grad()  # no activations kept for a backward pass that never comes
def dev_perplexity(model: torch.nn.Module, batcher: Batcher, examples: list[TrainExample], batch_size: int,
                   accelerator: Any) -> float:
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


def cli_train(args: Any) -> int:
    """`layalign train`: errors (a bad recipe, a non-finite loss) propagate to `layalign.cli.main`."""
    train(TrainConfig.from_yaml(args.config, args.overrides), resume=args.resume)
    return 0


def _log(run: Run, record: dict[str, Any], trackers: bool = True) -> None:
    """One line of train_log.jsonl (the main process), and the record to the trackers unless `trackers=False`."""
    if run.main:
        with (run.out / "train_log.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    if trackers and run.accelerator.trackers:
        run.accelerator.log({k: v for k, v in record.items() if k != "step" and v is not None}, step=record["step"])


def _trim_log(path: Path, step: int) -> None:
    """On resume, drop what a killed run logged after its checkpoint (those steps are run again)."""
    if path.is_file():
        kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
