"""`layalign evaluate` against lm-evaluation-harness on the same rows: do both give the same answers?

For one model and N rows per language of every language, each comparison runs the rows through
`layalign.evaluation.run.evaluate` and through `lm_eval.simple_evaluate` with the model "layalign" and our task
YAMLs, with the same dtype, batch size and input lengths, and writes a markdown page with what agrees:

    python scripts/lm_eval_parity.py --model runs/encoder-dropout/drop-true/final --limit 50 --dtype bfloat16 \
        --mgsm-max-new-tokens 64 --out runs/lm-eval-parity --report docs/results/lm-eval-parity.md

Comparisons (`--tasks`, in this order by default): xnli-choices (`layalign_xnli_ll_*`, log-likelihood of each label),
xnli-generate (`layalign_xnli_*`), mgsm-generate (`layalign_mgsm_*`).

Resumable: every (comparison, language) pair is its own unit under `--out`; each side writes its result JSON when
it finishes and a rerun of the same command skips what is there (`layalign evaluate` also keeps the rows of a
half-finished language). `--report-only` rewrites the page from `--out` without running anything; the page names
the comparisons that are missing and the command that finishes them.

`--model` is anything `layalign.systems.load_system` takes: a trained directory, `llm:REF`, or `ENCODER,LLM` (an
untrained pair; `--randomize-adapters SCALE` then gives its adapters and gates small random values, saved once to
`--out/model/`, so that fusion changes what the LLM computes).

Run from the repository root (the tasks' default data is `../shared/data`) with the hub offline:
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1; OMP_NUM_THREADS sets the CPU threads.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layalign.files import relative_to_root
from layalign.tasks import get_task

PAGE = Path("docs/results/lm-eval-parity.md")


@dataclass(frozen=True)
class Comparison:
    key: str  # --tasks value, folder name
    benchmark: str
    scoring: str  # "choices" or "generate", as `layalign evaluate --scoring`
    prefix: str  # our lm_eval tasks are f"{prefix}_{lang}"

    def title(self) -> str:
        how = "choices (log-likelihood)" if self.scoring == "choices" else "generation"
        return f"{self.benchmark.upper()}, {how}"


COMPARISONS = {c.key: c for c in (
    Comparison("xnli-choices", "xnli", "choices", "layalign_xnli_ll"),
    Comparison("xnli-generate", "xnli", "generate", "layalign_xnli"),
    Comparison("mgsm-generate", "mgsm", "generate", "layalign_mgsm"),
)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained directory, llm:REF, or ENCODER,LLM")
    parser.add_argument("--randomize-adapters", type=float, default=None, metavar="SCALE",
                        help="ENCODER,LLM only: random adapters and gates of this scale (layalign.testing)")
    parser.add_argument("--limit", type=int, default=50, help="rows per language (the first N, on both sides)")
    parser.add_argument("--tasks", default=",".join(COMPARISONS), help=f"comma-separated: {', '.join(COMPARISONS)}")
    parser.add_argument("--langs", default=None, help="comma-separated languages (default: all of each task)")
    parser.add_argument("--dtype", default=None, help="backbones' dtype on both sides (e.g. bfloat16)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-source-length", type=int, default=None)
    parser.add_argument("--max-prompt-length", type=int, default=None)
    parser.add_argument("--mgsm-max-new-tokens", type=int, default=None,
                        help="cap MGSM's generation (default the task's 512), the same on both sides")
    parser.add_argument("--data", action="append", default=[], metavar="BENCHMARK=PATH",
                        help="a benchmark's data for both sides (default: the registry's copy under ../shared/data)")
    parser.add_argument("--out", type=Path, default=Path("runs/lm-eval-parity"))
    parser.add_argument("--report", type=Path, default=PAGE, help="the markdown page to write")
    parser.add_argument("--report-only", action="store_true", help="rewrite the page from --out, run nothing")
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="OUT",
                        help="add the results of another run of this script (its --out) to the page")
    args = parser.parse_args(argv)

    comparisons = [COMPARISONS[k.strip()] for k in args.tasks.split(",") if k.strip()]
    args.data = dict(item.split("=", 1) for item in args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = _settings(args)
    _check_settings(args.out, settings)
    if not args.report_only:
        (args.out / "command.txt").write_text(_command(argv) + "\n")  # for a page that shows this run with --also
        model = _model_spec(args)
        runner = _Runner(model, args)
        for comparison in comparisons:
            for lang in _langs(comparison, args.langs):
                runner.run(comparison, lang)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    page = report(args.out, comparisons, settings, _command(argv), args.langs, args.also)
    args.report.write_text(relative_to_root(page))  # run from the repository root: the page names no disk
    print(f"wrote {args.report}")
    return 0


# --- running ------------------------------------------------------------------------------------------------------

def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two runs comparable: a rerun into the same --out must use the same ones."""
    return {"model": args.model, "randomize_adapters": args.randomize_adapters, "limit": args.limit,
            "dtype": args.dtype, "batch_size": args.batch_size, "max_source_length": args.max_source_length,
            "max_prompt_length": args.max_prompt_length, "mgsm_max_new_tokens": args.mgsm_max_new_tokens}


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    path = out / "settings.json"
    if path.is_file():
        before = json.loads(path.read_text())
        if before != settings:
            changed = ", ".join(f"{k}: {before.get(k)!r} -> {v!r}" for k, v in settings.items() if before.get(k) != v)
            sys.exit(f"{out} holds a run with other settings ({changed}); use another --out")
    else:
        path.write_text(json.dumps(settings, indent=1) + "\n")


