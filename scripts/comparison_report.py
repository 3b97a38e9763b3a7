"""The report of scripts/comparison.py: docs/results/reproduction.md (+ PNGs in docs/results/comparison/, beside the
units), regenerated from whatever units are finished (their unit.json written). Run it through
`python scripts/comparison.py report`.

First what the finished units show (generated: the averages and which paired differences exceed the noise), then the
discussion written by hand (docs/results/comparison/discussion.md: what the numbers cannot say, never numbers that a
new unit would change), then the details.

Per measure (choice scoring; generation under the lenient and the paper protocol): accuracy per language and seed,
the mean and spread over seeds, and for every pair of systems the paired difference on the same rows with a
bootstrap 95 % interval that resamples XNLI items (a dev row with its 15 translations), seeds averaged first, and a
second one that resamples each system's seeds as well (`layalign.evaluation.statistics`). "How a unit is run"
includes docs/results/comparison/how-a-unit-is-run.md (written by hand: the defaults and why) and profile.md (written by
scripts/comparison_profile.py) as they are.

The same generator writes the maths study's report (`report --study math`: docs/results/reproduction-math.md, charts in
docs/results/comparison-math/): generation only, MGSM's 11 languages (an item is one MGSM question with its 11
translations), under the paper protocol also the authors' average without Telugu, and "What a unit costs" from
docs/results/comparison-math/cost.md. What differs between the studies' reports is in `TEXTS`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import statistics as stats
from dataclasses import dataclass
from pathlib import Path

import comparison as cmp  # scripts/comparison.py, beside this file
import yaml

from layalign.evaluation.report import AVG, markdown_table, paper_average_column, table_rows, truncation_note
from layalign.evaluation.scoring import extract_answer, is_correct
from layalign.evaluation.statistics import (
    Interval,
    aligned,
    correctness,
    describe,
    paired_bootstrap,
    seed_and_item_bootstrap,
    seed_summary,
)
from layalign.tasks import get_task

XNLI = get_task("xnli")
Pair = tuple[str, str, Interval, Interval]  # system A, system B, A - B over items, and over seeds and items
MEASURES = (("choices", "lenient", "choice scoring (the most likely label word)"),
            ("generate", "lenient", "generation, lenient protocol (the first label word in the output)"),
            ("generate", "paper", "generation, paper protocol (the stripped output equals the label word)"))
MATH_MEASURES = (("generate", "lenient", "generation, lenient protocol (the last number in the output)"),
                 ("generate", "paper", "generation, paper protocol (the authors' last-number rule, 0 when there is "
                                       "none)"))
PROFILE = "profile.md"
HOW = "how-a-unit-is-run.md"
COST = "cost.md"
DISCUSSION = "discussion.md"


@dataclass(frozen=True)
class Texts:
    """What a study's report says differently: its measures, how it names its benchmark, the chance line of its
    charts, and the hand-written (or separately generated) parts it ends with."""

    measures: tuple[tuple[str, str, str], ...]
    table_name: str  # "XNLI dev": "## XNLI dev accuracy, ...", the charts' titles
    short: str  # "XNLI": the charts' alt text
    chance: float | None  # a dashed line on the charts (XNLI: three balanced labels); None: none
    parts_title: str
    parts: tuple[tuple[str, str], ...]  # (file beside the units' folder, what to say when it is missing)


TEXTS = {
    "xnli": Texts(MEASURES, "XNLI dev", "XNLI", 100 / 3, "How a unit is run",
                  ((HOW, ""), (PROFILE, "(No profile yet: `python scripts/comparison_profile.py`.)"))),
    "math": Texts(MATH_MEASURES, "MGSM", "MGSM", None, "What a unit costs",
                  ((COST, "(No cost measured yet: see docs/results/comparison-math/cost.md once written.)"),)),
}


def load_units(units: list[cmp.Unit], results: Path, study: cmp.Study = cmp.XNLI_STUDY) -> dict[str, dict]:
    """unit name -> its record, results and rows, for the finished units among `units`."""
    loaded = {}
    for unit in units:
        folder = results / unit.name
        if not (folder / cmp.MARKER).is_file():
            continue
        record = json.loads((folder / cmp.MARKER).read_text(encoding="utf-8"))
        record["results"] = {(s, p): json.loads((folder / "eval" / s / f"results-{p}.json").read_text("utf-8"))
                             for s in study.scorings for p in cmp.PROTOCOLS}
        record["rows"] = {s: cmp._jsonl(folder / "eval" / s / "predictions.jsonl") for s in study.scorings}
        record["folder"] = folder
        loaded[unit.name] = record
    return loaded


def judged(rows: list[dict], protocol: str, benchmark: str = "xnli") -> list[dict]:
    """The rows judged under `protocol` (the committed rows are lenient; the paper judgement is read again from the
    same outputs, as evaluation.rescore does)."""
    if protocol == "lenient":
        return rows
    return [row | {"correct": is_correct(benchmark, extract_answer(benchmark, row["output"], protocol), row["gold"],
                                         protocol)} for row in rows]


def by_system(done: dict[str, dict], study: cmp.Study = cmp.XNLI_STUDY) -> dict[str, list[dict]]:
    systems: dict[str, list[dict]] = {}
    for record in done.values():
        systems.setdefault(record["system"], []).append(record)
    order = list(study.systems)
    return {name: systems[name] for name in sorted(systems, key=order.index)}


def accuracy_section(done: dict[str, dict], measure: tuple[str, str, str], figures: Path, slug: str,
                     pairs: list[Pair], resamples: int, out_dir: Path,
                     study: cmp.Study = cmp.XNLI_STUDY) -> list[str]:
    scoring, protocol, title = measure
    task, text = get_task(study.benchmark), TEXTS[study.name]
    systems = by_system(done, study)
    langs = [lang for lang in task.languages if any(lang in r["results"][scoring, protocol]["languages"]
                                                    for r in done.values())]
    low = [lang for lang in task.low_resource if lang in langs]
    lines = [f"## {text.table_name} accuracy, {title}", ""]

    # per seed
    ordered = [r for records in systems.values() for r in records]
    rows = [row for r in ordered for row in table_rows(r["results"][scoring, protocol], r["label"])]
    extra = paper_average_column([r["results"][scoring, protocol] for r in ordered])
    lines += ["Per seed (%):", "", markdown_table(langs, rows, low, extra), ""]
    notes: dict[str, list[str]] = {}
    for r in done.values():
        if note := truncation_note(r["results"][scoring, protocol]):
            notes.setdefault(note, []).append(r["unit"])
    lines += [f"Inputs of {', '.join(names)}: {note}." for note, names in notes.items()] + [""]

    # mean and spread over seeds
    lines += ["Mean over seeds (%), and the spread over seeds of the average over languages:", ""]
    mean_rows, series, summary = [], {}, ["| system | seeds | mean | std | min-max |", "|---|---:|---:|---:|---|"]
    paper_means: list[float | None] = []
    for name, records in systems.items():
        per_lang = {lang: [r["results"][scoring, protocol]["per_language"][lang]["accuracy"] for r in records
                           if lang in r["results"][scoring, protocol]["per_language"]] for lang in langs}
        avgs = [r["results"][scoring, protocol]["average"]["accuracy"] for r in records]
        lows = [r["results"][scoring, protocol]["low_resource_average"]["accuracy"] for r in records]
        label = study.systems[name].label
        mean_rows.append((label, "accuracy", {lang: stats.mean(v) for lang, v in per_lang.items() if v},
                          stats.mean(avgs), stats.mean(x for x in lows if x is not None) if low else None))
        paper = [r["results"][scoring, protocol]["paper_average"]["accuracy"] for r in records
                 if "paper_average" in r["results"][scoring, protocol]]
        paper_means.append(stats.mean(paper) if paper else None)
        s = seed_summary(avgs)
        summary.append(f"| {label} | {s['n']} | {s['mean']:.1f} | {_fmt(s['std'])} | {s['min']:.1f}-{s['max']:.1f} |")
        series[label] = [(min(v), stats.mean(v), max(v)) if v else None for v in per_lang.values()]
        series[label].append((min(avgs), stats.mean(avgs), max(avgs)))
    mean_extra = (extra[0], paper_means) if extra else None  # the paper protocol's MGSM average without Telugu
    lines += [markdown_table(langs, mean_rows, low, mean_extra), "", *summary, ""]
    chart = figures / f"accuracy-{slug}.png"
    spread_chart(chart, langs, series, f"{text.table_name}, {title}", chance=text.chance)
    lines += [f"![{text.short} accuracy, {title}]({_link(chart, out_dir)})", ""]

    # paired differences
    lines += pairs_section(systems, pairs, resamples, study)
    return lines


def paired_differences(systems: dict[str, list[dict]], scoring: str, protocol: str,
                       resamples: int, benchmark: str = "xnli") -> list[Pair]:
    """(system A, system B, interval of A - B resampling items, the same resampling seeds too) for every pair of
    systems with finished units, the fusion systems first ("LayAlign - X"), on the rows every unit of both
    answered."""
    cells = {name: [correctness(judged(r["rows"][scoring], protocol, benchmark)) for r in records]
             for name, records in systems.items()}
    pairs = []
    for a, b in itertools.combinations(list(systems)[::-1], 2):
        (ma, mb), _, _ = aligned([cells[a], cells[b]], keep_seeds=True)
        pairs.append((a, b, paired_bootstrap(ma, mb, resamples=resamples, seed=0),
                      seed_and_item_bootstrap(ma, mb, resamples=resamples, seed=0)))
    return pairs


def pairs_section(systems: dict[str, list[dict]], pairs: list[Pair],
                  resamples: int, study: cmp.Study = cmp.XNLI_STUDY) -> list[str]:
    if not pairs:
        return ["(Paired differences need two systems with finished units.)", ""]
    table = ["| A | B | A - B (points) | 95 % interval, items | excludes 0 | 95 % interval, seeds and items | "
             "excludes 0 | items x languages |", "|---|---|---:|---|---|---|---|---|"]
    sentences = []
    for a, b, result, over_seeds in pairs:
        la, lb = study.systems[a].label, study.systems[b].label
        table.append(f"| {la} | {lb} | {100 * result.difference:+.1f} | {_bounds(result)} | "
                     f"{'yes' if result.excludes_zero else 'no'} | {_bounds(over_seeds)} | "
                     f"{'yes' if over_seeds.excludes_zero else 'no'} | {result.items} x {result.languages} |")
        seeds = f" ({len(systems[a])} vs {len(systems[b])} seeds, averaged per row first)"
        sentences.append(f"- {describe(result, la, lb)[:-1]}{seeds}.")
    item = "a dev row" if study.benchmark == "xnli" else "a question"
    return [f"Paired differences on the same rows: the bootstrap resamples items ({item} with all its "
            f"translations) {resamples:,} times, each system's seeds averaged per row first. The second interval "
            "also resamples each system's seeds (with replacement, before the items), so it holds the training "
            "noise as well: with two or three seeds that part is rough, and a one-seed system adds none.", "",
            *table, "", *sentences, ""]


def _bounds(interval: Interval) -> str:
    return f"[{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]"


def findings_section(done: dict[str, dict], pairs: dict[tuple[str, str], list[Pair]],
                     units: list[cmp.Unit], missing: list[cmp.Unit], study: cmp.Study = cmp.XNLI_STUDY) -> list[str]:
    """What the finished units show, in sentences computed from them: each system's average per measure (mean over
    its seeds, with their range), then per measure which paired differences exceed the noise and which do not."""
    systems, measures, label = by_system(done, study), TEXTS[study.name].measures, study.systems
    first = measures[0][:2]
    lines = ["## What the finished units show", "",
             "Generated from the units below, so it changes as units finish. Average accuracy over the "
             f"{len(next(iter(done.values()))['results'][first]['languages'])} languages, mean over "
             "seeds (min-max over seeds where there are several):", "",
             "| system | seeds | " + " | ".join(_measure_name(m) for m in measures) + " |",
             "|---|---:|" + "---:|" * len(measures)]
    for name, records in systems.items():
        cells = []
        for scoring, protocol, _ in measures:
            s = seed_summary([r["results"][scoring, protocol]["average"]["accuracy"] for r in records])
            cells.append(f"{s['mean']:.1f}" + (f" ({s['min']:.1f}-{s['max']:.1f})" if s["n"] > 1 else ""))
        lines.append(f"| {label[name].label} | {len(records)} | " + " | ".join(cells) + " |")
    lines.append("")
    for measure in measures:
        found = pairs[measure[:2]]
        if not found:
            continue
        clear = [describe(r, label[a].label, label[b].label)[:-1] + _over_seeds(s, len(systems[a]), len(systems[b]))
                 for a, b, r, s in found if r.excludes_zero]
        noise = [f"{label[a].label} vs {label[b].label} ({100 * r.difference:+.1f}, {_bounds(r)})"
                 for a, b, r, s in found if not r.excludes_zero]
        verb = "differs" if len(clear) == 1 else "differ"
        lines += [f"**{_measure_name(measure).capitalize()}.** Of {len(found)} pairs, {len(clear)} {verb} beyond the "
                  "item noise (the 95 % interval over items excludes 0)" + (":" if clear else "."), ""]
        lines += [f"- {sentence}" for sentence in clear] + ([""] if clear else [])
        lines += [f"Within the item noise (the interval contains 0): {'; '.join(noise)}.", ""] if noise else []
    planned = {name: sum(u.system.name == name for u in units) for name in systems}
    fewer = [label[name].label for name, records in systems.items() if len(records) < planned[name]]
    if missing:
        lines += [f"{len(missing)} of {len(units)} units are missing (listed under Units): "
                  + (f"{', '.join(fewer)} rest{'s' if len(fewer) == 1 else ''} on fewer seeds than planned, and "
                     if fewer else "")
                  + "systems without a finished unit are absent from these sentences.", ""]
    return lines


def _over_seeds(interval: Interval, seeds_a: int, seeds_b: int) -> str:
    """The clause that says whether a difference beyond the item noise also holds when seeds are resampled."""
    if seeds_a == 1 and seeds_b == 1:
        return " (one seed each: the seed noise is not measured)."
    verdict = "holds" if interval.excludes_zero else "does not hold"
    return (f"; resampling seeds too, it {verdict} ({_bounds(interval)}, {seeds_a} vs {seeds_b} seeds"
            + ("; a one-seed system adds no seed noise" if 1 in (seeds_a, seeds_b) else "") + ").")


def _measure_name(measure: tuple[str, str, str]) -> str:
    scoring, protocol, _ = measure
    return "choice scoring" if scoring == "choices" else f"generation ({protocol})"


def commands_section(done: dict[str, dict], study: cmp.Study = cmp.XNLI_STUDY) -> list[str]:
    """The exact commands of the first finished unit of each system, as unit.json recorded them."""
    lines = ["## Exact commands", "", "Each unit records the commands it ran in its unit.json; the first finished unit "
             "of each system (the others differ only in `seed=` and their folders), run from the repository root with "
             "../shared beside it:", ""]
    for name, records in by_system(done, study).items():
        record = records[0]
        lines += [f"{study.systems[name].label} ({record['unit']}):", "", "```bash",
                  *[cmp.relative_command(c["command"]) for c in record["commands"]], "```", ""]
    return lines


def spread_chart(path: Path, langs: list[str], series: dict[str, list[tuple[float, float, float] | None]],
                 title: str, chance: float | None = 100 / 3) -> None:
    """Grouped bars of the mean over seeds per language (then the average), the whiskers the min-max over seeds."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg, as the report helpers do

    categories = [*langs, AVG]
    fig = Figure(figsize=(max(7.0, 0.6 * len(categories) * (1 + 0.2 * len(series))), 4.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(categories))]
        means = [v[1] if v else float("nan") for v in values]
        err = [[v[1] - v[0] if v else 0 for v in values], [v[2] - v[1] if v else 0 for v in values]]
        ax.bar(xs, means, width=width, label=label, yerr=err, capsize=1.5, error_kw={"linewidth": 0.7})
    if chance is not None:
        ax.axhline(chance, color="grey", linewidth=0.8, linestyle="--")  # XNLI's chance: three balanced labels
    ax.axvline(len(langs) - 0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(categories)), categories)
    ax.set_ylabel("accuracy (%), mean over seeds; whiskers min-max")
    ax.set_title(title)
    ax.legend(fontsize="small", ncols=min(5, len(series)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def training_section(done: dict[str, dict]) -> list[str]:
    lines = ["## Training", "", "| unit | stage | steps | mean loss, first 10 logged | mean loss, last 10 logged | "
             "dev perplexity (start -> best) | result | minutes |", "|---|---|---:|---:|---:|---|---|---:|"]
    for record in done.values():
        for stage_dir in sorted((record["folder"] / "train").glob("*"), key=lambda p: p.name != "translation"):
            log = cmp._jsonl(stage_dir / "train_log.jsonl")
            losses = [r["loss"] for r in log if "loss" in r]
            dev = [r["dev_ppl"] for r in log if "dev_ppl" in r]
            steps = max((r["step"] for r in log), default=0)
            result = json.loads((stage_dir / "stage_result.json").read_text())["model"] \
                if (stage_dir / "stage_result.json").is_file() else "?"
            seconds, mark = phase_seconds(record["phases"].get(f"train-{stage_dir.name}") or {})
            lines.append(f"| {record['unit']} | {stage_dir.name} | {steps} | {_mean(losses[:10])} | "
                         f"{_mean(losses[-10:])} | {f'{dev[0]:.2f} -> {min(dev):.2f}' if dev else '–'} | {result} | "
                         f"{_fmt(seconds / 60 if seconds else None)}{mark} |")
    if any((p or {}).get("resumed") for r in done.values() for n, p in r["phases"].items() if n.startswith("train-")):
        lines += ["", f"{RESUMED}, {PARTIAL}: a resumed stage, as under the wall-time table below."]
    return lines + [""]


def wall_time_section(done: dict[str, dict]) -> list[str]:
    names = list(dict.fromkeys(p for r in done.values() for p in r["phases"]))
    lines = ["## Wall time per phase (minutes)", "",
             "| unit | " + " | ".join(names) + " | total | lanes / threads |",
             "|---|" + "---:|" * (len(names) + 1) + "---|"]
    marks = set()
    for record in done.values():
        cells, total, partial = [], 0.0, False
        for name in names:
            seconds, mark = phase_seconds(record["phases"].get(name) or {})
            cells.append(_fmt(seconds / 60 if seconds is not None else None) + mark)
            total += seconds or 0.0
            partial |= mark == PARTIAL
            marks.add(mark)
        machine = record["machine"]
        lines.append(f"| {record['unit']} | " + " | ".join(cells) + f" | {'≥ ' if partial else ''}{total / 60:.1f} | "
                     f"{machine.get('lanes', '?')} / {machine.get('threads_per_command') or 'all'} |")
    lines += ["", "A phase found finished by a resumed run shows its first run's time; '–' where unknown."]
    if RESUMED in marks:
        lines.append(f"{RESUMED} A training stage resumed from a checkpoint: its training time summed over its runs "
                     "(elapsed_s in its stage_result.json; without model loading, and without the steps a killed run "
                     "did after its last checkpoint).")
    if PARTIAL in marks:
        lines.append(f"{PARTIAL} A phase resumed where an earlier run stopped, without a record of the earlier runs' "
                     "time (a training stage resumed from a checkpoint written before runs recorded it, or an "
                     "evaluation resumed from its saved predictions): the last run's time only, so a lower bound (as "
                     "is the unit's total).")
    return lines + [""]


RESUMED, PARTIAL = "†", "‡"


def phase_seconds(phase: dict) -> tuple[float | None, str]:
    """A phase's wall time for the table, and its mark: a resumed phase counts all its runs where known."""
    if not phase.get("resumed"):
        return phase.get("seconds"), ""
    if phase.get("stage_elapsed_s") is not None:
        return phase["stage_elapsed_s"], RESUMED
    return phase.get("seconds"), PARTIAL


def fusion_section(done: dict[str, dict], figures: Path, out_dir: Path,
                   study: cmp.Study = cmp.XNLI_STUDY) -> list[str]:
    from layalign.inspection import InspectError, load_fusion_weights, plot
    from layalign.inspection import describe as describe_fusion

    layalign = [r for r in done.values() if r["system"] == "layalign"]
    lines = ["## What the best LayAlign unit fuses: gates and layer-mix weights", ""]
    if not layalign:
        return lines + ["No LayAlign unit is finished yet.", ""]
    measure = TEXTS[study.name].measures[0]  # XNLI: choice scoring; maths: generation, lenient
    best = max(layalign, key=lambda r: r["results"][measure[:2]]["average"]["accuracy"])
    accuracy = best["results"][measure[:2]]["average"]["accuracy"]
    by = "dev accuracy by choice scoring" if measure[0] == "choices" else f"{TEXTS[study.name].short} accuracy " \
        f"by {_measure_name(measure)}"
    lines.append(f"The LayAlign unit with the highest {by}: {best['unit']} ({accuracy:.1f} %).")
    model = Path(best["model_dir"])
    try:
        weights = load_fusion_weights(model)
    except (InspectError, FileNotFoundError) as err:
        return lines + ["", f"Its adapters are not in the work folder any more ({model}: {err}); rerun "
                        f"`python scripts/comparison.py run{study.option} --units {best['unit']}` on a machine that "
                        "keeps runs/ "
                        "to draw them.", ""]
    png = plot(weights, figures / f"fusion-{best['unit']}.png")
    for stale in set(figures.glob("fusion-*.png")) - {png}:  # the chart of an earlier best unit
        stale.unlink()
    return lines + ["", f"![gates and layer mix of {best['unit']}]({_link(png, out_dir)})", "", "```",
                    describe_fusion(weights), "```", ""]


def header(units: list[cmp.Unit], done: dict[str, dict], missing: list[cmp.Unit],
           study: cmp.Study = cmp.XNLI_STUDY) -> list[str]:
    settings = next(iter(done.values()))["settings"] if done else cmp.default_settings(study).record()
    machines = sorted({f"{r['machine']['platform']}, {r['machine']['cpus']} CPUs, torch {r['machine']['torch']}, "
                       f"transformers {r['machine']['transformers']}" for r in done.values()})
    lines = (_xnli_header if study.name == "xnli" else _math_header)(settings, len(done), len(units))
    lines += [f"- training settings added to every stage: {' '.join(settings['train_settings']) or 'none'}",
              f"- machine(s): {'; '.join(machines) or 'none yet'}", ""]
    if any(r["settings"] != settings for r in done.values()):
        lines += ["**Note: the finished units were run with different settings** (see each unit.json).", ""]
    lines += ["## Units", ""]
    lines += [f"- done ({len(done)}): {', '.join(done) or '-'}",
              f"- missing ({len(missing)}): {', '.join(u.name for u in missing) or '-'}", ""]
    if missing:
        lines += ["Finish them with:", "", "```bash", cmp.finish_command(missing, study=study),
                  f"python scripts/comparison.py report{study.option}", "```", ""]
    return lines


def _xnli_header(settings: dict, done: int, units: int) -> list[str]:
    return ["# Reproduction on XNLI: the bare LLM, LLM + LoRA, LangBridge, MindMerger and LayAlign, with seeds", "",
            f"Generated by `python scripts/comparison.py report` on {dt.date.today().isoformat()} from "
            f"{done} of {units} units; run with `python scripts/comparison.py run` (resumable).", "",
            f"- models: multilingual-e5-small (encoder, frozen) + {settings['llm']} (LLM, frozen), offline catalogue",
            f"- systems: {', '.join(s.label for s in cmp.SYSTEMS.values())}; recipes in configs/reproduction/",
            f"- every trained system: {settings['steps']} task-stage optimiser steps; MindMerger and LayAlign first "
            "a translation stage each (not shared: the two architectures train different adapters); LangBridge "
            "and LLM + LoRA one task stage",
            f"- evaluation: XNLI dev, {settings['limit']} rows per language, "
            f"{len(settings['langs'] or XNLI.languages)} languages, the same rows for every unit; choice scoring, "
            "and greedy generation scored under both protocols (the same outputs judged twice); frozen encoder and "
            f"LLM in {settings.get('eval_dtype', 'float32')} for every system (the trained adapters in float32)"]


def recipe_data(recipe: str) -> str:
    """The training data a recipe names, as "de es fr, up to 1,000 each", read from the recipe itself."""
    config = yaml.safe_load((cmp.RECIPES / recipe).read_text(encoding="utf-8"))
    parts = []
    for source in config["train_data"]:
        each = f", up to {source['limit']:,} each" if source.get("limit") else ""
        parts.append(f"{' '.join(source.get('langs') or ['all languages'])}{each}")
    return "; ".join(parts)


def _math_header(settings: dict, done: int, units: int) -> list[str]:
    study = cmp.STUDIES["math"]
    mgsm = get_task(study.benchmark)
    langs = settings["langs"] or mgsm.languages
    return ["# Maths: the bare LLM, MindMerger and LayAlign on MGSM", "",
            f"Generated by `python scripts/comparison.py report{study.option}` on {dt.date.today().isoformat()} from "
            f"{done} of {units} units; run with `python scripts/comparison.py run{study.option}` (resumable).", "",
            f"- models: multilingual-e5-small (encoder, frozen) + {settings['llm']} (LLM, frozen), offline catalogue",
            f"- systems: {', '.join(s.label for s in study.systems.values())}; recipes "
            "configs/reproduction/math-*.yaml",
            f"- every trained system: {settings['steps']} task-stage optimiser steps on QAlign's translated GSM8K "
            f"questions ({recipe_data('math-layalign.yaml')}) with GSM8K's English chain-of-thought answers and the "
            "MetaMath prompt; MindMerger and LayAlign first a translation stage each (not shared: the two "
            "architectures train different adapters) on X -> English pairs "
            f"({recipe_data('math-translation.yaml')})",
            f"- evaluation: MGSM, the first {settings['limit']} questions of each of {len(langs)} languages (the same "
            "questions in every language and for every unit), greedy generation of up to "
            f"{settings['max_new_tokens']} new tokens after the MetaMath prompt, scored under both protocols (the "
            "same outputs judged twice; the paper protocol also averages without Telugu, as the authors' code); "
            f"frozen encoder and LLM in {settings.get('eval_dtype', 'float32')} for every system (the trained "
            "adapters in float32)"]


def choices_paper_note(done: dict[str, dict]) -> list[str]:
    same = all(r["results"]["choices", "paper"]["average"] == r["results"]["choices", "lenient"]["average"]
               for r in done.values())
    return [("Choice scoring gives the same accuracy under both protocols (its output is the label word itself), "
             "so it is shown once." if same else
             "**Choice scoring differs between the protocols for some unit** (results-paper.json beside each).")
            + "", ""]


def write_report(units: list[cmp.Unit], results: Path, out: Path, resamples: int = 10_000,
                 study: cmp.Study = cmp.XNLI_STUDY) -> str:
    done = load_units(units, results, study)
    missing = [u for u in units if u.name not in done]
    figures = results.parent  # docs/results/comparison/: the charts beside the units and the hand-written parts
    text = TEXTS[study.name]
    lines = header(units, done, missing, study)
    if done:
        systems = by_system(done, study)
        pairs = {m[:2]: paired_differences(systems, m[0], m[1], resamples, study.benchmark) for m in text.measures}
        lines += findings_section(done, pairs, units, missing, study)
        if (figures / DISCUSSION).is_file():
            lines += [(figures / DISCUSSION).read_text(encoding="utf-8").strip(), ""]
        lines += choices_paper_note(done) if "choices" in study.scorings else []
        for measure in text.measures:
            lines += accuracy_section(done, measure, figures, f"{measure[0]}-{measure[1]}", pairs[measure[:2]],
                                      resamples, out.parent, study)
        lines += (training_section(done) + wall_time_section(done) + fusion_section(done, figures, out.parent, study)
                  + commands_section(done, study))
    lines += [f"## {text.parts_title}", ""]
    for name, missing_note in text.parts:
        part = figures / name  # HOW and COST are written by hand, PROFILE by scripts/comparison_profile.py
        lines += [part.read_text(encoding="utf-8").strip(), ""] if part.is_file() else [missing_note, ""]
    out_text = "\n".join(lines).rstrip() + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(out_text, encoding="utf-8")
    return out_text


def _link(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(path, out_dir)).as_posix()


def _mean(values: list[float]) -> str:
    return f"{stats.mean(values):.3f}" if values else "–"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"

