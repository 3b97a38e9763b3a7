"""Benchmark evaluation, per language, and side-by-side comparison of runs.

A run directory holds:
- `run.json`: what the run is (benchmark, system name, max_new_tokens), so that a resumed run cannot silently mix
  two systems or two settings in one file;
- `predictions.jsonl`: one row per example, appended batch by batch, so a killed run resumes where it stopped;
- `results.json`, `results.md`, `results.csv` and a bar chart, all recomputed from `predictions.jsonl` (the one
  source of truth: the table's accuracy is exactly the fraction of correct rows in that file).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from layalign.answers import TRANSLATION, extract_answer, is_correct, translation_scores
from layalign.data.examples import EvalExample
from layalign.data.prompts import XNLI_LABELS

# the paper generates up to 512 tokens for chain-of-thought maths; a label or a letter needs only a few, and a
# sentence translation a few hundred at most
DEFAULT_MAX_NEW_TOKENS = {"mgsm": 512, "msvamp": 512, "xcsqa": 16, "xnli": 16, "translation": 256}

# "choices" scoring: the answers a classification benchmark allows, each written as its training target is; the
# system's answer is the one with the highest log-likelihood (the way lm-evaluation-harness scores XNLI), so a
# model that does not follow the answer format is still measured on what it prefers
CHOICES = {"xnli": XNLI_LABELS, "xcsqa": ("A", "B", "C", "D", "E")}
SCORING = ("generate", "choices")

PREDICTIONS = "predictions.jsonl"
RUN_RECORD = "run.json"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
COMPARE_DEFAULT_OUT = "runs/compare"

AVG = "Avg"
LOW_AVG = "Low-resource avg"


class System(Protocol):
    """What `layalign.systems.load_system` returns (only these two members are used here)."""

    name: str

    def generate(self, sources: list[str], prompts: list[str | None], max_new_tokens: int) -> list[str]: ...

    def score_choices(self, sources: list[str], prompts: list[str | None],
                      choices: list[str]) -> list[list[float]]: ...


# --- evaluation ----------------------------------------------------------------------------------------------


def evaluate(
    system: System,
    benchmark: str,
    examples_by_lang: dict[str, list[EvalExample]],
    out_dir: str | Path,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    progress: bool = True,
    *,
    name: str | None = None,
    low_resource: Iterable[str] | None = None,
    scoring: str = "generate",
) -> dict:
    """Answer every example not yet in `out_dir/predictions.jsonl`, then (re)write the results files from the
    whole predictions file and return the results dict (see `score_predictions`).

    name: the system's name in tables (default `system.name`); low_resource: the languages averaged separately
    (default: `layalign.data.readers.LOW_RESOURCE[benchmark]`); scoring: "generate" (greedy generation, the answer
    extracted from the text, as the paper) or "choices" (the allowed answer with the highest log-likelihood; XNLI
    and X-CSQA only).
    """
    if benchmark not in DEFAULT_MAX_NEW_TOKENS:
        raise ValueError(f"unknown benchmark {benchmark!r}")
    if scoring not in SCORING:
        raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORING)}")
    if scoring == "choices" and benchmark not in CHOICES:
        raise ValueError(f"choice scoring needs a fixed set of answers; {benchmark} has none "
                         f"(it works for {', '.join(CHOICES)})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or system.name
    max_new_tokens = max_new_tokens or DEFAULT_MAX_NEW_TOKENS[benchmark]
    _check_run_record(out, {"benchmark": benchmark, "system": name, "max_new_tokens": max_new_tokens,
                            "scoring": scoring})

    pred_path = out / PREDICTIONS
    done = {_key(row) for row in load_predictions(pred_path, repair=True)}
    wanted = [ex for examples in examples_by_lang.values() for ex in examples]
    pending = [ex for ex in wanted if (ex.lang, ex.id) not in done]
    extra = len(done - {(ex.lang, ex.id) for ex in wanted})
    if extra:
        print(f"note: {pred_path} also holds {extra} earlier rows outside this request; they are scored too",
              file=sys.stderr)

    _predict_into(system, benchmark, pending, pred_path, batch_size, max_new_tokens, scoring,
                  progress=progress, total=len(wanted), desc=f"{benchmark} {name}")

    low = set(low_resource) if low_resource is not None else _default_low_resource(benchmark)
    results = score_predictions(benchmark, load_predictions(pred_path), low)
    results.update(system=name, max_new_tokens=max_new_tokens, scoring=scoring)
    write_results(results, out)
    return results


def _predict_into(system: System, benchmark: str, examples: list[EvalExample], pred_path: Path, batch_size: int,
                  max_new_tokens: int, scoring: str, *, progress: bool, total: int, desc: str) -> None:
    """Answer in batches and append one row per example; each batch is flushed so a kill loses at most one."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=total - len(examples), desc=desc, unit="ex", disable=not progress)
    with open(pred_path, "a", encoding="utf-8") as f:
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            sources, prompts = [ex.source for ex in batch], [ex.prompt for ex in batch]
            if scoring == "choices":
                outputs, extras = _choose(system, CHOICES[benchmark], sources, prompts)
            else:
                outputs = system.generate(sources, prompts, max_new_tokens)
                extras = [{}] * len(outputs)
            if len(outputs) != len(batch):
                raise RuntimeError(f"system returned {len(outputs)} outputs for {len(batch)} inputs")
            for ex, output, extra in zip(batch, outputs, extras, strict=True):
                row = prediction_row(benchmark, ex, output) | extra
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            bar.update(len(batch))
    bar.close()