def _langs(comparison: Comparison, wanted: str | None) -> list[str]:
    languages = get_task(comparison.benchmark).languages
    if not wanted:
        return list(languages)
    return [lang for lang in wanted.split(",") if lang in languages]


def _model_spec(args: argparse.Namespace) -> str:
    """--model as load_system takes it; an untrained pair with --randomize-adapters is saved once under --out so
    that both sides (and a resumed run) read the same adapters."""
    if args.randomize_adapters is None:
        return args.model
    if "," not in args.model:
        sys.exit("--randomize-adapters is for an untrained pair, --model ENCODER,LLM")
    directory = args.out / "model"
    if not (directory / "layalign_config.json").is_file():
        from layalign.backbones import catalogue
        from layalign.model.config import LayAlignConfig
        from layalign.model.modeling import LayAlignModel
        from layalign.testing import randomize_adapters

        encoder, llm = (catalogue.resolve_reference(p.strip()) for p in args.model.split(",", 1))
        model = LayAlignModel(LayAlignConfig(encoder=encoder, llm=llm))
        randomize_adapters(model, scale=args.randomize_adapters)
        model.save_pretrained(directory)
    return str(directory)


class _Runner:
    """Both sides of one (comparison, language) unit; each model is loaded once, on first use."""

    def __init__(self, model: str, args: argparse.Namespace):
        self.model, self.args = model, args
        self._system = self._lm = self._manager = None

    def new_tokens(self, comparison: Comparison) -> int:
        task = get_task(comparison.benchmark)
        if comparison.benchmark == "mgsm" and self.args.mgsm_max_new_tokens:
            return self.args.mgsm_max_new_tokens
        return task.max_new_tokens

    def run(self, comparison: Comparison, lang: str) -> None:
        unit = self.args.out / comparison.key / lang
        if not (unit / "ours.json").is_file():
            self._ours(comparison, lang, unit)
        if not (unit / "lm_eval.json").is_file():
            self._harness(comparison, lang, unit)

    def _ours(self, comparison: Comparison, lang: str, unit: Path) -> None:
        from layalign.evaluation.run import evaluate
        from layalign.systems import load_system

        if self._system is None:
            self._system = load_system(self.model, device=self.args.device, dtype=self.args.dtype,
                                       max_source_length=self.args.max_source_length,
                                       max_prompt_length=self.args.max_prompt_length)
        examples = get_task(comparison.benchmark).read(self.args.data.get(comparison.benchmark), langs=[lang],
                                                       limit=self.args.limit)
        start = time.perf_counter()
        # protocol lenient: `correct` in predictions.jsonl is the harness's `acc`; the paper reading is redone below
        evaluate(self._system, comparison.benchmark, examples, unit / "ours", batch_size=self.args.batch_size,
                 max_new_tokens=self.new_tokens(comparison), progress=False, scoring=comparison.scoring,
                 protocol="lenient")
        _write_json(unit / "ours.json", {"seconds": time.perf_counter() - start})
        print(f"{comparison.key} {lang}: layalign evaluate done", flush=True)

    def _harness(self, comparison: Comparison, lang: str, unit: Path) -> None:
        import lm_eval
        from lm_eval.api.registry import get_model
        from lm_eval.tasks import TaskManager

        from layalign.integrations.lm_eval import tasks_dir  # the import registers "layalign"

        if self._lm is None:
            # what simple_evaluate(model="layalign", model_args=...) does with a name, done once for every unit
            model_args = ",".join(f"{k}={v}" for k, v in (
                ("pretrained", self.model), ("device", self.args.device), ("dtype", self.args.dtype),
                ("batch_size", self.args.batch_size), ("max_source_length", self.args.max_source_length),
                ("max_prompt_length", self.args.max_prompt_length)) if v is not None)
            self._lm = get_model("layalign").create_from_arg_string(model_args, {})
            # our YAMLs read `{benchmark}_data` from the metadata, as `--data` gives it to our side
            self._manager = TaskManager(include_path=str(tasks_dir()),
                                        metadata={f"{b}_data": path for b, path in self.args.data.items()})
        name = f"{comparison.prefix}_{lang}"
        gen_kwargs = (f"max_gen_toks={self.new_tokens(comparison)}"
                      if comparison.scoring == "generate" else None)
        start = time.perf_counter()
        results = lm_eval.simple_evaluate(model=self._lm, tasks=[name], limit=self.args.limit,
                                          task_manager=self._manager, gen_kwargs=gen_kwargs, log_samples=True,
                                          bootstrap_iters=0)
        seconds = time.perf_counter() - start
        samples = [{"doc_id": s["doc_id"], "id": s["doc"]["id"], "prompt": s["doc"]["prompt"],
                    "resps": s["resps"], **{m: s[m] for m in ("acc", "acc_paper") if m in s}}
                   for s in sorted(results["samples"][name], key=lambda s: s["doc_id"])]
        _write_json(unit / "lm_eval.json", {"seconds": seconds, "results": results["results"][name],
                                            "samples": samples})
        print(f"{comparison.key} {lang}: lm_eval done", flush=True)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False) + "\n")
    tmp.replace(path)  # a kill leaves no half-written file that a rerun would take as finished


