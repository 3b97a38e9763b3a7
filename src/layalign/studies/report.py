"""A study's report, regenerated from whatever units are finished (their unit.json written): `layalign study report`.

First what each system was given (the budget table), then what the finished units show (generated: the averages, and
which paired differences hold after Holm's correction across each table's pairs), then the hand-written discussion
the study names (what the numbers cannot say), then per measure the accuracy tables, charts and paired differences,
then training, wall time, the fusion of the best LayAlign unit, and the exact commands; last the hand-written parts
the study names.

Paired differences (`layalign.evaluation.statistics`): a bootstrap over items (an item is an eval row with all its
translations; each system's seeds averaged per row first), and a seed-level interval (Welch's t on the per-seed
average accuracies; honest with 2-5 seeds, and absent where a trained system has one seed). Each has a two-sided
p-value, Holm-adjusted across the table's pairs; a pair "differs" only when its adjusted p-value is below 0.05.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import statistics as stats
from dataclasses import dataclass
from pathlib import Path

from layalign.evaluation.report import markdown_table, paper_average_column, table_rows, truncation_note
from layalign.evaluation.scoring import extract_answer, is_correct
from layalign.evaluation.statistics import (
    DIFFERS,
    Interval,
    aligned,
    correctness,
    holm,
    paired_bootstrap,
    seed_level_interval,
    seed_summary,
    verdict,
)
from layalign.studies.budget import budget_section
from layalign.studies.groups import groups_section
from layalign.studies.runner import (
    MARKER,
    finish_command,
    read_jsonl,
    seed_counts,
    seed_spreads,
    study_argument,
    unit_done,
)
from layalign.studies.sections import (
    by_system,
    commands_section,
    fmt,
    fusion_section,
    link,
    plural,
    spread_chart,
    training_section,
    wall_time_section,
)
from layalign.studies.settings import settings_for
from layalign.studies.spec import PROTOCOLS, Study, Unit, relative_path
from layalign.tasks import get_task

ALPHA = 0.05


@dataclass(frozen=True)
class Pair:
    """Systems a and b compared on the same rows: over items, over seeds (None where not measurable), and the
    Holm-adjusted p-values of both across the measure's table."""

    a: str
    b: str
    items: Interval
    seeds: Interval | None
    items_p: float = 1.0
    seeds_p: float | None = None
    margin: float | None = None  # the study's equivalence margin, as a fraction (0.015 for 1.5 points)

    @property
    def differs(self) -> bool:
        return verdict(self.items_p, self.items, ALPHA) == DIFFERS

    @property
    def holds_over_seeds(self) -> bool:
        return self.seeds is not None and verdict(self.seeds_p, self.seeds, ALPHA) == DIFFERS

    @property
    def ordered(self) -> bool:
        """A verdict of order: the pair differs over items and over seeds, each after Holm's correction."""
        return self.differs and self.holds_over_seeds

    @property
    def equivalent(self) -> bool:
        """A verdict of no difference: the pair differs neither over items nor over seeds, and both 95 % intervals
        lie inside ±margin (two one-sided tests at 2.5 % each; no verdict where the seed noise is unmeasured)."""
        return (self.margin is not None and self.seeds is not None and not self.differs
                and not self.holds_over_seeds
                and all(-self.margin < i.low and i.high < self.margin for i in (self.items, self.seeds)))


def measures(study: Study) -> list[tuple[str, str, str]]:
    """(scoring, protocol, title) of each measure the report shows: every scoring under the lenient protocol, and
    generation under the paper one too (choice scoring reads the same under both)."""
    titles = study.settings["texts"].get("measures") or {}
    keys = [(s, p) for s in study.scorings for p in PROTOCOLS if p == "lenient" or s == "generate"]
    return [(s, p, titles.get(f"{s}-{p}", f"{s}, {p} protocol")) for s, p in keys]


def load_units(units: list[Unit], study: Study, results: Path) -> dict[str, dict]:
    """unit name -> its record, results and rows, for the finished units among `units` (a sweep unit is left to the
    sweep table: it ran fewer steps and rows)."""
    loaded = {}
    for unit in units:
        folder = results / unit.name
        if unit.sweep or unit.all_languages or not (folder / MARKER).is_file():
            continue
        record = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        record["results"] = {(s, p): json.loads((folder / "eval" / s / f"results-{p}.json").read_text("utf-8"))
                             for s in study.scorings for p in PROTOCOLS}
        record["rows"] = {s: read_jsonl(folder / "eval" / s / "predictions.jsonl") for s in study.scorings}
        record["folder"] = folder
        loaded[unit.name] = record
    return loaded


