"""Collect what scripts/reproduce_xnli.sh produced into docs/results/reproduction.md (tables, charts, heatmaps,
training curves, wall times). Everything here is read from the run folder; the discussion is written by hand
in docs/results/reproduction-discussion.md and appended.

    python scripts/reproduction_report.py [--run runs/reproduction] [--out docs/results]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import platform
import shutil
import statistics
from pathlib import Path

from layalign.evaluation import load_predictions, load_results
from layalign.evaluation.report import protocol_of
from layalign.tasks import get_task

XNLI = get_task("xnli")  # the labels and the low-resource group come from the benchmark registry
SYSTEMS = [("llm-only", "LLM only (prompted, no training)"), ("langbridge-s0", "Linear, no prompt, 2-stage, seed 0"),
           ("mindmerger-s0", "MindMerger, seed 0"), ("mindmerger-s1", "MindMerger, seed 1"),
           ("layalign-s0", "LayAlign, seed 0"), ("layalign-s1", "LayAlign, seed 1")]


def log(path: Path) -> list[dict]:
    """The records of a training log (train_log.jsonl)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def minutes(folder: Path) -> str:
    """Wall time of a training stage: from its recipe being written to its final/ adapters (a stage that a rerun
    found finished rewrote its recipe after the fact: its time is not known from the files)."""
    start = (folder / "train_config.yaml").stat().st_mtime
    seconds = (folder / "final" / "adapter.safetensors").stat().st_mtime - start
    return f"{seconds / 60:.1f}" if seconds > 30 else "(finished before a rerun)"


def training_rows(run: Path) -> list[str]:
    rows = ["| system | stage | steps | mean loss, first 10 steps | mean loss, last 10 steps | dev perplexity "
            "(start -> best) | wall time, min |", "|---|---|---:|---:|---:|---|---:|"]
    for name, label in SYSTEMS[1:]:
        for stage in ("translation", "task"):
            folder = run / name / stage
            if not (folder / "train_log.jsonl").is_file():
                continue
            records = log(folder / "train_log.jsonl")
            steps = [r for r in records if "loss" in r]
            losses = [r["loss"] for r in steps]
            dev = [r["dev_ppl"] for r in records if "dev_ppl" in r]
            rows.append(f"| {label} | {stage} | {steps[-1]['step']} | {statistics.mean(losses[:2]):.3f} | "
                        f"{statistics.mean(losses[-2:]):.3f} | {dev[0]:.2f} -> {min(dev):.2f} | "
                        f"{minutes(folder)} |")
    return rows


def accuracy_summary(run: Path, folder: str = "eval") -> list[str]:
    """Average accuracy per system, and seen / unseen-language averages (seen = the task stage's languages), with
    each run's scoring protocol and truncated inputs ("–": not reported by runs from before they were counted)."""
    seen = {"en", "de", "es", "fr", "sw", "tr", "vi", "zh"}
    rows = [f"| system | avg (15) | seen in task training (8) | unseen (7) | low-resource "
            f"({', '.join(XNLI.low_resource)}) | protocol | truncated inputs |", "|---|---:|---:|---:|---:|---|---:|"]
    for name, label in SYSTEMS:
        if not (run / folder / name / "results.json").is_file():
            continue
        results = load_results(run / folder / name)
        acc = {lang: values["accuracy"] for lang, values in results["per_language"].items()}
        unseen = [v for lang, v in acc.items() if lang not in seen]
        low = [acc[lang] for lang in XNLI.low_resource if lang in acc]
        rows.append(f"| {label} | {statistics.mean(acc.values()):.1f} | "
                    f"{statistics.mean(acc[lang] for lang in acc if lang in seen):.1f} | "
                    f"{statistics.mean(unseen):.1f} | {statistics.mean(low):.1f} | {protocol_of(results)} | "
                    f"{'–' if results.get('truncated') is None else results['truncated']} |")
    return rows


def calibrated_summary(run: Path, names: list[tuple[str, str]]) -> list[str]:
    """Choice-scored accuracy with each system's label prior taken out: every label's log-likelihood minus its mean
    over all evaluated rows (no gold labels used), then the argmax. A system that only learned a label prior falls
    to chance here; one that reads the input keeps its accuracy."""
    labels = XNLI.choices
    seen = {"en", "de", "es", "fr", "sw", "tr", "vi", "zh"}
    rows = ["| system | accuracy | prior-free accuracy | prior-free, seen languages | prior-free, unseen |",
            "|---|---:|---:|---:|---:|"]
    for name, label in names:
        path = run / "eval-choices" / name / "predictions.jsonl"
        if not path.is_file():
            continue
        predictions = load_predictions(path)
        mean = {k: statistics.mean(p["choice_logprobs"][k] for p in predictions) for k in labels}
        zero = dict.fromkeys(labels, 0.0)
        rows.append(f"| {label} | {_accuracy(predictions, zero):.1f} | {_accuracy(predictions, mean):.1f} | "
                    f"{_accuracy([p for p in predictions if p['lang'] in seen], mean):.1f} | "
                    f"{_accuracy([p for p in predictions if p['lang'] not in seen], mean):.1f} |")
    return rows