# --- comparing ----------------------------------------------------------------------------------------------------

def compare_unit(comparison: Comparison, unit: Path) -> dict[str, Any] | None:
    """One language's agreement, or None while either side is unfinished."""
    from layalign.evaluation.run import load_predictions
    from layalign.evaluation.scoring import extract_answer, is_correct

    if not ((unit / "ours.json").is_file() and (unit / "lm_eval.json").is_file()):
        return None
    ours = {row["id"]: row for row in load_predictions(unit / "ours" / "predictions.jsonl")}
    harness = json.loads((unit / "lm_eval.json").read_text())
    samples = harness["samples"]
    choices = get_task(comparison.benchmark).choices
    same = same_prompt = 0
    max_diff = 0.0
    differing: list[dict[str, str]] = []  # the rows whose predictions differ, for the page
    acc = {"ours": 0, "lm_eval": 0}
    paper = {"ours": 0, "lm_eval": 0}
    for sample in samples:
        row = ours[sample["id"]]
        same_prompt += sample["prompt"] == row["prompt"]
        if comparison.scoring == "choices":
            lls = [resp[0][0] for resp in sample["resps"]]
            picked = choices[max(range(len(choices)), key=lls.__getitem__)]
            same += picked == row["output"]
            if picked != row["output"]:
                differing.append({"id": sample["id"], "lm_eval": picked, "ours": row["output"]})
            # predictions.jsonl keeps 4 decimals, so differences below 5e-5 are rounding
            max_diff = max(max_diff, *(abs(ll - row["choice_logprobs"][c]) for ll, c in zip(lls, choices)))
        else:
            same += sample["resps"][0][0] == row["output"]
            if sample["resps"][0][0] != row["output"]:
                differing.append({"id": sample["id"], "lm_eval": sample["resps"][0][0], "ours": row["output"]})
            paper["ours"] += is_correct(comparison.benchmark, extract_answer(comparison.benchmark, row["output"],
                                                                             "paper"), row["gold"], "paper")
            paper["lm_eval"] += sample["acc_paper"]
        acc["ours"] += bool(row["correct"])
        acc["lm_eval"] += sample["acc"]
    n = len(samples)
    return {"n": n, "ours_rows": len(ours), "same": same, "same_prompt": same_prompt,
            "acc": {k: 100 * v / n for k, v in acc.items()},
            "acc_paper": {k: 100 * v / n for k, v in paper.items()} if comparison.scoring == "generate" else None,
            "max_ll_diff": max_diff if comparison.scoring == "choices" else None,
            "truncated": sum(1 for row in ours.values() if row.get("truncated")), "differing": differing,
            "outputs": sorted({row["output"] for row in ours.values()}),
            "seconds": {"ours": json.loads((unit / "ours.json").read_text())["seconds"],
                        "lm_eval": harness["seconds"]}}