def _choose(system: System, choices: tuple[str, ...], sources: list[str],
            prompts: list[str | None]) -> tuple[list[str], list[dict]]:
    """The most likely choice of every example is its output; the row keeps every choice's log-likelihood."""
    outputs, extras = [], []
    for row in system.score_choices(sources, prompts, list(choices)):
        outputs.append(choices[max(range(len(choices)), key=row.__getitem__)])
        extras.append({"choice_logprobs": dict(zip(choices, (round(x, 4) for x in row), strict=True))})
    return outputs, extras


def prediction_row(benchmark: str, example: EvalExample, output: str) -> dict:
    """One predictions.jsonl row. `correct` is None for translation (scored over the corpus)."""
    answer = extract_answer(benchmark, output)
    correct = None if benchmark in TRANSLATION else is_correct(benchmark, answer, example.gold)
    return {"id": example.id, "lang": example.lang, "prompt": example.prompt, "source": example.source,
            "output": output, "answer": answer, "gold": example.gold, "correct": correct}


def load_predictions(path: str | Path, repair: bool = False) -> list[dict]:
    """The rows of a predictions file ([] if absent). Rows are written whole, newline last, so only text after
    the last newline can be a line cut off by a kill: it is dropped (with repair=True also cut from the file, so
    that appending goes on cleanly). A bad line anywhere else is an error."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    *complete, tail = data.split(b"\n")
    rows = []
    for i, line in enumerate(complete):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {i + 1} is not valid JSON ({err})") from None
    if tail.strip():
        try:
            rows.append(json.loads(tail))  # a whole row that only lacks its newline (edited by hand): keep it
            fix = "newline"
        except json.JSONDecodeError:
            fix = "truncate"
        if repair:
            with open(path, "r+b") as f:
                if fix == "newline":
                    f.seek(0, 2)
                    f.write(b"\n")
                else:
                    f.truncate(len(data) - len(tail))
    return rows


def _key(row: dict) -> tuple[str, str]:
    return str(row["lang"]), str(row["id"])


def _check_run_record(out: Path, record: dict) -> None:
    """Refuse to resume a run of another benchmark, system, max_new_tokens or scoring into the same directory."""
    path = out / RUN_RECORD
    if path.exists():
        old = {"scoring": "generate"} | json.loads(path.read_text(encoding="utf-8"))  # runs from before scoring
        diff = {k: (old.get(k), v) for k, v in record.items() if old.get(k) != v}
        if diff and (out / PREDICTIONS).exists():
            details = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
            raise ValueError(f"{out} holds another run ({details}); choose another --out or delete it")
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _default_low_resource(benchmark: str) -> set[str]:
    try:
        from layalign.data import LOW_RESOURCE
    except ImportError:  # readers not installed yet: no separate low-resource average
        return set()
    return set(LOW_RESOURCE.get(benchmark, ()))


# --- scoring -------------------------------------------------------------------------------------------------


def metrics_of(benchmark: str) -> list[str]:
    return ["chrf", "bleu"] if benchmark in TRANSLATION else ["accuracy"]


def score_predictions(benchmark: str, rows: list[dict], low_resource: Iterable[str] = ()) -> dict:
    """Per-language scores (percentages), their unweighted average, and the average over the low-resource
    languages present (None if none is). Languages keep their order of first appearance in `rows`; a repeated
    (lang, id) counts once."""
    by_lang: dict[str, list[dict]] = {}
    seen: set[tuple[str, str]] = set()
    for row in rows:
        if _key(row) not in seen:
            seen.add(_key(row))
            by_lang.setdefault(row["lang"], []).append(row)

    per_lang = {lang: _score_lang(benchmark, lang_rows) for lang, lang_rows in by_lang.items()}
    low = [lang for lang in by_lang if lang in set(low_resource)]
    metrics = metrics_of(benchmark)
    return {
        "benchmark": benchmark,
        "metrics": metrics,
        "languages": list(by_lang),
        "per_language": per_lang,
        "average": {m: _mean(per_lang[lang][m] for lang in by_lang) for m in metrics},
        "low_resource_languages": low,
        "low_resource_average": {m: _mean(per_lang[lang][m] for lang in low) for m in metrics},
        "n": sum(len(r) for r in by_lang.values()),
    }


def _score_lang(benchmark: str, rows: list[dict]) -> dict:
    if benchmark in TRANSLATION:
        return {"n": len(rows), **translation_scores([r["answer"] or "" for r in rows], [r["gold"] for r in rows])}
    correct = sum(bool(r["correct"]) for r in rows)
    return {"n": len(rows), "correct": correct, "accuracy": 100.0 * correct / len(rows)}


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


# --- tables and charts ---------------------------------------------------------------------------------------

# one table row: (label, metric, {lang: value}, avg, low-resource avg)
Row = tuple[str, str, dict[str, float | None], float | None, float | None]


def table_rows(results: dict, label: str | None = None) -> list[Row]:
    """The rows one run contributes to a table: one per metric."""
    label = label or results["system"]
    metrics = results["metrics"]
    rows = []
    for m in metrics:
        row_label = label if len(metrics) == 1 else f"{label} ({_METRIC_NAMES[m]})"
        values = {lang: s[m] for lang, s in results["per_language"].items()}
        rows.append((row_label, m, values, results["average"][m], results["low_resource_average"][m]))
    return rows


_METRIC_NAMES = {"accuracy": "accuracy", "chrf": "chrF", "bleu": "BLEU"}


def markdown_table(langs: list[str], rows: list[Row], low_resource: Iterable[str] = ()) -> str:
    """Systems as rows, languages then Avg and Low-resource avg as columns; one decimal, "–" where missing.
    Low-resource languages are marked with *."""
    low = set(low_resource)
    header = ["System", *[f"{lang}*" if lang in low else lang for lang in langs], AVG, LOW_AVG]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for label, _, values, avg, low_avg in rows:
        cells = [label, *[_fmt(values.get(lang)) for lang in langs], _fmt(avg), _fmt(low_avg)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def write_csv(path: Path, langs: list[str], rows: list[Row]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["system", "metric", *langs, "avg", "low_resource_avg"])
        for label, metric, values, avg, low_avg in rows:
            cells = [values.get(lang) for lang in langs] + [avg, low_avg]
            writer.writerow([label, metric, *["" if v is None else round(v, 2) for v in cells]])


def bar_chart(path: Path, langs: list[str], series: dict[str, list[float | None]], title: str,
              ylabel: str) -> None:
    """Grouped bars: one group per language (then Avg and Low-resource avg), one bar per series."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no GUI backend, no pyplot state

    categories = [*langs, AVG, "Low-res\navg"]
    if all(values[-1] is None for values in series.values()):  # no low-resource language: no empty group
        categories, series = categories[:-1], {label: values[:-1] for label, values in series.items()}
    width_in = max(6.0, 1.0 + 0.45 * len(categories) * (1 + 0.25 * (len(series) - 1)))
    fig = Figure(figsize=(width_in, 4.0), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(categories))]
        bars = ax.bar(xs, [float("nan") if v is None else v for v in values], width=width, label=label)  # nan: no bar
        if len(series) == 1:
            ax.bar_label(bars, fmt="%.1f", fontsize="small")
    ax.axvline(len(langs) - 0.5, color="grey", linewidth=0.8, linestyle=":")  # languages | averages
    ax.set_xticks(range(len(categories)), categories, rotation=45 if len(categories) > 16 else 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)


