"""Running a study's units, resumably. A unit is one (system, seed), a learning-rate sweep point (system, rate), or
an untrained system. Its phases:

    train-translation, train-task   `layalign train ... --resume`, one per stage the system declares; checkpoints in
                                    the work folder (not committed). A stage before the task stage depends only on
                                    the system and the seed, so the units that share both (a system's sweep units
                                    and its seed-0 unit) train it once, in stages/SYSTEM-sSEED/, under a lock: every
                                    swept rate starts from the same first stage
    eval-choices, eval-generate     `layalign evaluate` on the study's eval data (resumes a killed run), lenient
                                    protocol; a sweep unit only the study's first scoring, on the sweep's rows
    rescore                         the same outputs judged under the paper protocol (evaluation.rescore)
    eval-choices-zero-gates         a model with fusion gates (LayAlign), where choices are scored: the same
                                    evaluation with every gate at zero (`layalign evaluate --zero-gates`)
    diagnostics                     its gates and layer mix against the first stage's fusion_init.json, and the
                                    zero-gate run against the real one (inspection.write_diagnostics)
    collect                         the small results into the results folder, then unit.json, written last

A sweep unit whose task stage diverges (a non-finite loss: `layalign train` exits with NonFiniteLoss.exit_code) is
done, not failed: its unit.json says "diverged", it is not evaluated, and its rate is never the pick. Anywhere else a
diverged stage fails its unit.

The study's `all_languages` unit (SYSTEM-all-languages) trains nothing: once every seed of its system is done, the
best seed's model (by the study's first scoring on the study's languages; the lower seed on a tie) is evaluated on
every language of the benchmark, with its gates and with every gate at zero (eval-choices, rescore,
eval-choices-zero-gates). Its evaluations start from the best seed's own on the study's languages (the same model,
rows and settings: the rows a new run would write), and its work folder is keyed by that seed. With `best_so_far`
(`layalign study run ... --best-so-far`) it runs before every seed is done, on the best seed so far; its unit.json
then says so (`provisional`), the unit still counts as missing, and once the seeds are done it runs again: it only
collects, where the best seed has not changed. It runs after every other unit, alone, so each of its evaluations is
split by language over the lanes (split_evaluation).

Commands run from the study's root, and every path they and the records name is relative to it. A phase already
finished is skipped; a unit with its unit.json is done.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from layalign.studies.settings import Settings
from layalign.studies.spec import PROTOCOLS, Stage, Study, System, Unit, relative_path

MARKER = "unit.json"
DIVERGED = "diverged"  # the status of a sweep unit whose training diverged, and its results' key
ZERO_GATES = "choices-zero-gates"  # the eval folder of a model with every fusion gate at zero
PHASES_FILE = "phases.json"
REUSED_FILE = "reused.json"  # an all-languages unit's: the rows its evaluations took from its best seed's
DIAGNOSTICS = Path("diagnostics") / "diagnostics.json"  # the fusion's, in a LayAlign unit's folders
SHARED_STAGES = "stages"  # in the work folder: the stages before the task stage, per system and seed
SWEEP_FILE = "lr_sweep.json"  # in the results folder: each swept system's scores and pick
# fields of a prediction row that the committed copy leaves out: the inputs are the eval set's own text, found again
# from the row id; everything scored stays
BULKY_FIELDS = ("prompt", "source")


class CommandFailed(RuntimeError):
    """A `layalign` command exited non-zero, with this exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class Runner:
    """Runs `layalign` commands from the study's root: in a subprocess with its own thread count (the default), or
    in this process (tests: no interpreter start per command). Each command's output goes to a log file."""

    def __init__(self, root: Path, threads: int | None = None, execute: Callable[[list[str]], int] | None = None,
                 lanes: int = 1):
        # execute: the `layalign` command's own main, to run commands in this process (tests); the command line
        # hands it down, since the studies sit below the command line and never import it
        self.root, self.threads, self.execute, self.lanes = root, threads, execute, lanes

    def __call__(self, argv: list[str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        if self.execute is not None:
            before = os.getcwd()  # contextlib.chdir is 3.11+; the package supports 3.10
            os.chdir(self.root)
            try:
                code = self.execute(argv)
            finally:
                os.chdir(before)
        else:
            env = os.environ | {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
            if self.threads:
                env |= {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
            with log.open("a", encoding="utf-8") as f:
                f.write(f"\n$ layalign {shlex.join(argv)}\n")
                f.flush()
                code = subprocess.run([sys.executable, "-m", "layalign", *argv], stdout=f, stderr=subprocess.STDOUT,
                                      env=env, cwd=self.root).returncode
        if code != 0:
            raise CommandFailed(f"`layalign {shlex.join(argv)}` failed (exit {code}); see {log}", code)


def stage_folder(unit: Unit, stage: Stage, work_root: Path) -> Path:
    """Where a unit's stage trains: the task stage in the unit's own folder; an earlier stage, which depends only on
    the system and the seed, in a folder that the units sharing both share."""
    if stage.name == "task":
        return work_root / unit.name / stage.name
    return work_root / SHARED_STAGES / f"{unit.system.name}-s{unit.seed}" / stage.name


def stage_overrides(unit: Unit, stage: Stage, settings: Settings, work: str, study: Study,
                    results: Path) -> list[str]:
    """The `key=value` overrides of one stage's `layalign train`; `work` is the study's work folder, relative."""
    folder = stage_folder(unit, stage, Path(work)).as_posix()
    out = [f"seed={unit.seed}", f"data_dir={settings.data}", f"output_dir={folder}", *stage.overrides]
    if stage.name == "task":
        sweep = study.lr_sweep
        out.append(f"max_steps={sweep.steps if unit.sweep and not settings.dry_run else settings.steps}")
        previous = [s for s in unit.system.stages if s.name != "task"]
        out.append(f"init_from={stage_folder(unit, previous[-1], Path(work)).as_posix()}" if previous
                   else "init_from=null")
        if unit.sweep:
            out.append(f"learning_rate={unit.learning_rate:g}")
        elif unit.system.learning_rate and unit.system.learning_rate.swept:
            source = study.systems.get(unit.system.learning_rate.same_as, unit.system)  # an ablation: its source's
            out.append(f"learning_rate={sweep_pick(study, source, results)[0]:g}")
    elif settings.stage1_steps:
        out.append(f"max_steps={settings.stage1_steps}")
    if settings.dev_size is not None:
        out.append(f"dev_size={settings.dev_size}")
    if settings.dry_run:
        out += ["eval_every=0", "save_every=0"]
    if settings.device:
        out.append(f"device={settings.device}")
    return out + list(settings.train_settings)


def sweep_results(study: Study, system: System, results: Path) -> dict[str, dict | None]:
    """Each swept rate's results (the study's first scoring, lenient) so far: None where its sweep unit is not done,
    {"diverged": the error} where its training diverged."""
    found: dict[str, dict | None] = {}
    for value in study.lr_sweep.values:
        folder = results / Unit(system, study.lr_sweep.seed, value).name
        path = folder / "eval" / study.scorings[0] / "results-lenient.json"
        record = _read_json(folder / MARKER, None)
        found[f"{value:g}"] = None if record is None else {"diverged": record["diverged"]} if record.get(
            "status") == DIVERGED else json.loads(path.read_text(encoding="utf-8"))
    return found


def sweep_scores(found: dict[str, dict | None]) -> dict[str, float]:
    """The average accuracy, on the sweep's dev rows, of each rate in `found` (`sweep_results`) that finished and
    did not diverge."""
    return {rate: result["average"]["accuracy"] for rate, result in found.items()
            if result and DIVERGED not in result}


def best_rate(scores: dict[str, float]) -> float:
    """The sweep's pick among the rates scored (a rate that diverged is not among them): the highest score, the
    smaller rate on a tie."""
    return min(map(float, scores), key=lambda v: (-scores[f"{v:g}"], v))


def finished_pick(found: dict[str, dict | None]) -> float | None:
    """The sweep's pick from `found` (`sweep_results`) once every rate has finished; None before, or where every
    rate diverged."""
    scores = sweep_scores(found)
    return best_rate(scores) if scores and None not in found.values() else None


def sweep_pick(study: Study, system: System, results: Path) -> tuple[float, dict[str, float]]:
    """The swept rate a system's seeded units train with (`best_rate` of its finished sweep), and the score of every
    rate that did not diverge. Writes them to lr_sweep.json in the results folder."""
    found = sweep_results(study, system, results)
    if missing := [rate for rate, result in found.items() if result is None]:
        raise ValueError(f"{system.name}'s learning rate is swept, but sweep unit {system.name}-lr{missing[0]} is not "
                         "done: run the sweep units first")
    scores = sweep_scores(found)
    if not scores:
        raise ValueError(f"every swept rate of {system.name} diverged ({', '.join(found)}): try smaller rates")
    best = best_rate(scores)
    record = _read_json(results / SWEEP_FILE, {})
    diverged = [rate for rate in found if rate not in scores]
    record[system.name] = {"scoring": study.scorings[0], "accuracy": scores, "pick": best,
                           **({"diverged": diverged} if diverged else {})}
    results.mkdir(parents=True, exist_ok=True)
    (results / SWEEP_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return best, scores


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


def model_dir(unit: Unit, work: Path, settings: Settings, study: Study) -> str:
    """What evaluation loads: the untrained system's LLM, or the model the last stage selected (stage_result.json)."""
    if not unit.system.seeded:
        return f"llm:{settings.llm}"
    from layalign.training import resolve_model_dir

    return study.relative(resolve_model_dir(work / unit.system.stages[-1].name))


def eval_argv(unit: Unit, scoring: str, model: str, settings: Settings, study: Study, out: str,
              langs: list[str] | None = None) -> list[str]:
    """The unit's `layalign evaluate` command; `langs`: a share of its languages (default all of them)."""
    batch = settings.choice_batch if scoring == "choices" else settings.generate_batch
    argv = ["evaluate", "--model", model, "--benchmark", study.benchmark, "--data",
            f"{settings.data}/{study.eval_data}", "--langs", *(langs or unit_languages(unit, settings, study)),
            "--limit", str(eval_rows(unit, settings, study)), "--batch-size", str(batch), "--scoring", scoring,
            "--protocol", "lenient", "--name", unit.label, "--out", out, "--max-source-length",
            str(settings.max_source_length), "--max-prompt-length", str(settings.max_prompt_length), "--dtype",
            settings.eval_dtype]
    argv += ["--max-new-tokens", str(settings.max_new_tokens)] if scoring == "generate" else []
    return argv + (["--device", settings.device] if settings.device else [])


def languages(settings: Settings, study: Study) -> list[str]:
    from layalign.tasks import get_task

    return list(settings.langs or get_task(study.benchmark).languages)


def unit_languages(unit: Unit, settings: Settings, study: Study) -> list[str]:
    """The languages a unit is evaluated on: the study's, or every language of the benchmark (all_languages)."""
    from layalign.tasks import get_task

    if unit.all_languages and not settings.dry_run:
        return list(get_task(study.benchmark).languages)
    return languages(settings, study)


def eval_rows(unit: Unit, settings: Settings, study: Study) -> int:
    return min(settings.limit, study.lr_sweep.rows) if unit.sweep else settings.limit


def unit_scorings(unit: Unit, study: Study) -> tuple[str, ...]:
    return study.scorings[:1] if unit.sweep else study.scorings


def eval_examples(unit: Unit, settings: Settings, study: Study) -> dict[str, list]:
    """The eval rows a unit scores, by language."""
    from layalign.tasks import get_task

    return get_task(study.benchmark).read(str(study.root / settings.data / study.eval_data),
                                          langs=unit_languages(unit, settings, study),
                                          limit=eval_rows(unit, settings, study))


# the settings that decide an evaluation's rows: a seed unit's rows are reused only where all of them agree
EVAL_SETTINGS = ("data", "limit", "choice_batch", "generate_batch", "max_new_tokens", "max_source_length",
                 "max_prompt_length", "eval_dtype", "device")


def reuse_seed_predictions(best: dict, settings: Settings, work_root: Path, results_root: Path, work: Path,
                           folders: list[str], examples: dict[str, list]) -> dict[str, int]:
    """Start an all-languages unit's evaluations (`folders` of its work folder) from its best seed's own, on the
    languages both score: the same model and settings, and batches never hold two languages, so these are the rows
    a new run would write. Only into an evaluation not begun; returns the rows copied per folder."""
    seed_settings = _read_json(results_root / best["unit"] / MARKER, {}).get("settings", {})
    if any(seed_settings.get(key) != value for key, value in settings.record().items() if key in EVAL_SETTINGS):
        return {}
    wanted = {(ex.lang, ex.id) for rows in examples.values() for ex in rows}
    copied = {}
    for folder in folders:
        src, dest = work_root / best["unit"] / "eval" / folder, work / "eval" / folder
        if not (src / "predictions.jsonl").is_file() or (dest / "predictions.jsonl").exists():
            continue
        rows = [row for row in read_jsonl(src / "predictions.jsonl") if (row["lang"], row["id"]) in wanted]
        dest.mkdir(parents=True, exist_ok=True)
        write_jsonl(dest / "predictions.jsonl", rows)
        copied[folder] = len(rows)
    return copied


def split_evaluation(command: Callable[[list[str] | None, Path], list[str]], out: Path, examples: dict[str, list],
                     runner: Runner, log: Path) -> None:
    """One evaluation as `runner.lanes` commands side by side (one after another in this process), each on a share
    of the languages with rows still to score (dealt in turn) into a folder of its own (OUT-partK, resumable). Their
    rows then join the evaluation's: batches never hold two languages, so they are the rows one command would
    write. Last, the whole command, with nothing left to score, writes the results. `command(langs, folder)`: the
    evaluate command on those languages (None: all) into that folder."""
    from layalign.evaluation import load_predictions

    path = out / "predictions.jsonl"
    rows = {(row["lang"], row["id"]): row for row in load_predictions(path, repair=True)}
    pending = [lang for lang, wanted in examples.items() if any((ex.lang, ex.id) not in rows for ex in wanted)]

    def run_share(k: int) -> None:
        runner(command(pending[k::runner.lanes], out.with_name(f"{out.name}-part{k + 1}")),
               log.with_name(f"{log.name}-part{k + 1}.log"))

    with ThreadPoolExecutor(max_workers=1 if runner.execute else runner.lanes) as pool:
        list(pool.map(run_share, [k for k in range(runner.lanes) if pending[k::runner.lanes]]))
    parts = sorted(out.parent.glob(f"{out.name}-part*"))  # an earlier split's too, if a resumed run dealt otherwise
    for folder in parts:
        for row in load_predictions(folder / "predictions.jsonl", repair=True):
            rows.setdefault((row["lang"], row["id"]), row)
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    write_jsonl(tmp, rows.values())
    tmp.replace(path)  # whole or not at all: the parts are removed only after
    for folder in parts:
        shutil.rmtree(folder)
    runner(command(None, out), log.with_name(f"{log.name}.log"))


def eval_done(out: Path, rows: int) -> bool:
    from layalign.evaluation import load_predictions

    return (out / "results.json").is_file() and len(load_predictions(out / "predictions.jsonl")) >= rows


def run_unit(unit: Unit, settings: Settings, study: Study, work_root: Path, results_root: Path,
             runner: Runner, best_so_far: bool = False) -> Path:
    """Run (or resume) every phase of a unit; returns its results folder. A phase already done is skipped.
    `best_so_far`: an all-languages unit evaluates the best seed done so far (provisional) instead of refusing to run
    while a seed is missing."""
    from filelock import FileLock

    from layalign.evaluation import rescore

    work, final = work_root / unit.name, results_root / unit.name
    if unit_done(unit, results_root):
        return final
    best = best_seed(unit.system, study, results_root, finished_only=best_so_far) if unit.all_languages else None
    if best is not None:
        work = work / best["unit"]  # the model it scores: a later, different best seed starts afresh
    work.mkdir(parents=True, exist_ok=True)
    phases = _read_json(work / PHASES_FILE, {})
    commands: list[dict] = []

    def phase(name: str, argv: list[str] | None, done: bool, action=None, stage_dir: Path | None = None,
              predictions: Path | None = None) -> None:
        if argv:
            commands.append({"phase": name, "command": f"layalign {shlex.join(argv)}"})
        if done and name in phases:
            return
        # a training stage that an earlier run left with checkpoints, or an evaluation with saved predictions: this
        # run's seconds are only its last part
        resumed = not done and (stage_dir is not None and any((stage_dir / "checkpoints").glob("step-*"))
                                or predictions is not None and predictions.is_file() and predictions.stat().st_size > 0)
        start = time.time()
        if not done:  # an action may run the recorded command its own way (an evaluation split over the lanes)
            action() if action else runner(argv, work / "logs" / f"{name}.log")
        phases[name] = {"seconds": round(time.time() - start, 1) if not done else None,
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if resumed:  # a training stage's time over all its runs, where its checkpoints recorded it (else None)
            result = _read_json(stage_dir / "stage_result.json", {}) if stage_dir is not None else {}
            phases[name] |= {"resumed": True, "stage_elapsed_s": result.get("elapsed_s")}
        (work / PHASES_FILE).write_text(json.dumps(phases, indent=1) + "\n", encoding="utf-8")

    for stage in unit.system.stages if not unit.all_languages else ():
        recipe = check_recipe(unit.system, stage, study.recipes)
        argv = ["train", "--config", study.relative(recipe), "--resume",
                *stage_overrides(unit, stage, settings, study.relative(work_root), study, results_root)]
        folder = stage_folder(unit, stage, work_root)
        folder.parent.mkdir(parents=True, exist_ok=True)
        # a shared stage: another lane may be training it; wait, then find it done
        with FileLock(str(folder) + ".lock"):
            done = (folder / "final").is_dir()
            try:
                phase(f"train-{stage.name}", argv, done, stage_dir=folder)
            except CommandFailed as err:
                from layalign.training import NonFiniteLoss

                if not (unit.sweep and stage.name == "task" and err.code == NonFiniteLoss.exit_code):
                    raise
                # a rate too high for this system: a result of the sweep, recorded as such (not evaluated); the
                # training log's last line says at which step and why
                why = [r[DIVERGED] for r in read_jsonl(folder / "train_log.jsonl") if DIVERGED in r]
                phases[f"train-{stage.name}"] = {"seconds": None, DIVERGED: True}
                collect(unit, settings, study, work, final, phases, commands, "", runner,
                        diverged=why[-1] if why else "the loss was not finite")
                return final
        if stage.name != "task" and phases[f"train-{stage.name}"]["seconds"] is None:  # another unit trained it
            phases[f"train-{stage.name}"] |= {
                "shared": study.relative(folder),
                "stage_elapsed_s": _read_json(folder / "stage_result.json", {}).get("elapsed_s")}
    model = model_dir(unit, work, settings, study) if best is None else best["model_dir"]
    examples = eval_examples(unit, settings, study)
    rows = sum(len(v) for v in examples.values())
    scorings = unit_scorings(unit, study)
    if best is not None:
        folders = [f"{scoring}-lenient" for scoring in scorings] + [ZERO_GATES]
        reused = _read_json(work / REUSED_FILE, {}) | reuse_seed_predictions(best, settings, work_root, results_root,
                                                                             work, folders, examples)
        (work / REUSED_FILE).write_text(json.dumps(reused, indent=1) + "\n", encoding="utf-8")
        if reused:
            commands.append({"phase": "reuse", "command": f"rows of {best['unit']}'s own evaluations copied: "
                             + ", ".join(f"{folder} {n}" for folder, n in reused.items())})

    def evaluation(name: str, scoring: str, out: Path, extra: tuple[str, ...] = ()) -> None:
        def command(langs: list[str] | None, folder: Path) -> list[str]:
            return eval_argv(unit, scoring, model, settings, study, study.relative(folder), langs) + list(extra)

        # the all-languages unit runs alone, after every other: its evaluations take every lane
        split = unit.all_languages and runner.lanes > 1
        phase(name, command(None, out), eval_done(out, rows), predictions=out / "predictions.jsonl",
              action=(lambda: split_evaluation(command, out, examples, runner, work / "logs" / name)) if split
              else None)

    for scoring in scorings:
        evaluation(f"eval-{scoring}", scoring, work / "eval" / f"{scoring}-lenient")

    def rescore_all() -> None:
        for scoring in scorings:
            rescore(work / "eval" / f"{scoring}-lenient", work / "eval" / f"{scoring}-paper", "paper")

    phase("rescore", None, False, rescore_all)
    commands.append({"phase": "rescore", "command": "layalign.evaluation.rescore(<eval>/<scoring>-lenient, "
                                                     f"<eval>/<scoring>-paper, 'paper') for {' and '.join(scorings)}"})
    if has_gates(unit, study, study.root / model):
        # the branch's contribution, measured: the same model with every gate at zero on the same rows, and the
        # gates and layer mix against the first stage's initialisation (layalign.inspection.write_diagnostics; the
        # all-languages unit's model is a seed unit's, which wrote them)
        zero = work / "eval" / ZERO_GATES
        evaluation("eval-choices-zero-gates", "choices", zero, ("--zero-gates",))
        if not unit.all_languages:
            phase("diagnostics", None, (work / DIAGNOSTICS).is_file(),
                  lambda: write_diagnostics(study.root / model, first_stage_init(unit, work_root),
                                            work / "eval" / "choices-lenient", zero, work / DIAGNOSTICS))
            commands.append({"phase": "diagnostics", "command": "layalign.inspection.write_diagnostics(<model>, "
                             "<first stage>/fusion_init.json, <eval>/choices-lenient, <eval>/choices-zero-gates, "
                             f"<unit>/{DIAGNOSTICS.as_posix()})"})
    collect(unit, settings, study, work, final, phases, commands, model, runner, best)
    return final


def seed_accuracy(unit: str, study: Study, results: Path) -> float:
    """A finished unit's average accuracy (%) by the study's first scoring (lenient) on the study's languages."""
    return _read_json(results / unit / "eval" / study.scorings[0] / "results-lenient.json", {})["average"]["accuracy"]


def seed_spread(system: System, study: Study, results: Path) -> float | None:
    """How far apart (points, max - min) the average accuracies of `system`'s seeds in the study file lie; None until
    every one of them is done."""
    names = [Unit(system, seed).name for seed in range(system.seeds)]
    if system.seeds < 2 or not all((results / name / MARKER).is_file() for name in names):
        return None
    accuracies = [seed_accuracy(name, study, results) for name in names]
    return max(accuracies) - min(accuracies)


def seed_spreads(study: Study, results: Path) -> dict[str, float | None]:
    """`seed_spread` of every trained system."""
    return {name: seed_spread(s, study, results) for name, s in study.systems.items() if s.seeded}


def seed_counts(study: Study, results: Path, spreads: dict[str, float | None] | None = None) -> dict[str, int]:
    """Each trained system's seeds: the study file's, or the study's `more_seeds.seeds` once those are all done and
    spread more than `more_seeds.over` points (the noise of that system's training is then too large to judge it on
    a few seeds). `spreads`: `seed_spreads`, where the caller has read them already."""
    rule = study.settings["more_seeds"]
    counts = {name: s.seeds for name, s in study.systems.items() if s.seeded}
    if rule:
        spreads = seed_spreads(study, results) if spreads is None else spreads
        for name, spread in spreads.items():
            if spread is not None and spread > rule["over"]:
                counts[name] = max(counts[name], rule["seeds"])
    return counts


def best_seed(system: System, study: Study, results: Path, finished_only: bool = False) -> dict:
    """The best seed of `system` by the study's first scoring (lenient) on the study's languages, the lower seed on
    a tie: {"unit", "model_dir", "accuracy" (per finished seed unit), "planned" (seeds)}. A ValueError while a
    planned seed (seed_counts) is not done, or with `finished_only` (shipping a model, or an all-languages unit run
    with --best-so-far, before the study ends), while none is: the best of those done so far."""
    planned = seed_counts(study, results)[system.name]
    names = [Unit(system, seed).name for seed in range(planned)]
    missing = [name for name in names if not (results / name / MARKER).is_file()]
    if missing and not finished_only:
        raise ValueError(f"{system.name}-all-languages evaluates the best of {system.name}'s {planned} seeds, "
                         f"and {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not done: run "
                         f"{'it' if len(missing) == 1 else 'them'} first (or add --best-so-far: the best seed "
                         "done so far, provisional)")
    if not (names := [name for name in names if name not in missing]):
        raise ValueError(f"no seed of {system.name} is done in {results}: run {Unit(system, 0).name} first")
    accuracy = {name: seed_accuracy(name, study, results) for name in names}
    unit = max(names, key=accuracy.get)  # max keeps the first of equals: the lower seed
    record = _read_json(results / unit / MARKER, {})
    return {"unit": unit, "model_dir": record["model_dir"], "accuracy": accuracy, "planned": planned}


def provisional(record: dict) -> bool:
    """Whether a unit.json is an all-languages unit's run on the best seed so far, before every seed was done."""
    best = record.get("best_of") or {}
    return len(best.get("accuracy", ())) < best.get("planned", 0)


def unit_done(unit: Unit, results: Path) -> bool:
    """A unit is done once its unit.json is written, unless that is a provisional all-languages run."""
    record = _read_json(results / unit.name / MARKER, None)
    return record is not None and not provisional(record)


def has_gates(unit: Unit, study: Study, model: Path) -> bool:
    """Whether a unit's model has fusion gates to zero (a LayAlign model; not a sweep unit, and only where choices
    are scored: the answer distributions are compared by choice)."""
    if unit.sweep or not unit.system.seeded or "choices" not in study.scorings:
        return False
    from layalign.inspection import InspectError, load_fusion_weights

    try:
        load_fusion_weights(model)
    except (InspectError, FileNotFoundError):
        return False
    return True


def first_stage_init(unit: Unit, work_root: Path) -> Path | None:
    """The fusion weights at initialisation: the fusion_init.json of the unit's first stage (later stages start from
    trained weights)."""
    from layalign.inspection import FUSION_INIT

    path = stage_folder(unit, unit.system.stages[0], work_root) / FUSION_INIT
    return path if path.is_file() else None


def write_diagnostics(model: Path, init: Path | None, with_gates: Path, zero_gates: Path, out: Path) -> None:
    from layalign.inspection import write_diagnostics as write

    write(model, init, with_gates, zero_gates, out)
    if init is not None:
        shutil.copy2(init, out.parent / init.name)


def collect(unit: Unit, settings: Settings, study: Study, work: Path, final: Path, phases: dict,
            commands: list[dict], model: str, runner: Runner, best: dict | None = None,
            diverged: str | None = None) -> None:
    """The small results into the results folder, unit.json last (the unit counts as done only then). `diverged`:
    the error of a sweep unit whose training diverged (no evaluation to collect)."""
    start = time.time()
    if final.exists():
        shutil.rmtree(final)  # a half-collected folder from a killed run (it has no marker)
    for stage in unit.system.stages if not unit.all_languages else ():
        dest = final / "train" / stage.name
        dest.mkdir(parents=True)
        folder = stage_folder(unit, stage, work.parent)
        for name in ("train_log.jsonl", "train_config.yaml", "stage_result.json"):
            if (folder / name).is_file():
                shutil.copy2(folder / name, dest / name)
    for scoring in unit_scorings(unit, study) if diverged is None else ():
        dest = final / "eval" / scoring
        src = work / "eval" / f"{scoring}-lenient"
        copy_predictions(src, dest)
        for protocol in PROTOCOLS:
            shutil.copy2(work / "eval" / f"{scoring}-{protocol}" / "results.json", dest / f"results-{protocol}.json")
    if (work / DIAGNOSTICS).is_file():
        shutil.copytree((work / DIAGNOSTICS).parent, final / DIAGNOSTICS.parent)
    zero = work / "eval" / ZERO_GATES
    if unit.all_languages and (zero / "results.json").is_file():  # the other units keep theirs in diagnostics
        copy_predictions(zero, final / "eval" / ZERO_GATES)
        shutil.copy2(zero / "results.json", final / "eval" / ZERO_GATES / "results-lenient.json")
    phases = phases | {"collect": {"seconds": round(time.time() - start, 1)}}
    record = {"unit": unit.name, "system": unit.system.name, "label": unit.label, "seed": unit.seed,
              **({"learning_rate": unit.learning_rate} if unit.sweep else {}),
              **({"best_of": best} if best else {}),
              "status": "done" if diverged is None else DIVERGED, **({DIVERGED: diverged} if diverged else {}),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "phases": phases,
              "commands": commands, **({"model_dir": model} if diverged is None else {}),
              "settings": settings.record(),
              "machine": machine(study.root) | {"lanes": runner.lanes, "threads_per_command": runner.threads}}
    tmp = final / (MARKER + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp.rename(final / MARKER)


def copy_predictions(src: Path, dest: Path) -> None:
    """An evaluation's predictions (less the inputs' text) and run.json into a unit's results folder."""
    dest.mkdir(parents=True)
    rows = [{k: v for k, v in row.items() if k not in BULKY_FIELDS} for row in read_jsonl(src / "predictions.jsonl")]
    write_jsonl(dest / "predictions.jsonl", rows)
    shutil.copy2(src / "run.json", dest / "run.json")


def machine(root: Path) -> dict:
    import torch
    import transformers

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root)
    return {"host": platform.node(), "platform": platform.platform(), "processor": platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "git_commit": commit.stdout.strip() or None,
            "omp_threads": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads()}


def run_units(units: list[Unit], settings: Settings, study: Study, work: Path, results: Path, lanes: int = 1,
              threads: int | None = None, execute: Callable[[list[str]], int] | None = None,
              best_so_far: bool = False) -> list[tuple[Unit, str]]:
    """Run the units, `lanes` at a time (each lane one unit after another; the sweep's units before the others, which
    need its pick); returns the failures (unit, message). A failed unit does not stop the others. `best_so_far`: see
    `run_unit`."""
    if lanes > 1 and execute is not None:
        raise ValueError("lanes run separate processes; --in-process takes one lane")
    threads = threads or (max(1, (os.cpu_count() or 1) // lanes) if lanes > 1 else None)
    runner = Runner(study.root, threads=threads, execute=execute, lanes=lanes)
    failures: list[tuple[Unit, str]] = []

    def one(unit: Unit) -> None:
        started = time.time()
        print(f"[{time.strftime('%H:%M:%S')}] {unit.name}: start", flush=True)
        try:
            final = run_unit(unit, settings, study, work, results, runner, best_so_far)
            record = _read_json(final / MARKER, {})
            outcome = ("diverged (the sweep records it; not evaluated)" if record.get("status") == DIVERGED else
                       f"provisional: the best of the seeds done so far ({record['best_of']['unit']})"
                       if provisional(record) else "done")
            print(f"[{time.strftime('%H:%M:%S')}] {unit.name}: {outcome} in {(time.time() - started) / 60:.1f} min",
                  flush=True)
        except (RuntimeError, ValueError, FileNotFoundError, OSError) as err:  # CommandFailed included
            failures.append((unit, str(err)))
            print(f"[{time.strftime('%H:%M:%S')}] {unit.name}: FAILED: {err}", flush=True)

    # the sweep first (the seeded units need its picks), the all-languages unit last (it needs every seed)
    for group in ([u for u in units if u.sweep], [u for u in units if not u.sweep and not u.all_languages],
                  [u for u in units if u.all_languages]):
        with ThreadPoolExecutor(max_workers=lanes) as pool:
            list(pool.map(one, group))
    return failures


def status(units: list[Unit], results: Path) -> tuple[list[Unit], list[Unit]]:
    """(done, missing) units: done = `unit_done`."""
    done = [u for u in units if unit_done(u, results)]
    return done, [u for u in units if u not in done]


def relative_command(command: str, root: Path) -> str:
    """A recorded command with every absolute path written relative to `root` (older records name the checkout
    they ran in)."""
    return " ".join(relative_path(word, root) if word.startswith("/") else
                    _relative_setting(word, root) for word in command.split(" "))


def _relative_setting(word: str, root: Path) -> str:
    key, sep, value = word.partition("=")
    return f"{key}={relative_path(value, root)}" if sep and value.startswith("/") else word


def finish_command(missing: list[Unit], study: Study, lanes: int | None = None) -> str:
    lanes = study.settings["finish_lanes"] if lanes is None else lanes
    return f"layalign study run {study_argument(study)} --lanes {lanes} --units {' '.join(u.name for u in missing)}"


def study_argument(study: Study) -> str:
    """How a command line names the study: its name when it is one of configs/studies/, else its file."""
    from layalign.studies.spec import STUDIES_DIR

    if study.path == (study.root / STUDIES_DIR / f"{study.name}.yaml").resolve():
        return study.name
    return study.relative(study.path)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def _read_json(path: Path, default):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default