def report(out: Path, comparisons: list[Comparison], settings: dict[str, Any], command: str,
           langs: str | None, also: list[Path] = ()) -> str:
    """The whole results page: what was run, the summary table, per-language tables, what is missing; then a
    section for each of `also` (other --out folders of this script, e.g. another model)."""
    main_section, details = _section(out, comparisons, settings, command, langs)
    lines = [_INTRO, main_section, _NOTES, *details]
    for other in also:
        if not (other / "settings.json").is_file():
            lines += [f"## Also: {other}", "", f"(not run yet: {other} holds no results of this script)", ""]
            continue
        other_settings = json.loads((other / "settings.json").read_text())
        recorded = other / "command.txt"
        other_command = recorded.read_text().strip() if recorded.is_file() else f"(no command.txt in {other})"
        other_comparisons = [c for c in COMPARISONS.values() if (other / c.key).is_dir()]
        section, other_details = _section(other, other_comparisons, other_settings, other_command, None)
        lines += [f"## Also: {describe_model(other_settings).removeprefix('Model: ').rstrip('.')}", "",
                  "Another run of this script, added to this page with `--also` (a second model: where the first "
                  "answers nearly everything alike, identical texts from one whose answers vary test more):", "",
                  section,
                  *(d.replace("### ", "#### ", 1) for d in other_details)]
    lines.append(_TESTS)
    return "\n".join(lines)


def _section(out: Path, comparisons: list[Comparison], settings: dict[str, Any], command: str,
             langs: str | None) -> tuple[str, list[str]]:
    """One run's command, model, summary table and what is missing; and its per-language tables."""
    summary, details, missing = [], [], []
    for comparison in comparisons:
        units = {lang: compare_unit(comparison, out / comparison.key / lang) for lang in _langs(comparison, langs)}
        done = {lang: u for lang, u in units.items() if u is not None}
        absent = [lang for lang, u in units.items() if u is None]
        if absent:
            missing.append(f"{comparison.key}: {', '.join(absent)}")
        if not done:
            continue
        summary.append(_summary_row(comparison, done))
        details.append(_detail_table(comparison, done))
    lines = ["```bash", f"HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=1 {command}", "```", "",
             f"Settings: {_settings_text(settings)}. What counts here is that the two sides agree; the model's "
             "accuracy itself is not the point.", "", describe_model(settings), ""]
    if settings.get("mgsm_max_new_tokens"):
        lines += [f"MGSM's generation is cut at {settings['mgsm_max_new_tokens']} new tokens on both sides (the task "
                  f"generates up to {get_task('mgsm').max_new_tokens}; the harness gets it as gen_kwargs "
                  f"max_gen_toks), to fit the CPU time: the comparison holds for those tokens.", ""]
    if summary:
        lines += ["| comparison | lm_eval tasks | rows x languages | same prompts | same predictions | acc (lenient) "
                  "lm_eval / ours | acc_paper lm_eval / ours | max abs loglik difference | seconds lm_eval / ours |",
                  "|---|---|---|---|---|---|---|---|---|", *summary, ""]
    if missing:
        lines += ["**Not finished** (rerun the command above: it skips what is done and runs these):", "",
                  *(f"- {m}" for m in missing), ""]
    else:
        lines += ["Every comparison finished.", ""]
    return "\n".join(lines), details


