"""A decisive small-scale comparison on XNLI: the bare LLM prompted, a LoRA-tuned LLM, LangBridge, MindMerger and
LayAlign on the offline default pair, several seeds each, resumable unit by unit, and its report. A second study,
maths (`--study math`), runs the same code with other settings: the bare LLM, MindMerger and LayAlign with
qwen2.5-coder-0.5b-instruct on the translated GSM8K questions, judged on MGSM in 11 languages by generation.

    python scripts/comparison.py run                          # every unit not yet finished (hours on 2 CPU cores)
    python scripts/comparison.py run --units layalign-s0 mindmerger-s0 --lanes 2
    python scripts/comparison.py run --dry-run --units layalign-s0 llm-prompted    # tiny sizes, a separate folder
    python scripts/comparison.py status                       # which units are done, and the command for the rest
    python scripts/comparison.py report                       # docs/results/reproduction.md from the finished units
    python scripts/comparison.py run --study math             # the maths study (runs/comparison-math, ...)
    python scripts/comparison.py report --study math          # docs/results/reproduction-math.md
    python scripts/comparison.py run --device cuda            # every train and evaluate command on that device

A unit is one (system, seed); the prompted LLM is one unit without a seed. Its phases:

    train-translation, train-task   `layalign train ... --resume` (MindMerger and LayAlign: both stages; LangBridge
                                    and llm-lora: one task stage); checkpoints in the work folder (runs/, ignored)
    eval-choices, eval-generate     `layalign evaluate` on XNLI dev (resumes a killed run), lenient protocol
                                    (maths: eval-generate only, on MGSM)
    rescore                         the same outputs judged under the paper protocol (evaluation.rescore)
    collect                         the small results into the committed folder, then unit.json, written last

Stage 1 is not shared between MindMerger and LayAlign: the translation stage trains each architecture's own
adapters (LayAlign's layer-wise aligner and gates do not exist in MindMerger), so each trains its own, with the
same recipe, data and steps. Every trained system gets the same number of task-stage optimiser steps (--steps).

A study (`Study`, `STUDIES`) is what differs between the XNLI and the maths comparison: its systems and their recipes,
benchmark, languages, scorings, defaults and folders; the code that runs, resumes, collects and reports units is one.
XNLI is the default study; its names, folders and commands are those it always had.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "configs" / "reproduction"
WORK = ROOT / "runs" / "comparison"
RESULTS = ROOT / "docs" / "results" / "comparison" / "units"
REPORT = ROOT / "docs" / "results" / "reproduction.md"
DRY_WORK = ROOT / "runs" / "comparison-dry"
MARKER = "unit.json"
PHASES_FILE = "phases.json"
SCORINGS = ("choices", "generate")
PROTOCOLS = ("lenient", "paper")
# fields of a prediction row that the committed copy leaves out: the inputs are the dev set's own text, found again
# from the row id; everything scored stays
BULKY_FIELDS = ("prompt", "source")

# the defaults, chosen by the profiling in docs/results/comparison/how-a-unit-is-run.md and profile.md
DEFAULTS = {
    "steps": 300,
    "seeds_fusion": 3,  # layalign, mindmerger
    "seeds_other": 2,  # llm-lora, langbridge
    "limit": 200,  # XNLI dev rows per language
    "choice_batch": 8,  # smaller batches pad less: faster than 16 and 32 on the CPU
    "generate_batch": 16,
    "max_new_tokens": 5,  # a label word
    "max_source_length": 160,  # as the task recipes train, for every system alike
    "max_prompt_length": 160,
    "llm": "smollm2-135m-instruct",
    # bf16 autocast over float32 weights: the fastest training step measured; the saved models stay float32
    "train_settings": ["mixed_precision=bf16"],
    # every system (the prompted LLM too) is evaluated with its frozen encoder and LLM in bfloat16 (the trained
    # adapters stay float32): choice scoring 1.6x faster than float32, the same label on all 60 profiled rows
    "eval_dtype": "bfloat16",
    "finish_lanes": 2,  # the lanes of the command that status and the report print for the missing units
}
DRY = {"steps": 2, "stage1_steps": 2, "dev_size": 8, "limit": 2, "langs": ["en", "sw"]}

# the maths study (issue 18): where it differs from XNLI; its cost is measured in docs/results/comparison-math/cost.md
MATH_DEFAULTS = DEFAULTS | {
    "steps": 300,  # task-stage steps of MindMerger and LayAlign, as on XNLI
    "seeds_fusion": 1,
    "seeds_other": 1,  # no such system in this study
    "limit": 25,  # MGSM questions per language, the first 25 of each (the same questions in every language)
    "generate_batch": 8,
    # room for a chain of thought: the GSM8K answers the task stage trains on are 84 Qwen2.5 tokens at the median,
    # 228 at the 99th percentile, 344 at most (2,000 answers); the paper allows 512
    "max_new_tokens": 320,
    # the first 25 MGSM questions: at most 156 encoder tokens (te); the MetaMath prompt around them at most 191 LLM
    # tokens except in bn (480) and te (668; median 392), so 512 as the paper's evaluation, keeping the end
    "max_source_length": 160,
    "max_prompt_length": 512,
    "llm": "qwen2.5-coder-0.5b-instruct",
    "finish_lanes": 1,  # a maths process peaked at 10.5 GB on this 23 GB machine (cost.md): one lane to be safe
}
MATH_DRY = DRY | {"max_new_tokens": 8}


@dataclass(frozen=True)
class Stage:
    name: str  # "translation" or "task"
    recipe: str  # file in the recipes folder
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class System:
    name: str
    label: str
    stages: tuple[Stage, ...]
    fusion: bool = False  # seeded by --seeds-fusion (else --seeds-other)
    variant: str | None = None  # what a one-stage recipe's model.variant must say

    @property
    def seeded(self) -> bool:
        return bool(self.stages)


SYSTEMS = {s.name: s for s in (
    System("llm-prompted", "LLM only (prompted)", ()),
    System("llm-lora", "LLM + LoRA", (Stage("task", "llm-lora.yaml"),), variant="llm-lora"),
    System("langbridge", "LangBridge", (Stage("task", "langbridge.yaml"),), variant="langbridge"),
    System("mindmerger", "MindMerger", (Stage("translation", "translation.yaml", ("model.variant=mindmerger",)),
                                        Stage("task", "mindmerger.yaml")), fusion=True),
    System("layalign", "LayAlign", (Stage("translation", "translation.yaml", ("model.variant=layalign",)),
                                    Stage("task", "layalign.yaml")), fusion=True),
)}

MATH_SYSTEMS = {s.name: s for s in (
    System("llm-prompted", "LLM only (prompted)", ()),
    System("mindmerger", "MindMerger", (Stage("translation", "math-translation.yaml", ("model.variant=mindmerger",)),
                                        Stage("task", "math-mindmerger.yaml")), fusion=True),
    System("layalign", "LayAlign", (Stage("translation", "math-translation.yaml", ("model.variant=layalign",)),
                                    Stage("task", "math-layalign.yaml")), fusion=True),
)}


@dataclass(frozen=True)
class Study:
    """What one comparison compares and where it keeps it; everything else is the same code."""

    name: str  # the --study value
    benchmark: str  # a layalign.tasks name
    eval_data: str  # the benchmark's data, relative to --data
    systems: dict[str, System]  # the report's order (the prompted LLM first)
    order: tuple[str, ...]  # the seeded systems in the order a seed runs them
    scorings: tuple[str, ...]
    defaults: dict
    dry: dict
    work: Path
    results: Path
    report: Path
    dry_work: Path

    @property
    def option(self) -> str:
        """What a command line adds to select this study ("" for the default one)."""
        return "" if self.name == "xnli" else f" --study {self.name}"


STUDIES = {s.name: s for s in (
    Study("xnli", "xnli", "xnli/dev", SYSTEMS, ("layalign", "mindmerger", "llm-lora", "langbridge"), SCORINGS,
          DEFAULTS, DRY, WORK, RESULTS, REPORT, DRY_WORK),
    Study("math", "mgsm", "mgsm", MATH_SYSTEMS, ("layalign", "mindmerger"), ("generate",), MATH_DEFAULTS, MATH_DRY,
          ROOT / "runs" / "comparison-math", ROOT / "docs" / "results" / "comparison-math" / "units",
          ROOT / "docs" / "results" / "reproduction-math.md", ROOT / "runs" / "comparison-math-dry"),
)}
XNLI_STUDY = STUDIES["xnli"]


@dataclass(frozen=True)
class Unit:
    system: System
    seed: int | None

    @property
    def name(self) -> str:
        return self.system.name if self.seed is None else f"{self.system.name}-s{self.seed}"

    @property
    def label(self) -> str:
        return self.system.label if self.seed is None else f"{self.system.label} (seed {self.seed})"


@dataclass
class Settings:
    """What a run of units uses; recorded in every unit.json."""

    steps: int = DEFAULTS["steps"]
    stage1_steps: int | None = None  # None: the translation recipe's own
    dev_size: int | None = None  # None: each recipe's own
    limit: int = DEFAULTS["limit"]
    langs: list[str] | None = None  # None: all 15
    choice_batch: int = DEFAULTS["choice_batch"]
    generate_batch: int = DEFAULTS["generate_batch"]
    max_new_tokens: int = DEFAULTS["max_new_tokens"]
    max_source_length: int = DEFAULTS["max_source_length"]
    max_prompt_length: int = DEFAULTS["max_prompt_length"]
    llm: str = DEFAULTS["llm"]
    data: str = str(ROOT.parent / "shared" / "data")
    recipes: str = str(RECIPES)
    train_settings: list[str] = field(default_factory=lambda: list(DEFAULTS["train_settings"]))
    eval_dtype: str = DEFAULTS["eval_dtype"]
    dry_run: bool = False
    study: str = "xnli"
    device: str | None = None  # None: the recipes' own (train) and the CLI's default (evaluate)

    @property
    def the_study(self) -> Study:
        return STUDIES[self.study]

    def languages(self) -> list[str]:
        from layalign.tasks import get_task

        return list(self.langs or get_task(self.the_study.benchmark).languages)

    def record(self) -> dict:
        """What unit.json records: every field, less the study and device where they are the defaults (so that an
        XNLI unit's record reads as it did before studies existed)."""
        out = vars(self).copy()
        if out["study"] == "xnli":
            del out["study"]
        if out["device"] is None:
            del out["device"]
        return out


def plan(seeds_fusion: int | None = None, seeds_other: int | None = None, study: Study = XNLI_STUDY) -> list[Unit]:
    """Every unit of `study`, seed-major (one seed of every system before the next seed), so that a partial run
    already compares every system; the prompted LLM last (it trains nothing). Seeds: the study's defaults."""
    systems = study.systems
    seeds_fusion = study.defaults["seeds_fusion"] if seeds_fusion is None else seeds_fusion
    seeds_other = study.defaults["seeds_other"] if seeds_other is None else seeds_other
    units = []
    for seed in range(max(seeds_fusion, seeds_other)):
        for name in study.order:
            system = systems[name]
            if seed < (seeds_fusion if system.fusion else seeds_other):
                units.append(Unit(system, seed))
    return units + [Unit(systems["llm-prompted"], None)]


def parse_unit(name: str, study: Study = XNLI_STUDY) -> Unit:
    systems = study.systems
    system, sep, seed = name.rpartition("-s")
    if sep and seed.isdigit() and system in systems and systems[system].seeded:
        return Unit(systems[system], int(seed))
    if name in systems and not systems[name].seeded:
        return Unit(systems[name], None)
    known = ", ".join(f"{s}-sN" if systems[s].seeded else s for s in systems)
    raise ValueError(f"unknown unit {name!r}{'' if study is XNLI_STUDY else f' in the {study.name} study'}; "
                     f"units are {known}")


# --- running a unit ----------------------------------------------------------------------------------------------


class Runner:
    """Runs `layalign` commands: in a subprocess with its own thread count (the default), or in this process (tests:
    no interpreter start per command). Each command's output goes to a log file."""

    def __init__(self, threads: int | None = None, in_process: bool = False, lanes: int = 1):
        self.threads = threads
        self.in_process = in_process
        self.lanes = lanes

    def __call__(self, argv: list[str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        if self.in_process:
            from layalign.cli import main

            code = main(argv)
        else:
            env = os.environ | {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
            if self.threads:
                env |= {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
            with log.open("a", encoding="utf-8") as f:
                f.write(f"\n$ layalign {shlex.join(argv)}\n")
                f.flush()
                code = subprocess.run([sys.executable, "-m", "layalign", *argv], stdout=f, stderr=subprocess.STDOUT,
                                      env=env, cwd=ROOT).returncode
        if code != 0:
            raise RuntimeError(f"`layalign {shlex.join(argv)}` failed (exit {code}); see {log}")


def stage_overrides(unit: Unit, stage: Stage, settings: Settings, work: Path) -> list[str]:
    out = [f"seed={unit.seed}", f"data_dir={settings.data}", f"output_dir={work / stage.name}", *stage.overrides]
    if stage.name == "task":
        out.append(f"max_steps={settings.steps}")  # the same for every trained system
        previous = [s for s in unit.system.stages if s.name != "task"]
        out.append(f"init_from={work / previous[-1].name}" if previous else "init_from=null")
    elif settings.stage1_steps:
        out.append(f"max_steps={settings.stage1_steps}")
    if settings.dev_size is not None:
        out.append(f"dev_size={settings.dev_size}")
    if settings.dry_run:
        out += ["eval_every=0", "save_every=0"]
    if settings.device:
        out.append(f"device={settings.device}")
    return out + list(settings.train_settings)


def check_recipe(system: System, stage: Stage, recipes: Path) -> Path:
    """The recipe file; for a one-stage system it must be a one-stage recipe of that system (no init_from, its own
    model.variant), so that an older two-stage recipe is never run as if it were the new one."""
    import yaml

    path = recipes / stage.recipe
    if not path.is_file():
        raise FileNotFoundError(f"{system.name}: recipe {path} does not exist (yet)")
    if system.variant:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        variant = (data.get("model") or {}).get("variant")
        if data.get("init_from") or variant != system.variant:
            raise ValueError(f"{system.name}: {path} is not a one-stage {system.variant} recipe (init_from "
                             f"{data.get('init_from')!r}, model.variant {variant!r})")
    return path


def model_dir(unit: Unit, work: Path, settings: Settings) -> str:
    """What evaluation loads: the prompted LLM, or the model the last stage selected (stage_result.json)."""
    if not unit.system.seeded:
        return f"llm:{settings.llm}"
    from layalign.training import resolve_model_dir

    return str(resolve_model_dir(work / unit.system.stages[-1].name))


def eval_argv(unit: Unit, scoring: str, model: str, settings: Settings, out: Path) -> list[str]:
    batch = settings.choice_batch if scoring == "choices" else settings.generate_batch
    study = settings.the_study
    argv = ["evaluate", "--model", model, "--benchmark", study.benchmark, "--data",
            f"{settings.data}/{study.eval_data}",
            "--langs", *settings.languages(), "--limit", str(settings.limit), "--batch-size", str(batch),
            "--scoring", scoring, "--protocol", "lenient", "--name", unit.label, "--out", str(out),
            "--max-source-length", str(settings.max_source_length),
            "--max-prompt-length", str(settings.max_prompt_length), "--dtype", settings.eval_dtype]
    argv += ["--max-new-tokens", str(settings.max_new_tokens)] if scoring == "generate" else []
    return argv + (["--device", settings.device] if settings.device else [])


def expected_rows(settings: Settings) -> int:
    from layalign.tasks import get_task

    study = settings.the_study
    examples = get_task(study.benchmark).read(f"{settings.data}/{study.eval_data}", langs=settings.languages(),
                                              limit=settings.limit)
    return sum(len(v) for v in examples.values())


def eval_done(out: Path, rows: int) -> bool:
    from layalign.evaluation import load_predictions

    return (out / "results.json").is_file() and len(load_predictions(out / "predictions.jsonl")) >= rows


def run_unit(unit: Unit, settings: Settings, work_root: Path, results_root: Path, runner: Runner) -> Path:
    """Run (or resume) every phase of a unit; returns its committed folder. A phase already done is skipped."""
    from layalign.evaluation import rescore

    work, final = work_root / unit.name, results_root / unit.name
    if (final / MARKER).is_file():
        return final
    work.mkdir(parents=True, exist_ok=True)
    phases = _read_json(work / PHASES_FILE, {})
    commands: list[dict] = []

    def phase(name: str, argv: list[str] | None, done: bool, action=None, stage_dir: Path | None = None,
              predictions: Path | None = None) -> None:
        command = f"layalign {shlex.join(argv)}" if argv else None
        if command:
            commands.append({"phase": name, "command": command})
        if done and name in phases:
            return
        # a training stage that an earlier run left with checkpoints, or an evaluation with saved predictions: this
        # run's seconds are only its last part
        resumed = not done and (stage_dir is not None and any((stage_dir / "checkpoints").glob("step-*"))
                                or predictions is not None and predictions.is_file() and predictions.stat().st_size > 0)
        start = time.time()
        if not done:
            runner(argv, work / "logs" / f"{name}.log") if argv else action()
        phases[name] = {"seconds": round(time.time() - start, 1) if not done else None,
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if resumed:  # a training stage's time over all its runs, where its checkpoints recorded it (else None)
            result = _read_json(stage_dir / "stage_result.json", {}) if stage_dir is not None else {}
            phases[name] |= {"resumed": True, "stage_elapsed_s": result.get("elapsed_s")}
        (work / PHASES_FILE).write_text(json.dumps(phases, indent=1) + "\n", encoding="utf-8")

    for stage in unit.system.stages:
        recipe = check_recipe(unit.system, stage, Path(settings.recipes))
        argv = ["train", "--config", str(recipe), "--resume", *stage_overrides(unit, stage, settings, work)]
        phase(f"train-{stage.name}", argv, (work / stage.name / "final").is_dir(), stage_dir=work / stage.name)
    model = model_dir(unit, work, settings)
    rows = expected_rows(settings)
    scorings = settings.the_study.scorings
    for scoring in scorings:
        out = work / "eval" / f"{scoring}-lenient"
        phase(f"eval-{scoring}", eval_argv(unit, scoring, model, settings, out), eval_done(out, rows),
              predictions=out / "predictions.jsonl")

    def rescore_all() -> None:
        for scoring in scorings:
            rescore(work / "eval" / f"{scoring}-lenient", work / "eval" / f"{scoring}-paper", "paper")

    phase("rescore", None, False, rescore_all)
    commands.append({"phase": "rescore", "command": "layalign.evaluation.rescore(<eval>/<scoring>-lenient, "
                                                     f"<eval>/<scoring>-paper, 'paper') for {' and '.join(scorings)}"})
    collect(unit, settings, work, final, phases, commands, model, runner)
    return final


def collect(unit: Unit, settings: Settings, work: Path, final: Path, phases: dict, commands: list[dict],
            model: str, runner: Runner) -> None:
    """The small results into the committed folder, unit.json last (the unit counts as done only then)."""
    start = time.time()
    if final.exists():
        shutil.rmtree(final)  # a half-collected folder from a killed run (it has no marker)
    for stage in unit.system.stages:
        dest = final / "train" / stage.name
        dest.mkdir(parents=True)
        for name in ("train_log.jsonl", "train_config.yaml", "stage_result.json"):
            if (work / stage.name / name).is_file():
                shutil.copy2(work / stage.name / name, dest / name)
    for scoring in settings.the_study.scorings:
        dest = final / "eval" / scoring
        dest.mkdir(parents=True)
        src = work / "eval" / f"{scoring}-lenient"
        rows = [{k: v for k, v in row.items() if k not in BULKY_FIELDS}
                for row in _jsonl(src / "predictions.jsonl")]
        (dest / "predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                encoding="utf-8")
        shutil.copy2(src / "run.json", dest / "run.json")
        for protocol in PROTOCOLS:
            shutil.copy2(work / "eval" / f"{scoring}-{protocol}" / "results.json", dest / f"results-{protocol}.json")
    phases = phases | {"collect": {"seconds": round(time.time() - start, 1)}}
    record = {"unit": unit.name, "system": unit.system.name, "label": unit.label, "seed": unit.seed,
              "status": "done", "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "phases": phases,
              "commands": commands, "model_dir": model, "settings": settings.record(),
              "machine": machine() | {"lanes": runner.lanes, "threads_per_command": runner.threads}}
    tmp = final / (MARKER + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp.rename(final / MARKER)


def machine() -> dict:
    import torch
    import transformers

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return {"host": platform.node(), "platform": platform.platform(), "processor": platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "git_commit": commit.stdout.strip() or None,
            "omp_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads()}


def run_units(units: list[Unit], settings: Settings, work: Path, results: Path, lanes: int = 1,
              threads: int | None = None, in_process: bool = False) -> list[tuple[Unit, str]]:
    """Run the units, `lanes` at a time (each lane one unit after another); returns the failures (unit, message).
    A failed unit does not stop the others."""
    if lanes > 1 and in_process:
        raise ValueError("lanes run separate processes; --in-process takes one lane")
    threads = threads or (max(1, (os.cpu_count() or 1) // lanes) if lanes > 1 else None)
    runner = Runner(threads=threads, in_process=in_process, lanes=lanes)
    failures: list[tuple[Unit, str]] = []

    def one(unit: Unit) -> None:
        started = time.time()
        print(f"[{time.strftime('%H:%M:%S')}] {unit.name}: start", flush=True)
        try:
            run_unit(unit, settings, work, results, runner)
            print(f"[{time.strftime('%H:%M:%S')}] {unit.name}: done in {(time.time() - started) / 60:.1f} min",
                  flush=True)
        except (RuntimeError, ValueError, FileNotFoundError, OSError) as err:
            failures.append((unit, str(err)))
            print(f"[{time.strftime('%H:%M:%S')}] {unit.name}: FAILED: {err}", flush=True)

    with ThreadPoolExecutor(max_workers=lanes) as pool:
        list(pool.map(one, units))
    return failures


def status(units: list[Unit], results: Path) -> tuple[list[Unit], list[Unit]]:
    """(done, missing) units: done = its unit.json exists."""
    done = [u for u in units if (results / u.name / MARKER).is_file()]
    return done, [u for u in units if u not in done]


def relative_command(command: str) -> str:
    """A recorded command with this checkout's absolute paths written as the repository's relative ones (run from
    the repository root with ../shared beside it)."""
    return command.replace(str(ROOT.parent / "shared"), "../shared").replace(str(ROOT) + "/", "")


def finish_command(missing: list[Unit], lanes: int | None = None, study: Study = XNLI_STUDY) -> str:
    lanes = study.defaults["finish_lanes"] if lanes is None else lanes
    units = " ".join(u.name for u in missing)
    return f"python scripts/comparison.py run{study.option} --lanes {lanes} --units {units}"


# --- command line -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/comparison.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) units")
    st = sub.add_parser("status", help="which units are done; the command that finishes the rest")
    rep = sub.add_parser("report", help="write the report from the finished units")
    xnli = DEFAULTS
    for p in (run, st, rep):
        p.add_argument("--study", choices=list(STUDIES), default="xnli",
                       help="xnli (the default) or math (MGSM; its own systems, recipes, defaults and folders)")
        p.add_argument("--units", nargs="*", default=None, help="e.g. layalign-s0 llm-prompted (default: all)")
        p.add_argument("--seeds-fusion", type=int, default=None,
                       help=f"seeds of layalign and mindmerger (XNLI {xnli['seeds_fusion']}, maths "
                            f"{MATH_DEFAULTS['seeds_fusion']})")
        p.add_argument("--seeds-other", type=int, default=None,
                       help=f"seeds of llm-lora and langbridge (XNLI {xnli['seeds_other']})")
        p.add_argument("--work", type=Path, default=None,
                       help=f"checkpoints and logs (default {WORK}; maths {STUDIES['math'].work})")
        p.add_argument("--results", type=Path, default=None,
                       help=f"the committed unit folders (default {RESULTS}; maths {STUDIES['math'].results})")
        p.add_argument("--dry-run", action="store_true",
                       help="tiny sizes (2 steps, dev 8, 2 rows x 2 languages) into runs/comparison-dry "
                            "(maths: runs/comparison-math-dry)")
    run.add_argument("--lanes", type=int, default=1, help="units side by side, with cores/lanes threads each")
    run.add_argument("--threads", type=int, default=None, help="threads per unit (default: cores / lanes)")
    run.add_argument("--steps", type=int, default=None,
                     help=f"task-stage steps of every system (XNLI {xnli['steps']}, maths {MATH_DEFAULTS['steps']})")
    run.add_argument("--stage1-steps", type=int, default=None, help="translation steps (default: the recipe's)")
    run.add_argument("--dev-size", type=int, default=None, help="dev examples held out (default: the recipes')")
    run.add_argument("--limit", type=int, default=None,
                     help=f"rows per language: XNLI dev {xnli['limit']}, MGSM {MATH_DEFAULTS['limit']}")
    run.add_argument("--langs", nargs="*", default=None, help="languages (default: all of the benchmark's)")
    run.add_argument("--choice-batch", type=int, default=None, help=f"default {xnli['choice_batch']}")
    run.add_argument("--generate-batch", type=int, default=None,
                     help=f"default: XNLI {xnli['generate_batch']}, maths {MATH_DEFAULTS['generate_batch']}")
    run.add_argument("--max-new-tokens", type=int, default=None,
                     help=f"default: XNLI {xnli['max_new_tokens']}, maths {MATH_DEFAULTS['max_new_tokens']}")
    run.add_argument("--llm", default=None,
                     help=f"the prompted LLM (llm-prompted; XNLI {xnli['llm']}, maths {MATH_DEFAULTS['llm']})")
    run.add_argument("--data", default=Settings.data, help="folder with xnli/ (or mgsm/, math_train/) and parallel/")
    run.add_argument("--recipes", default=str(RECIPES), help="folder of the recipes")
    run.add_argument("--train-settings", nargs="*", default=None,
                     help=f"key=value added to every `layalign train` (default: {xnli['train_settings']})")
    run.add_argument("--eval-dtype", default=None, choices=("float32", "bfloat16"),
                     help="dtype of the frozen encoder and LLM in evaluation, the same for every system (default "
                          f"{xnli['eval_dtype']})")
    run.add_argument("--device", default=None,
                     help="e.g. cuda: device=... to every `layalign train`, --device to every `layalign evaluate` "
                          "(default: the recipes' device, and evaluate's own default)")
    run.add_argument("--in-process", action="store_true", help="run the commands in this process (tests)")
    rep.add_argument("--out", type=Path, default=None,
                     help=f"the report (default {REPORT}; maths {STUDIES['math'].report})")
    rep.add_argument("--resamples", type=int, default=10_000)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    study = STUDIES[args.study]
    dry, defaults = args.dry_run, study.defaults

    def pick(value, key: str):  # the option, else the study's dry-run size, else its default (None: the recipe's)
        if value is not None:
            return value
        return study.dry[key] if dry and key in study.dry else defaults.get(key)

    return Settings(steps=pick(args.steps, "steps"), stage1_steps=pick(args.stage1_steps, "stage1_steps"),
                    dev_size=pick(args.dev_size, "dev_size"), limit=pick(args.limit, "limit"),
                    langs=pick(args.langs, "langs"), choice_batch=pick(args.choice_batch, "choice_batch"),
                    generate_batch=pick(args.generate_batch, "generate_batch"),
                    max_new_tokens=pick(args.max_new_tokens, "max_new_tokens"),
                    max_source_length=defaults["max_source_length"], max_prompt_length=defaults["max_prompt_length"],
                    llm=pick(args.llm, "llm"), data=str(Path(args.data).resolve()),
                    recipes=str(Path(args.recipes).resolve()),
                    train_settings=list(pick(args.train_settings, "train_settings")),
                    eval_dtype=pick(args.eval_dtype, "eval_dtype"), dry_run=dry, study=study.name, device=args.device)


def default_settings(study: Study = XNLI_STUDY) -> Settings:
    """The settings a plain `run` of `study` uses."""
    return settings_from(build_parser().parse_args(["run", "--study", study.name]))


def folders(args: argparse.Namespace) -> tuple[Path, Path]:
    study = STUDIES[args.study]
    work = args.work or (study.dry_work if args.dry_run else study.work)
    results = args.results or ((study.dry_work / "units") if args.dry_run else study.results)
    return work.resolve(), results.resolve()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    study = STUDIES[args.study]
    units = [parse_unit(u, study) for u in args.units] if args.units else \
        plan(args.seeds_fusion, args.seeds_other, study)
    work, results = folders(args)
    if args.command == "status":
        done, missing = status(units, results)
        print(f"done ({len(done)}): {' '.join(u.name for u in done) or '-'}")
        print(f"missing ({len(missing)}): {' '.join(u.name for u in missing) or '-'}")
        if missing:
            print(finish_command(missing, study=study))
        return 0
    if args.command == "report":
        import comparison_report  # beside this file: a script's own folder is on sys.path

        out = args.out or (work / "reproduction.md" if args.dry_run else study.report)
        comparison_report.write_report(units, results, out, resamples=args.resamples, study=study)
        print(f"wrote {out}")
        return 0
    failures = run_units(units, settings_from(args), work, results, lanes=args.lanes, threads=args.threads,
                         in_process=args.in_process)
    for unit, message in failures:
        print(f"{unit.name} failed: {message}", file=sys.stderr)
    return 1 if failures else 0


def _read_json(path: Path, default):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


if __name__ == "__main__":
    sys.exit(main())