def judged(rows: list[dict], protocol: str, benchmark: str) -> list[dict]:
    """The rows judged under `protocol` (the committed rows are lenient; the paper judgement is read again from the
    same outputs, as evaluation.rescore does)."""
    if protocol == "lenient":
        return rows
    return [row | {"correct": is_correct(benchmark, extract_answer(benchmark, row["output"], protocol), row["gold"],
                                         protocol)} for row in rows]


def paired_differences(systems: dict[str, list[dict]], study: Study, scoring: str, protocol: str,
                       resamples: int) -> list[Pair]:
    """Every pair of systems with finished units, the later ones in the study first ("LayAlign - X"), on the rows
    every unit of both answered; p-values Holm-adjusted across these pairs."""
    cells = {name: [correctness(judged(r["rows"][scoring], protocol, study.benchmark)) for r in records]
             for name, records in systems.items()}
    found = []
    for a, b in itertools.combinations(list(systems)[::-1], 2):
        (ma, mb), _, _ = aligned([cells[a], cells[b]], keep_seeds=True)
        found.append((a, b, paired_bootstrap(ma, mb, resamples=resamples, seed=0), seed_interval(ma, mb, a, b, study)))
    items_p = holm([f[2].p_value for f in found]) if found else []
    seeded = [i for i, f in enumerate(found) if f[3] is not None]
    seeds_p = dict(zip(seeded, holm([found[i][3].p_value for i in seeded]), strict=True)) if seeded else {}
    margin = study.settings["equivalence_margin"]
    margin = None if margin is None else margin / 100
    return [Pair(a, b, item, seed, items_p[i], seeds_p.get(i), margin) for i, (a, b, item, seed) in enumerate(found)]


def seed_interval(a, b, name_a: str, name_b: str, study: Study) -> Interval | None:
    """Welch's interval on the per-seed averages over the shared rows; None where a trained system has one seed
    (its seed variance is unknown) or neither varies."""
    untrained = {name: not study.systems[name].seeded for name in (name_a, name_b)}
    try:
        return seed_level_interval(a.mean(axis=(1, 2)).tolist(), b.mean(axis=(1, 2)).tolist(),
                                   a_deterministic=untrained[name_a], b_deterministic=untrained[name_b])
    except ValueError:
        return None


def pairs_section(systems: dict[str, list[dict]], pairs: list[Pair], resamples: int, study: Study) -> list[str]:
    if not pairs:
        return ["(Paired differences need two systems with finished units.)", ""]
    label = {name: study.systems[name].label for name in study.systems}
    table = ["| A | B | A - B (points) | 95 % interval, items | p (Holm) | seeds | 95 % interval, seeds | p (Holm) | "
             "verdict | items x languages |", "|---|---|---:|---|---:|---|---|---:|---|---|"]
    for p in pairs:
        table.append(f"| {label[p.a]} | {label[p.b]} | {100 * p.items.difference:+.1f} | {bounds(p.items)} | "
                     f"{pvalue(p.items_p)} | {len(systems[p.a])} vs {len(systems[p.b])} | "
                     f"{bounds(p.seeds) if p.seeds else '–'} | {pvalue(p.seeds_p)} | {verdict_text(p)} | "
                     f"{p.items.items} x {p.items.languages} |")
    item = study.settings["texts"].get("item", "an item")
    return [f"Paired differences on the same rows. Over items: the bootstrap resamples items ({item} with all its "
            f"translations) {resamples:,} times, each system's seeds averaged per row first; it holds the noise of "
            "the rows, for these trained models. Over seeds: Welch's t-interval on each seed's average accuracy over "
            "the same rows (a t quantile for the few seeds; none where a trained system has one seed); it asks "
            "whether another training run would keep the order. The p-values are two-sided and Holm-adjusted across "
            f"this table's {len(pairs)} pairs; a pair differs only when its adjusted p-value is below "
            f"{ALPHA:g}.", "", *table, ""]