def describe_model(settings: dict[str, Any]) -> str:
    """A line on what --model was, from its config and, for a training run's output, its train_config.yaml."""
    model = settings["model"]
    if settings.get("randomize_adapters") is not None:
        return (f"Model: the untrained pair `{model}` with adapters and gates random at scale "
                f"{settings['randomize_adapters']} (`layalign.testing.randomize_adapters`).")
    if model.startswith("llm:"):
        return f"Model: the bare LLM `{model[4:]}`."
    config_path = Path(model) / "layalign_config.json"
    if not config_path.is_file():
        return f"Model: `{model}`."
    config = json.loads(config_path.read_text())
    text = f"Model: `{model}`, {config.get('variant')} on {config.get('encoder')} + {config.get('llm')}"
    train_config = Path(model).parent / "train_config.yaml"
    if train_config.is_file():
        import yaml

        recipe = yaml.safe_load(train_config.read_text())
        data = ", ".join(str(d.get("reader")) for d in recipe.get("train_data") or [])
        text += (f", trained by this project ({recipe.get('stage')} stage on {data}, "
                 f"{recipe.get('max_steps')} steps, {train_config} beside it)")
    adapters = Path(model) / "adapter.safetensors"
    if adapters.is_file():
        from safetensors.torch import load_file

        gates = load_file(adapters).get("gates")
        if gates is not None:  # zero gates would leave the LLM unchanged and the comparison blind to fusion
            text += f"; its fusion gates reach |g| = {gates.float().abs().max().item():.2g}"
    return text + "."


def _summary_row(comparison: Comparison, done: dict[str, dict]) -> str:
    n = sum(u["n"] for u in done.values())
    rows = {u["n"] for u in done.values()}
    shape = f"{rows.pop()} x {len(done)}" if len(rows) == 1 else f"{n} rows, {len(done)} languages"
    same = sum(u["same"] for u in done.values())
    prompts = sum(u["same_prompt"] for u in done.values())
    paper = (_pair(_pooled(done, "acc_paper", "lm_eval", n), _pooled(done, "acc_paper", "ours", n))
             if comparison.scoring == "generate" else "(not a metric of choice tasks)")
    diff = (f"{max(u['max_ll_diff'] for u in done.values()):.1e}" if comparison.scoring == "choices"
            else "(generation)")
    seconds = {side: sum(u["seconds"][side] for u in done.values()) for side in ("lm_eval", "ours")}
    outputs = {text for u in done.values() for text in u["outputs"]}
    # few distinct outputs (a model that says little) make identical texts a weaker check: say how many
    what = (f"identical label; {len(outputs)} labels" if comparison.scoring == "choices"
            else f"identical text; {len(outputs)} distinct texts")
    return (f"| {comparison.title()} | `{comparison.prefix}_*` | {shape} | {prompts} / {n} | {same} / {n} ({what}) | "
            f"{_pair(_pooled(done, 'acc', 'lm_eval', n), _pooled(done, 'acc', 'ours', n))} | {paper} | {diff} | "
            f"{seconds['lm_eval']:.0f} / {seconds['ours']:.0f} |")


def _pooled(done: dict[str, dict], metric: str, side: str, n: int) -> float:
    # every language has the same number of rows at a fixed --limit, so pooled = the unweighted language average
    return sum(u[metric][side] * u["n"] for u in done.values()) / n


def _pair(a: float, b: float) -> str:
    return f"{a:.1f} / {b:.1f}"


