"""`layalign study run | status | report STUDY`: STUDY is a name in configs/studies/ or a path to a YAML file.

    layalign study run xnli                            # every unit not yet finished (hours on 2 CPU cores)
    layalign study run xnli --units layalign-s0 mindmerger-s0 --lanes 2
    layalign study run sib200 --units layalign-all-languages --best-so-far   # before every seed is done: provisional
    layalign study run xnli --dry-run --units layalign-s0 llm-prompted    # tiny sizes, a separate folder
    layalign study status xnli                         # which units are done, and the command for the rest
    layalign study report xnli                         # the report from the finished units
    layalign study run my-study.yaml --device cuda     # every train and evaluate command on that device
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# the options of `run` that override a study's own settings (None: the study's)
RUN_OPTIONS = ("steps", "stage1_steps", "dev_size", "limit", "langs", "choice_batch", "generate_batch",
               "max_new_tokens", "llm", "data", "train_settings", "eval_dtype", "device")


def add_study_commands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="study_command", required=True)
    run = sub.add_parser("run", help="run (or resume) units")
    st = sub.add_parser("status", help="which units are done; the command that finishes the rest")
    rep = sub.add_parser("report", help="write the report from the finished units")
    for p in (run, st, rep):
        p.add_argument("study", help="a study in configs/studies/ (xnli, math) or a path to a study YAML file")
        p.add_argument("--units", nargs="*", default=None, help="e.g. layalign-s0 llm-prompted (default: all)")
        p.add_argument("--seeds", nargs="*", default=None, metavar="SYSTEM=N",
                       help="seeds of a system instead of the study's, e.g. layalign=5")
        p.add_argument("--work", type=Path, default=None, help="checkpoints and logs (default: the study's)")
        p.add_argument("--results", type=Path, default=None, help="the unit folders (default: the study's)")
        p.add_argument("--dry-run", action="store_true",
                       help="the study's tiny sizes (its `dry` field) into the work folder + '-dry'")
    run.add_argument("--lanes", type=int, default=1, help="units side by side, with cores/lanes threads each")
    run.add_argument("--threads", type=int, default=None, help="threads per unit (default: cores / lanes)")
    run.add_argument("--steps", type=int, default=None, help="task-stage steps of every trained system")
    run.add_argument("--stage1-steps", type=int, default=None, help="translation steps (default: the recipe's)")
    run.add_argument("--dev-size", type=int, default=None, help="dev examples held out (default: the recipes')")
    run.add_argument("--limit", type=int, default=None, help="eval rows per language (default: the study's rows)")
    run.add_argument("--langs", nargs="*", default=None, help="languages (default: the study's)")
    run.add_argument("--choice-batch", type=int, default=None)
    run.add_argument("--generate-batch", type=int, default=None)
    run.add_argument("--max-new-tokens", type=int, default=None)
    run.add_argument("--llm", default=None, help="the untrained system's LLM (default: the study's)")
    run.add_argument("--data", default=None, help="the data folder (default: the study's, ../shared/data)")
    run.add_argument("--train-settings", nargs="*", default=None, help="key=value added to every `layalign train`")
    run.add_argument("--eval-dtype", default=None, choices=("float32", "bfloat16"),
                     help="dtype of the frozen encoder and LLM in evaluation, the same for every system")
    run.add_argument("--device", default=None,
                     help="e.g. cuda: device=... to every `layalign train`, --device to every `layalign evaluate`")
    run.add_argument("--best-so-far", action="store_true",
                     help="the all-languages unit on the best seed done so far, before every seed is: provisional, "
                          "it runs again once they are (and evaluates again only if the best seed changed)")
    run.add_argument("--in-process", action="store_true", help="run the commands in this process (tests)")
    rep.add_argument("--out", type=Path, default=None, help="the report (default: the study's)")
    rep.add_argument("--resamples", type=int, default=10_000)


def cli_study(args: argparse.Namespace) -> int:
    from layalign.studies.runner import finish_command, run_units, seed_counts, status
    from layalign.studies.settings import settings_for
    from layalign.studies.spec import load_study, parse_unit, plan

    study = load_study(args.study)
    work = (args.work or (study.dry_work if args.dry_run else study.work)).resolve()
    results = (args.results or ((study.dry_work / "units") if args.dry_run else study.results)).resolve()
    # the seeds: the study's, more where a system's seeds spread (more_seeds), or the command line's
    seeds = seed_counts(study, results) | dict(_seed_option(s) for s in args.seeds or [])
    units = [parse_unit(u, study) for u in args.units] if args.units else plan(study, seeds)
    if args.study_command == "status":
        done, missing = status(units, results)
        print(f"done ({len(done)}): {' '.join(u.name for u in done) or '-'}")
        print(f"missing ({len(missing)}): {' '.join(u.name for u in missing) or '-'}")
        if missing:
            print(finish_command(missing, study))
        return 0
    if args.study_command == "report":
        from layalign.studies.report import write_report

        out = args.out or (work / "report.md" if args.dry_run else study.report)
        write_report(units, study, results, out, resamples=args.resamples)
        print(f"wrote {study.relative(out.resolve())}")
        return 0
    given = {key: getattr(args, key) for key in RUN_OPTIONS}
    failures = run_units(units, settings_for(study, args.dry_run, **given), study, work, results, lanes=args.lanes,
                         threads=args.threads,
                         execute=args.cli_main if args.in_process else None, best_so_far=args.best_so_far)
    for unit, message in failures:
        print(f"{unit.name} failed: {message}", file=sys.stderr)
    return 1 if failures else 0


def _seed_option(text: str) -> tuple[str, int]:
    name, sep, count = text.partition("=")
    if not sep or not count.isdigit():
        raise ValueError(f"--seeds takes SYSTEM=N, got {text!r}")
    return name, int(count)