def verdict_text(pair: Pair) -> str:
    if pair.equivalent:
        return f"no difference: both intervals inside ±{100 * pair.margin:g}"
    if not pair.differs:
        return "no difference shown" + (f"; an interval reaches past ±{100 * pair.margin:g}" if pair.margin else "")
    if pair.seeds is None:
        return "differs over items; seeds not measurable"
    return "differs, holds over seeds" if pair.holds_over_seeds else "differs over items, not over seeds"


def bounds(interval: Interval) -> str:
    return f"[{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]"


def pvalue(p: float | None) -> str:
    return "–" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def findings_section(done: dict[str, dict], pairs: dict[tuple[str, str], list[Pair]], units: list[Unit],
                     missing: list[Unit], study: Study) -> list[str]:
    """What the finished units show, in sentences computed from them: each system's average per measure (mean over
    its seeds, with their range), then per measure which paired differences hold after Holm's correction."""
    systems, label, shown = by_system(done, study), study.systems, measures(study)
    first = shown[0][:2]
    lines = ["## What the finished units show", "",
             "Generated from the units below, so it changes as units finish. Average accuracy over the "
             f"{len(next(iter(done.values()))['results'][first]['languages'])} languages, mean over "
             "seeds (min-max over seeds where there are several):", "",
             "| system | seeds | " + " | ".join(measure_name(m) for m in shown) + " |",
             "|---|---:|" + "---:|" * len(shown)]
    for name, records in systems.items():
        cells = []
        for scoring, protocol, _ in shown:
            s = seed_summary([r["results"][scoring, protocol]["average"]["accuracy"] for r in records])
            cells.append(f"{s['mean']:.1f}" + (f" ({s['min']:.1f}-{s['max']:.1f})" if s["n"] > 1 else ""))
        lines.append(f"| {label[name].label} | {len(records)} | " + " | ".join(cells) + " |")
    lines.append("")
    for measure in shown:
        found = pairs[measure[:2]]
        if not found:
            continue
        clear = [p for p in found if p.differs]
        lines += [f"**{measure_name(measure).capitalize()}.** Of {len(found)} pairs, {len(clear)} "
                  f"differ{'s' if len(clear) == 1 else ''} after Holm's correction across them (adjusted p < "
                  f"{ALPHA:g})" + (":" if clear else "."), ""]
        lines += [f"- {difference_sentence(p, study, systems)}" for p in clear] + ([""] if clear else [])
        near = [p for p in found if not p.differs and p.items.excludes_zero]
        if near:
            lines += ["Intervals over items that exclude 0 before the correction but not after it across the "
                      f"{len(found)} pairs, so not findings: "
                      + "; ".join(f"{label[p.a].label} vs {label[p.b].label} ({100 * p.items.difference:+.1f}, "
                                  f"{bounds(p.items)}, adjusted p {pvalue(p.items_p)})" for p in near) + ".", ""]
    if study.settings["equivalence_margin"] is not None:
        lines += verdicts_lines(pairs[first], study)
    planned = {name: sum(u.system.name == name and not u.sweep and not u.all_languages for u in units)
               for name in systems}
    fewer = [label[name].label for name, records in systems.items() if len(records) < planned[name]]
    if missing:
        lines += [f"{len(missing)} of {len(units)} units are missing (listed under Units): "
                  + (f"{', '.join(fewer)} rest{'s' if len(fewer) == 1 else ''} on fewer seeds than planned, and "
                     if fewer else "")
                  + "systems without a finished unit are absent from these sentences.", ""]
    return lines