def chart_name(benchmark: str) -> str:
    return "scores.png" if benchmark in TRANSLATION else "accuracy.png"


def write_results(results: dict, out: Path) -> None:
    """results.json, results.md, results.csv and the chart (accuracy.png; scores.png for translation)."""
    langs, rows = results["languages"], table_rows(results)
    (out / RESULTS_JSON).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / RESULTS_MD).write_text(results_markdown(results) + "\n", encoding="utf-8")
    write_csv(out / RESULTS_CSV, langs, rows)
    series = {_METRIC_NAMES[m]: [*values.values(), avg, low] for _, m, values, avg, low in rows}
    ylabel = "score" if results["benchmark"] in TRANSLATION else "accuracy (%)"
    bar_chart(out / chart_name(results["benchmark"]), langs, series,
              f"{results['benchmark']}: {results['system']}", ylabel)


def results_markdown(results: dict) -> str:
    metric = " / ".join(_METRIC_NAMES[m] for m in results["metrics"])
    low = results["low_resource_languages"]
    note = f"{results['benchmark']}, {results['n']} examples, {metric} (%)"
    note += ", choice scoring (the most likely allowed answer)" if results.get("scoring") == "choices" else ""
    note += f"; * low-resource ({', '.join(low)})" if low else ""
    table = markdown_table(results["languages"], table_rows(results), low)
    return f"{table}\n\n{note}."


