"""Reports of evaluation runs: markdown tables, CSV, bar charts, a run's results files, and the side-by-side
comparison of several runs (`layalign compare`; layalign.studies.report lays out its tables through here too).

A run's `results.json`, `results.md`, `results.csv` and chart are all recomputed from its predictions.jsonl by
`layalign.evaluation.run.evaluate`; this module only lays out what `score_predictions` returned.

Under the lines of every table: the scoring protocol, the input lengths and the inputs truncated per language. A
comparison refuses runs scored under different protocols unless told to allow it, and then says so; under the paper
protocol an MGSM table adds the authors' average without Telugu as a column.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from layalign.evaluation.scoring import DEFAULT_PROTOCOL, metrics_of
from layalign.tasks import get_task

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
COMPARE_DEFAULT_OUT = "runs/compare"

AVG = "Avg"
LOW_AVG = "Low-resource avg"
PAPER_AVG = "Avg w/o {}"  # the paper protocol's average without the excluded languages (MGSM: "Avg w/o te")

METRIC_NAMES = {"accuracy": "accuracy", "chrf": "chrF", "bleu": "BLEU"}

# one table row: (label, metric, {lang: value}, avg, low-resource avg)
Row = tuple[str, str, dict[str, float | None], float | None, float | None]


def table_rows(results: dict, label: str | None = None) -> list[Row]:
    """The rows one run contributes to a table: one per metric."""
    label = label or results["system"]
    metrics = results["metrics"]
    rows = []
    for m in metrics:
        row_label = label if len(metrics) == 1 else f"{label} ({METRIC_NAMES[m]})"
        values = {lang: s[m] for lang, s in results["per_language"].items()}
        rows.append((row_label, m, values, results["average"][m], results["low_resource_average"][m]))
    return rows


def paper_average_column(results: list[dict]) -> tuple[str, list[float | None]] | None:
    """(column name, one value per row of `table_rows` over `results`) for the paper protocol's extra average, or
    None when no run has one."""
    names = {PAPER_AVG.format(", ".join(r["paper_average"]["excluded"])) for r in results if "paper_average" in r}
    if not names:
        return None
    values = [r.get("paper_average", {}).get(m) for r in results for m in r["metrics"]]
    return " / ".join(sorted(names)), values


def markdown_table(langs: list[str], rows: list[Row], low_resource: Iterable[str] = (),
                   extra: tuple[str, list[float | None]] | None = None) -> str:
    """Systems as rows, languages then Avg and Low-resource avg as columns (and `extra`: a column name and one
    value per row, e.g. the paper protocol's MGSM average without Telugu); one decimal, "–" where missing.
    Low-resource languages are marked with *."""
    low = set(low_resource)
    header = ["System", *[f"{lang}*" if lang in low else lang for lang in langs], AVG, LOW_AVG]
    header += [extra[0]] if extra else []
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for i, (label, _, values, avg, low_avg) in enumerate(rows):
        cells = [label, *[_fmt(values.get(lang)) for lang in langs], _fmt(avg), _fmt(low_avg)]
        cells += [_fmt(extra[1][i])] if extra else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def protocol_of(results: dict) -> str:
    """The scoring protocol of a run (runs from before protocols existed were lenient)."""
    return results.get("protocol", DEFAULT_PROTOCOL)


def truncation_note(results: dict) -> str:
    """One line: the input lengths and how many inputs were cut per language ("" when the system reported
    neither)."""
    lengths, counts = results.get("lengths"), results.get("truncated")
    if lengths is None and counts is None:
        return ""
    limits = ", ".join(f"{k.removeprefix('max_').removesuffix('_length')} {v}" for k, v in (lengths or {}).items()
                       if v is not None)
    note = f"input limits (tokens): {limits}" if limits else "input limits: not recorded"
    if counts is None:
        return note + "; truncation not reported"
    cut = [f"{lang} {s['truncated']}/{s['n']}" for lang, s in results["per_language"].items()
           if s.get("truncated")]
    return note + ("; inputs truncated: " + ", ".join(cut) if cut else "; no input truncated")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def write_csv(path: Path, langs: list[str], rows: list[Row],
              extra: tuple[str, list[float | None]] | None = None) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["system", "metric", *langs, "avg", "low_resource_avg", *([extra[0]] if extra else [])])
        for i, (label, metric, values, avg, low_avg) in enumerate(rows):
            cells = [values.get(lang) for lang in langs] + [avg, low_avg] + ([extra[1][i]] if extra else [])
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
    return "accuracy.png" if get_task(benchmark).per_example else "scores.png"


def _ylabel(benchmark: str) -> str:
    return "accuracy (%)" if get_task(benchmark).per_example else "score"


def write_results(results: dict, out: Path) -> None:
    """results.json, results.md, results.csv and the chart (accuracy.png; scores.png for translation)."""
    langs, rows = results["languages"], table_rows(results)
    (out / RESULTS_JSON).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / RESULTS_MD).write_text(results_markdown(results) + "\n", encoding="utf-8")
    write_csv(out / RESULTS_CSV, langs, rows, paper_average_column([results]))
    series = {METRIC_NAMES[m]: [*values.values(), avg, low] for _, m, values, avg, low in rows}
    bar_chart(out / chart_name(results["benchmark"]), langs, series,
              f"{results['benchmark']}: {results['system']}", _ylabel(results["benchmark"]))


def results_markdown(results: dict) -> str:
    metric = " / ".join(METRIC_NAMES[m] for m in results["metrics"])
    low = results["low_resource_languages"]
    note = f"{results['benchmark']}, {results['n']} examples, {metric} (%)"
    note += ", choice scoring (the most likely allowed answer)" if results.get("scoring") == "choices" else ""
    note += f", {protocol_of(results)} protocol"
    note += f"; * low-resource ({', '.join(low)})" if low else ""
    table = markdown_table(results["languages"], table_rows(results), low, paper_average_column([results]))
    truncation = truncation_note(results)
    return f"{table}\n\n{note}." + (f"\n\n{truncation[0].upper()}{truncation[1:]}." if truncation else "")


# --- comparison ----------------------------------------------------------------------------------------------


def load_results(run_dir: str | Path) -> dict:
    """A run's results.json; a ValueError naming the folder when it is not an evaluation run."""
    path = Path(run_dir) / RESULTS_JSON
    if not path.exists():
        raise ValueError(f"{run_dir} is not an evaluation run (no {RESULTS_JSON}; run `layalign evaluate` first)")
    return json.loads(path.read_text(encoding="utf-8"))


def compare_runs(run_dirs: list[str | Path], out_dir: str | Path = COMPARE_DEFAULT_OUT,
                 allow_mixed_protocols: bool = False) -> str:
    """One table (compare.md, compare.csv) and one grouped bar chart (compare.png) over several runs of the same
    benchmark, written to `out_dir`; returns the markdown. Runs scored under different protocols are refused
    unless `allow_mixed_protocols`, and then the table names each row's protocol and says they are mixed. Under
    the table: each run's input limits and truncated inputs, and a note when the runs' input limits differ."""
    results = [load_results(d) for d in run_dirs]
    benchmarks = {r["benchmark"] for r in results}
    if len(benchmarks) > 1:
        listing = ", ".join(f"{d}: {r['benchmark']}" for d, r in zip(run_dirs, results, strict=True))
        raise ValueError(f"runs are of different benchmarks ({listing}); compare runs of one benchmark")
    benchmark = benchmarks.pop()
    protocols = [protocol_of(r) for r in results]
    mixed = len(set(protocols)) > 1
    if mixed and not allow_mixed_protocols:
        listing = ", ".join(f"{d}: {p}" for d, p in zip(run_dirs, protocols, strict=True))
        raise ValueError(f"runs are scored under different protocols ({listing}); evaluate them under one "
                         "--protocol, or pass --allow-mixed-protocols")

    langs = _union([r["languages"] for r in results])
    low = _union([r["low_resource_languages"] for r in results])
    labels = _unique_labels([r["system"] for r in results], [Path(d).name for d in run_dirs])
    if mixed:  # every row says how it was scored
        labels = [f"{label} ({p})" for label, p in zip(labels, protocols, strict=True)]
    rows = [row for r, label in zip(results, labels, strict=True) for row in table_rows(r, label)]
    extra = paper_average_column(results)

    md = markdown_table(langs, rows, low, extra)
    notes = [f"Protocol: {protocols[0]}." if not mixed else
             "Note: MIXED PROTOCOLS (--allow-mixed-protocols): the rows are scored differently, see each label."]
    if any(set(r["languages"]) != set(langs) for r in results):
        notes.append("Note: the runs cover different languages; each average is over that run's own languages.")
    if len({json.dumps(r.get("lengths"), sort_keys=True) for r in results}) > 1:
        notes.append("Note: the runs used different input limits; their inputs were not treated alike.")
    dtypes = {r.get("dtype") for r in results} - {None}
    if len(dtypes) > 1:
        notes.append("Note: the runs computed in different dtypes: "
                     + ", ".join(f"{label} {r.get('dtype')}" for label, r in zip(labels, results, strict=True))
                     + ".")
    notes += [f"{label}: {note}." for label, r in zip(labels, results, strict=True) if (note := truncation_note(r))]
    md += "\n\n" + "\n\n".join(notes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(md + "\n", encoding="utf-8")
    write_csv(out / "compare.csv", langs, rows, extra)
    main_metric = metrics_of(benchmark)[0]  # the chart shows accuracy, or chrF for translation
    series = {label: [values.get(lang) for lang in langs] + [avg, low_avg]
              for label, m, values, avg, low_avg in rows if m == main_metric}
    bar_chart(out / "compare.png", langs, series, f"{benchmark}: {METRIC_NAMES[main_metric]}", _ylabel(benchmark))
    return md


def _union(lists: list[list[str]]) -> list[str]:
    return list(dict.fromkeys(item for items in lists for item in items))


def _unique_labels(names: list[str], dir_names: list[str]) -> list[str]:
    """System names, with the run directory added where two runs share a name."""
    return [f"{n} [{d}]" if names.count(n) > 1 else n for n, d in zip(names, dir_names, strict=True)]


def cli_compare(args: Any) -> int:
    """`layalign compare RUN...`: one table and chart over several runs (default output: runs/compare/). Errors
    propagate to `layalign.cli.main`, which reports them."""
    out = Path(args.out or COMPARE_DEFAULT_OUT)
    md = compare_runs(args.runs, out, allow_mixed_protocols=getattr(args, "allow_mixed_protocols", False))
    print(md)
    print(f"\nwritten to {out}/ (compare.md, compare.csv, compare.png)")
    return 0