def verdicts_lines(pairs: list[Pair], study: Study) -> list[str]:
    """Which pairs of the study's first measure have a verdict: an order, or no difference within the margin; and
    why each other pair has none yet."""
    label = {name: s.label for name, s in study.systems.items()}
    margin = study.settings["equivalence_margin"]
    ordered = [p for p in pairs if p.ordered]
    same = [p for p in pairs if p.equivalent]
    lines = [f"**Verdicts** (an order that holds over items and over seeds after the correction, or no difference "
             f"with both 95 % intervals inside ±{margin:g} points): {len(ordered) + len(same)} of {len(pairs)} "
             "pairs.", ""]
    lines += [f"- {label[p.a]} {'above' if p.items.difference > 0 else 'below'} {label[p.b]}: "
              f"{100 * p.items.difference:+.1f} points (items {bounds(p.items)}, seeds {bounds(p.seeds)})"
              for p in ordered]
    lines += [f"- no difference between {label[p.a]} and {label[p.b]}: {100 * p.items.difference:+.1f} points "
              f"(items {bounds(p.items)}, seeds {bounds(p.seeds)})" for p in same]
    open_pairs = [p for p in pairs if not p.ordered and not p.equivalent]
    if open_pairs:
        reasons: dict[str, list[str]] = {}
        for p in open_pairs:
            reason, detail = why_open(p)
            reasons.setdefault(reason, []).append(f"{label[p.a]} vs {label[p.b]}{detail}")
        lines += ([""] if ordered or same else []) + [
            f"No verdict yet for {plural(len(open_pairs), 'pair')}. "
            + " ".join(f"{reason}: {'; '.join(names)}." for reason, names in reasons.items())]
    return lines + [""]


def why_open(pair: Pair) -> tuple[str, str]:
    """Why a pair has no verdict (a sentence shared by pairs alike), and what is the pair's own ("" or a number)."""
    if pair.seeds is None:
        return "A trained system has one seed, so the seed noise is not measured", ""
    if pair.differs:
        return "They differ over items, not over seeds", ""
    if pair.holds_over_seeds:
        return "They differ over seeds, not over items", ""
    reach = max(abs(v) for i in (pair.items, pair.seeds) for v in (i.low, i.high))
    return (f"No difference shown, but an interval reaches past ±{100 * pair.margin:g} points (how far in "
            "brackets)", f" ({100 * reach:.1f})")


def difference_sentence(pair: Pair, study: Study, systems: dict[str, list[dict]]) -> str:
    """A difference over items, called a system being better only where it also holds over seeds; otherwise what
    the seeds run scored (the seed noise may be larger than the gap: on XNLI, one system's seeds spread 9.6 points)."""
    la, lb = study.systems[pair.a].label, study.systems[pair.b].label
    seeds = f"{len(systems[pair.a])} vs {len(systems[pair.b])} seeds"
    numbers = (f"{100 * pair.items.difference:+.1f} points, 95 % interval {bounds(pair.items)} over "
               f"{pair.items.items} items, adjusted p {pvalue(pair.items_p)}")
    if pair.holds_over_seeds:
        word = "better" if pair.items.difference > 0 else "worse"
        return (f"{la} is {word} than {lb}: {numbers}; over seeds it holds after the correction "
                f"({bounds(pair.seeds)}, adjusted p {pvalue(pair.seeds_p)}, {seeds}).")
    word = "higher" if pair.items.difference > 0 else "lower"
    text = f"{la} scores {word} than {lb} on the seeds run: {numbers}"
    if pair.seeds is None:
        return text + f" ({seeds}: the seed noise is not measured, so this is no verdict on the systems yet)."
    return (text + f"; over seeds it does not hold after the correction ({bounds(pair.seeds)}, adjusted p "
            f"{pvalue(pair.seeds_p)}, {seeds}), so this is no verdict on the systems.")


def measure_name(measure: tuple[str, str, str]) -> str:
    scoring, protocol, _ = measure
    return "choice scoring" if scoring == "choices" else f"generation ({protocol})"