def _detail_table(comparison: Comparison, done: dict[str, dict]) -> str:
    head = ["language", "rows", "same predictions", "acc lm_eval / ours"]
    if comparison.scoring == "generate":
        head.append("acc_paper lm_eval / ours")
    else:
        head.append("max abs loglik difference")
    head += ["inputs cut", "seconds lm_eval / ours"]
    lines = [f"### {comparison.title()} per language", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for lang, u in done.items():
        cells = [lang, str(u["n"]), f"{u['same']} / {u['n']}", _pair(u["acc"]["lm_eval"], u["acc"]["ours"])]
        if comparison.scoring == "generate":
            cells.append(_pair(u["acc_paper"]["lm_eval"], u["acc_paper"]["ours"]))
        else:
            cells.append(f"{u['max_ll_diff']:.1e}")
        cells += [str(u["truncated"]), f"{u['seconds']['lm_eval']:.0f} / {u['seconds']['ours']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    differing = [d for u in done.values() for d in u["differing"]]
    if differing:
        lines += ["", f"Rows whose predictions differ ({len(differing)}; first 10):", "",
                  "| row | lm_eval | ours |", "|---|---|---|"]
        lines += [f"| {d['id']} | {_cell(d['lm_eval'])} | {_cell(d['ours'])} |" for d in differing[:10]]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return "`" + text.replace("\n", "\\n").replace("|", "\\|").replace("`", "'")[:120] + "`"


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None)


def _command(argv: list[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    args = [a for a in args if a != "--report-only"]
    return "python scripts/lm_eval_parity.py " + " ".join(shlex.quote(a) for a in args)


_INTRO = """# lm-eval parity: `layalign evaluate` and lm_eval on the same rows

What is compared: one model and the same rows through `layalign evaluate` (`layalign.evaluation.run.evaluate`) and
through lm-evaluation-harness (`lm_eval.simple_evaluate` with the model `layalign`, built from its model_args as
`simple_evaluate(model="layalign", model_args=...)` builds it, on our task YAMLs), with the same dtype, batch size
and input lengths on both sides. Generated by `scripts/lm_eval_parity.py` (this page is its output; do not edit
it by hand), with this command:
"""

_NOTES = """Columns: *same prompts*: the harness's rendered context equals our prompt; *same predictions*: the same
generated text, or the same most likely label (with the number of distinct texts, or labels, the model produced: a
model that answers nearly everything alike tests less); *acc*: the lenient reading of the answer (`acc` of our
tasks, `correct` in predictions.jsonl), *acc_paper*: the authors' protocol (`acc_paper` of our tasks; for ours, the
output read again with `layalign.evaluation.scoring` under "paper"); both pooled over all rows, which at a fixed
number of rows per language is the unweighted average over languages (what an lm_eval group reports). *max abs
loglik difference*: over every row and label, between the harness's log-likelihood and predictions.jsonl's
`choice_logprobs`, which keeps 4 decimals (so up to 5e-05 is rounding). *inputs cut* (per language): rows whose
source or prompt was longer than the model's input lengths and cut to them, as predictions.jsonl records it; both
sides load the model with the same lengths, so the harness's rows are cut alike. *seconds*: wall time of each side,
model loading excluded (each side loads the model once; lm_eval's include the building of each task), on this
project's 2-core CPU machine while another job used the other core: they say nothing about which path is faster.
"""

_TESTS = """## What the tests check

- `tests/test_lm_eval.py::test_the_harness_gives_our_answers_and_accuracy` (tiny random models, CI): for each of
  LayAlign, MindMerger, LangBridge (adapters randomised), an llm-lora directory and the bare LLM (`llm:PATH`), 2 rows
  of MGSM sw, MSVAMP th, XNLI ur (generation), XNLI sw (choices), X-CSQA zh (generation, fixture) and X-CSQA en
  (choices, fixture): identical prompts, identical generated texts, choice log-likelihoods equal within 1e-3, and
  equal `acc` (lenient) and `acc_paper` (the authors' protocol).
- `tests/test_lm_eval.py::test_the_harness_matches_layalign_evaluate_on_the_default_pair` (`-m real`): the same
  checks on the real default pair (multilingual-e5-small + SmolLM2-135M-Instruct, adapters random at scale 0.05 so
  that the gates are non-zero), 2 rows of each of those six tasks, 24 new tokens.
- `tests/test_lm_eval.py::test_data_parallel_ranks_give_the_single_process_results` (`slow`; two CPU processes
  through `accelerate launch --multi_gpu` with `device=cpu`, tiny model): each rank builds its share of the
  documents and rank 0 gathers the same samples and accuracy as one process (see
  [../lm-eval.md](../lm-eval.md#data-parallel)).
- `tests/test_lm_eval.py::test_the_parity_script_compares_both_sides_resumably` (tiny model): this page's script
  on 2 rows of XNLI sw (choices) and MGSM sw reports full agreement, a rerun runs nothing, and a rerun with other
  settings into the same folder is refused.
"""


if __name__ == "__main__":
    raise SystemExit(main())