def _accuracy(predictions: list[dict], offset: dict[str, float]) -> float:
    """Accuracy of the argmax of log-likelihood minus `offset`, per label."""
    def pick(p: dict) -> str:
        return max(offset, key=lambda k: p["choice_logprobs"][k] - offset[k])
    return 100 * sum(pick(p) == p["gold"] for p in predictions) / len(predictions)


def prediction_mix(run: Path, folder: str = "eval") -> list[str]:
    """How often each system answers each label (the gold labels are balanced: a system that always answers one
    label, or guesses with any fixed mix, scores 33.3 %)."""
    rows = ["| system | entailment | neutral | contradiction | no label word | gold mix (e / n / c) |",
            "|---|---:|---:|---:|---:|---|"]
    return rows + prediction_mix_rows(run, SYSTEMS, folder)


def prediction_mix_rows(run: Path, names: list[tuple[str, str]], folder: str = "eval-choices") -> list[str]:
    rows = []
    for name, label in names:
        path = run / folder / name / "predictions.jsonl"
        if not path.is_file():
            continue
        predictions = load_predictions(path)
        answers = collections.Counter(p["answer"] for p in predictions)
        golds = collections.Counter(p["gold"] for p in predictions)
        share = {k: 100 * v / len(predictions) for k, v in answers.items()}
        gold_mix = " / ".join(f"{100 * golds[k] / len(predictions):.0f}" for k in XNLI.choices)
        rows.append(f"| {label} | {share.get('entailment', 0):.0f} % | {share.get('neutral', 0):.0f} % | "
                    f"{share.get('contradiction', 0):.0f} % | {share.get(None, 0):.0f} % | {gold_mix} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/reproduction")
    parser.add_argument("--out", default="docs/results")
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    figures = out / "reproduction"
    figures.mkdir(parents=True, exist_ok=True)
    for source, target in [(run / "compare" / "compare.png", "xnli-accuracy.png"),
                           (run / "compare-choices" / "compare.png", "xnli-accuracy-choices.png"),
                           (run / "compare-translation" / "compare.png", "translation-chrf.png"),
                           (run / "compare" / "layalign-s0-fusion.png", "layalign-s0-fusion.png"),
                           (run / "compare" / "layalign-s1-fusion.png", "layalign-s1-fusion.png")]:
        if source.is_file():
            shutil.copy(source, figures / target)
    recipe = (Path("configs/reproduction/layalign.yaml")).read_text()
    steps = next(line.split(":")[1].strip() for line in recipe.splitlines() if line.startswith("max_steps"))
    translation = Path("configs/reproduction/translation.yaml").read_text()
    t_steps = next(line.split(":")[1].strip() for line in translation.splitlines() if line.startswith("max_steps"))
    total = next((line for line in (run / "wall_time.txt").read_text().splitlines()), "") if (
        run / "wall_time.txt").is_file() else "not recorded"
    limit = load_results(run / "eval" / "layalign-s0")["n"] // 15
    choices = run / "compare-choices" / "compare.md"
    choice_limit = load_results(run / "eval-choices" / "layalign-s0")["n"] // 15 if choices.is_file() else 0
    choice_section = [
        "## XNLI dev accuracy per language, choice scoring (%)",
        "",
        f"The first {choice_limit} dev rows of every language; each system's answer is the label word to which it "
        "gives the highest log-likelihood after the prompt (`layalign evaluate --scoring choices`), so a model is "
        "measured on which label it prefers even where it would not write one.",
        "",
        choices.read_text().strip() if choices.is_file() else "",
        "",
        "![XNLI accuracy, choice scoring](reproduction/xnli-accuracy-choices.png)",
        "",
        *accuracy_summary(run, "eval-choices"),
        "",
        *prediction_mix(run, "eval-choices"),
        "",
        *calibrated_summary(run, SYSTEMS),
        "",
    ] if choices.is_file() else []
    longer = sorted(run.glob("compare-choices-*/compare.md"))
    for table in longer:
        steps = table.parent.name.rsplit("-", 1)[1]
        names = [(f"mindmerger-s0-{steps}", f"MindMerger, {steps} steps, seed 0"),
                 (f"layalign-s0-{steps}", f"LayAlign, {steps} steps, seed 0")]
        n = load_results(run / "eval-choices" / names[1][0])["n"] // 15
        wall = run / "wall_time_longer.txt"
        choice_section += [
            f"## A longer task stage: {steps} steps, LayAlign vs MindMerger (seed 0)",
            "",
            f"`bash scripts/reproduce_xnli_longer.sh` (STEPS={steps}): the same recipes and stage-1 models, {steps} "
            "task steps instead of 100, frozen models in bf16 under autocast; XNLI dev by choice scoring on the "
            f"first {n} rows per language. Wall time: {wall.read_text().strip() if wall.is_file() else 'not recorded'}"
            " (two trainings at a time, one thread each).",
            "",
            table.read_text().strip(),
            "",
            *calibrated_summary(run, names),
            "",
            *prediction_mix(run, "eval-choices")[:2],
            *prediction_mix_rows(run, names),
            "",
        ]

    text = [
        "# Small-scale reproduction: LayAlign vs MindMerger vs a linear no-prompt variant vs the bare LLM on XNLI",
        "",
        f"- date: {dt.date.today()}; machine: {platform.machine()}, 2 CPU cores, no GPU; torch "
        f"{__import__('torch').__version__}, transformers {__import__('transformers').__version__}",
        "- models: multilingual-e5-small (encoder, frozen) + SmolLM2-135M-Instruct (LLM, frozen), from the offline "
        "catalogue",
        "- command: `bash scripts/reproduce_xnli.sh` (then `python scripts/reproduction_report.py`); recipes in "
        "`configs/reproduction/`",
        f"- budget, the same for every trained system: stage 1 (translation, X -> English pairs from "
        f"`../shared/data/parallel` in the 14 non-English XNLI languages, 1,000 per corpus and language) "
        f"{t_steps} steps at batch 8, lr 5e-4; stage 2 (XNLI training JSONL) {steps} steps at batch 8, lr 1e-3; "
        "AdamW (0.8, 0.999), eps 1e-8, wd 3e-7, cosine with 5 % warm-up, fp32; the checkpoint with the lowest dev "
        "perplexity of each stage is kept (stage 2 starts from stage 1's)",
        "- task data: MindMerger and LayAlign 1,000 examples in each of en de es fr sw tr vi zh; the linear no-prompt "
        "variant 8,000 English examples after the same translation stage (not LangBridge as published: see "
        "docs/baselines.md and scripts/comparison.py); LLM only: the bare LLM prompted with the same XNLI template "
        "(not fine-tuned)",
        f"- evaluation: the first {limit} XNLI dev rows of every one of the 15 languages (the same rows, translated), "
        "greedy, 5 new tokens, the label word extracted from the output; and, by choice scoring (the most likely "
        f"of the three label words), the first {choice_limit} rows",
        "- seeds: 0 and 1 for MindMerger and LayAlign (both stages), 0 for the linear no-prompt variant",
        f"- wall time of the whole script: {total} (two trainings at a time, one thread each)",
        "",
        "## XNLI dev accuracy per language, generation (%)",
        "",
        (run / "compare" / "compare.md").read_text().strip(),
        "",
        "![XNLI accuracy](reproduction/xnli-accuracy.png)",
        "",
        "### Averages: seen and unseen languages",
        "",
        *accuracy_summary(run),
        "",
        "### Which labels each system answers",
        "",
        *prediction_mix(run),
        "",
        *choice_section,
        "## Training",
        "",
        *training_rows(run),
        "",
        "## Stage 1: translation quality (NTREX-128, held out from training)",
        "",
        (run / "compare-translation" / "compare.md").read_text().strip(),
        "",
        "![translation chrF](reproduction/translation-chrf.png)",
        "",
        "## What the trained LayAlign fuses: gates and layer-mix weights",
        "",
        "```",
        (run / "inspect.txt").read_text().strip(),
        "```",
        "",
        "![LayAlign seed 0](reproduction/layalign-s0-fusion.png)",
        "![LayAlign seed 1](reproduction/layalign-s1-fusion.png)",
        "",
    ]
    discussion = out / "reproduction-discussion.md"
    if discussion.is_file():
        text += [discussion.read_text().strip(), ""]
    (out / "reproduction.md").write_text("\n".join(text), encoding="utf-8")
    print(f"wrote {out / 'reproduction.md'}")


if __name__ == "__main__":
    main()