def accuracy_section(done: dict[str, dict], measure: tuple[str, str, str], figures: Path, pairs: list[Pair],
                     resamples: int, out_dir: Path, study: Study) -> list[str]:
    scoring, protocol, title = measure
    task, texts = get_task(study.benchmark), study.settings["texts"]
    systems = by_system(done, study)
    langs = [lang for lang in task.languages if any(lang in r["results"][scoring, protocol]["languages"]
                                                    for r in done.values())]
    low = [lang for lang in task.low_resource if lang in langs]
    lines = [f"## {texts.get('table_name', study.benchmark)} accuracy, {title}", ""]

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
        results = [r["results"][scoring, protocol] for r in records]
        per_lang = {lang: [r["per_language"][lang]["accuracy"] for r in results if lang in r["per_language"]]
                    for lang in langs}
        avgs = [r["average"]["accuracy"] for r in results]
        lows = [r["low_resource_average"]["accuracy"] for r in results]
        label = study.systems[name].label
        mean_rows.append((label, "accuracy", {lang: stats.mean(v) for lang, v in per_lang.items() if v},
                          stats.mean(avgs), stats.mean(x for x in lows if x is not None) if low else None))
        paper = [r["paper_average"]["accuracy"] for r in results if "paper_average" in r]
        paper_means.append(stats.mean(paper) if paper else None)
        s = seed_summary(avgs)
        summary.append(f"| {label} | {s['n']} | {s['mean']:.1f} | {fmt(s['std'])} | {s['min']:.1f}-{s['max']:.1f} |")
        series[label] = [(min(v), stats.mean(v), max(v)) if v else None for v in per_lang.values()]
        series[label].append((min(avgs), stats.mean(avgs), max(avgs)))
    mean_extra = (extra[0], paper_means) if extra else None  # e.g. the paper protocol's MGSM average without Telugu
    lines += [markdown_table(langs, mean_rows, low, mean_extra), "", *summary, ""]
    lines += groups_section(systems, study, measure, langs, figures, out_dir)
    chart = figures / f"accuracy-{scoring}-{protocol}.png"
    spread_chart(chart, langs, series, f"{texts.get('table_name', study.benchmark)}, {title}",
                 chance=texts.get("chance"))
    lines += [f"![{texts.get('short', study.benchmark)} accuracy, {title}]({link(chart, out_dir)})", ""]
    return lines + pairs_section(systems, pairs, resamples, study)


def finished_kinds(units: list[Unit], missing: list[Unit]) -> str:
    """How many finished units of each kind the study has: "3 seeded or untrained, 12 learning-rate sweep"."""
    finished = [u for u in units if u not in missing]
    kinds = {"seeded or untrained": lambda u: not u.sweep and not u.all_languages,
             "learning-rate sweep": lambda u: u.sweep, "every-language": lambda u: u.all_languages}
    return ", ".join(f"{sum(map(kind, finished))} {name}" for name, kind in kinds.items()
                     if name == "seeded or untrained" or any(map(kind, units)))


def header(units: list[Unit], done: dict[str, dict], missing: list[Unit], study: Study) -> list[str]:
    settings = normalised(next(iter(done.values()))["settings"], study) if done else \
        settings_for(study).record()
    machines = sorted({f"{r['machine']['platform']}, {r['machine']['cpus']} CPUs, torch {r['machine']['torch']}, "
                       f"transformers {r['machine']['transformers']}" for r in done.values()})
    texts, arg = study.settings["texts"], study_argument(study)
    langs = settings["langs"] or get_task(study.benchmark).languages
    scored = {"choices": "choice scoring", "generate": f"greedy generation of up to {settings['max_new_tokens']} new "
              "tokens, scored under both protocols (the same outputs judged twice)"}
    lines = [f"# {study.settings['title'] or study.name}", "",
             f"Generated by `layalign study report {arg}` on {dt.date.today().isoformat()} from "
             f"{len(units) - len(missing)} finished of {len(units)} units ({finished_kinds(units, missing)}); run "
             f"with `layalign study run {arg}` (resumable). The study: "
             f"{study.relative(study.path)}.", ""]
    lines += [f"- models: {study.settings['models']}"] if study.settings["models"] else []
    lines += [f"- systems: {', '.join(s.label for s in study.systems.values())}; recipes in "
              f"{study.relative(study.recipes)}/",
              f"- evaluation: {texts.get('table_name', study.benchmark)}, {settings['limit']} rows per language, "
              f"{len(langs)} languages, the same rows for every unit; "
              f"{', and '.join(scored[s] for s in study.scorings)}; frozen encoder and LLM in "
              f"{settings.get('eval_dtype', 'float32')} for every system (the trained adapters in float32)",
              f"- training settings added to every stage: {' '.join(settings['train_settings']) or 'none'}",
              f"- machine(s): {'; '.join(machines) or 'none yet'}", ""]
    if any(normalised(r["settings"], study) != settings for r in done.values()):
        lines += ["**Note: the finished units were run with different settings** (see each unit.json).", ""]
    return lines


def units_section(units: list[Unit], done: dict[str, dict], missing: list[Unit], study: Study,
                  results: Path) -> list[str]:
    lines = ["## Units", "", f"- done ({len(done)}): {', '.join(done) or '-'}",
             f"- missing ({len(missing)}): {', '.join(u.name for u in missing) or '-'}", ""]
    lines += seeds_rule(study, results)
    if missing:
        lines += ["Finish them with:", "", "```bash", finish_command(missing, study),
                  f"layalign study report {study_argument(study)}", "```", ""]
    return lines