# --- comparison ----------------------------------------------------------------------------------------------


def compare_runs(run_dirs: list[str | Path], out_dir: str | Path = COMPARE_DEFAULT_OUT) -> str:
    """One table (compare.md, compare.csv) and one grouped bar chart (compare.png) over several runs of the same
    benchmark, written to `out_dir`; returns the markdown."""
    results = [_load_results(Path(d)) for d in run_dirs]
    benchmarks = {r["benchmark"] for r in results}
    if len(benchmarks) > 1:
        listing = ", ".join(f"{d}: {r['benchmark']}" for d, r in zip(run_dirs, results, strict=True))
        raise ValueError(f"runs are of different benchmarks ({listing}); compare runs of one benchmark")
    benchmark = benchmarks.pop()

    langs = _union([r["languages"] for r in results])
    low = _union([r["low_resource_languages"] for r in results])
    labels = _unique_labels([r["system"] for r in results], [Path(d).name for d in run_dirs])
    rows = [row for r, label in zip(results, labels, strict=True) for row in table_rows(r, label)]

    md = markdown_table(langs, rows, low)
    if any(set(r["languages"]) != set(langs) for r in results):
        md += "\n\nNote: the runs cover different languages; each average is over that run's own languages."
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(md + "\n", encoding="utf-8")
    write_csv(out / "compare.csv", langs, rows)
    main_metric = metrics_of(benchmark)[0]  # the chart shows accuracy, or chrF for translation
    series = {label: [values.get(lang) for lang in langs] + [avg, low_avg]
              for label, m, values, avg, low_avg in rows if m == main_metric}
    bar_chart(out / "compare.png", langs, series, f"{benchmark}: {_METRIC_NAMES[main_metric]}",
              "score" if benchmark in TRANSLATION else "accuracy (%)")
    return md


def _load_results(run_dir: Path) -> dict:
    path = run_dir / RESULTS_JSON
    if not path.exists():
        raise ValueError(f"{run_dir} is not an evaluation run (no {RESULTS_JSON}; run `layalign evaluate` first)")
    return json.loads(path.read_text(encoding="utf-8"))


def _union(lists: list[list[str]]) -> list[str]:
    return list(dict.fromkeys(item for items in lists for item in items))


def _unique_labels(names: list[str], dir_names: list[str]) -> list[str]:
    """System names, with the run directory added where two runs share a name."""
    return [f"{n} [{d}]" if names.count(n) > 1 else n for n, d in zip(names, dir_names, strict=True)]


# --- command line --------------------------------------------------------------------------------------------


def cli_evaluate(args: Any) -> int:
    """`layalign evaluate`: read the benchmark, load the system, evaluate, print the table."""
    from layalign.data import read_benchmark
    from layalign.systems import load_system

    examples = read_benchmark(args.benchmark, path=args.data, langs=args.langs, limit=args.limit)
    if not any(examples.values()):
        print(f"error: no {args.benchmark} examples found (data={args.data}, langs={args.langs})", file=sys.stderr)
        return 2
    system = load_system(args.model, device=args.device)  # after the data: a bad path fails before a slow load
    name = args.name or system.name
    out = Path(args.out) if args.out else Path("runs/eval") / f"{args.benchmark}-{_slug(name)}"
    try:
        results = evaluate(system, args.benchmark, examples, out, batch_size=args.batch_size,
                           max_new_tokens=args.max_new_tokens, name=name, scoring=args.scoring)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(results_markdown(results))
    print(f"\nwritten to {out}/ ({PREDICTIONS}, {RESULTS_JSON}, {RESULTS_MD}, {RESULTS_CSV}, "
          f"{chart_name(args.benchmark)})")
    return 0


def cli_compare(args: Any) -> int:
    """`layalign compare RUN...`: one table and chart over several runs (default output: runs/compare/)."""
    out = Path(args.out or COMPARE_DEFAULT_OUT)
    try:
        md = compare_runs(args.runs, out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(md)
    print(f"\nwritten to {out}/ (compare.md, compare.csv, compare.png)")
    return 0


def _slug(name: str) -> str:
    """A system name as a directory name ("llm:Qwen/Qwen3-0.6B" -> "llm_Qwen_Qwen3-0.6B")."""
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "system"