def seeds_rule(study: Study, results: Path) -> list[str]:
    """The study's rule for more seeds, and which systems it has given more (`runner.seed_counts`)."""
    rule = study.settings["more_seeds"]
    if not rule:
        return []
    label = {name: s.label for name, s in study.systems.items()}
    spreads = seed_spreads(study, results)
    counts = seed_counts(study, results, spreads)
    given = {s.seeds for s in study.systems.values() if s.seeded}
    lines = [f"Seeds: as the study file sets them{f' ({given.pop()} per trained system)' if len(given) == 1 else ''}"
             f", and {rule['seeds']} for a system whose seeds spread more than {rule['over']:g} points (max - min of "
             f"their average accuracy by {measure_name(measures(study)[0])}), decided once they are all done."]
    for name, count in counts.items():
        if (spread := spreads[name]) is None:
            continue
        planned = study.systems[name].seeds
        lines[-1] += (f" {label[name]}'s {planned} seeds spread {spread:.1f} points"
                      + (f": seeds {planned}-{count - 1} are added." if count > planned else "."))
    return lines + [""]


def normalised(settings: dict, study: Study) -> dict:
    """A recorded settings dict in today's form: paths relative to the study's root (older records hold absolute
    ones), without the fields that do not change what a unit computes (study name, device)."""
    out = {k: v for k, v in settings.items() if k not in ("study", "device")}
    for key in ("data", "recipes"):
        if key in out:
            out[key] = relative_path(out[key], study.root)
    return out


def choices_paper_note(done: dict[str, dict]) -> list[str]:
    same = all(r["results"]["choices", "paper"]["average"] == r["results"]["choices", "lenient"]["average"]
               for r in done.values())
    return [("Choice scoring gives the same accuracy under both protocols (its output is the label word itself), "
             "so it is shown once." if same else
             "**Choice scoring differs between the protocols for some unit** (results-paper.json beside each)."), ""]


def write_report(units: list[Unit], study: Study, results: Path, out: Path, resamples: int = 10_000) -> str:
    """Write the report of the finished units among `units`; the charts go beside the results folder."""
    from layalign.studies.all_languages import all_languages_section
    from layalign.studies.budget import sweep_section

    done = load_units(units, study, results)
    missing = [u for u in units if u.name not in done
               and not ((u.sweep or u.all_languages) and unit_done(u, results))]
    figures, texts, shown = results.parent, study.settings["texts"], measures(study)
    lines = header(units, done, missing, study)
    if done:
        systems = by_system(done, study)
        lines += budget_section(systems, study, shown[0][:2], settings_for(study).record(), results)
    lines += sweep_section(study, results)  # the sweep's own units, finished before any seeded one
    lines += units_section(units, done, missing, study, results)
    if done:
        pairs = {m[:2]: paired_differences(systems, study, m[0], m[1], resamples) for m in shown}
        lines += findings_section(done, pairs, units, missing, study)
        if texts.get("discussion") and (study.root / texts["discussion"]).is_file():
            lines += [(study.root / texts["discussion"]).read_text(encoding="utf-8").strip(), ""]
        lines += choices_paper_note(done) if "choices" in study.scorings else []
        for measure in shown:
            lines += accuracy_section(done, measure, figures, pairs[measure[:2]], resamples, out.parent, study)
        by = ("dev accuracy by choice scoring" if shown[0][0] == "choices" else
              f"{texts.get('short', study.benchmark)} accuracy by {measure_name(shown[0])}")
        lines += (training_section(done) + wall_time_section(done)
                  + fusion_section(done, figures, out.parent, study, shown[0][:2], by) + commands_section(done, study))
    lines += all_languages_section(units, study, results, resamples)
    if texts.get("parts_title"):
        lines += [f"## {texts['parts_title']}", ""]
    for part in texts.get("parts") or []:
        path = study.root / part["file"]
        lines += [path.read_text(encoding="utf-8").strip(), ""] if path.is_file() else [part.get("missing", ""), ""]
    out_text = "\n".join(lines).rstrip() + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(out_text, encoding="utf-8")
    return out_text
