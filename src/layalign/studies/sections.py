"""The report's later sections, each from the finished units' records: training, wall time, what the best LayAlign
unit fuses (with its measured diagnostics), and the exact commands; and the accuracy chart."""

from __future__ import annotations

import json
import os
import statistics as stats
from pathlib import Path

from layalign.evaluation.report import AVG
from layalign.studies.runner import DIAGNOSTICS, read_jsonl, relative_command
from layalign.studies.spec import Study, relative_path

RESUMED, PARTIAL, SHARED = "†", "‡", "§"
SHARED_NOTE = ("A stage trained once for every unit of its system and seed (the sweep's units and the seed-0 unit "
               "start their task stage from the same first stage): its training time (elapsed_s in its "
               "stage_result.json), counted in the total of every unit that uses it.")


def by_system(done: dict[str, dict], study: Study) -> dict[str, list[dict]]:
    """The finished units grouped by system, in the study's order."""
    systems: dict[str, list[dict]] = {}
    for record in done.values():
        systems.setdefault(record["system"], []).append(record)
    order = list(study.systems)
    return {name: systems[name] for name in sorted(systems, key=order.index)}


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
        ax.axhline(chance, color="grey", linewidth=0.8, linestyle="--")  # e.g. XNLI's chance: three balanced labels
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
            log = read_jsonl(stage_dir / "train_log.jsonl")
            losses = [r["loss"] for r in log if "loss" in r]
            dev = [r["dev_ppl"] for r in log if "dev_ppl" in r]
            steps = max((r["step"] for r in log), default=0)
            result = json.loads((stage_dir / "stage_result.json").read_text())["model"] \
                if (stage_dir / "stage_result.json").is_file() else "?"
            seconds, mark = phase_seconds(record["phases"].get(f"train-{stage_dir.name}") or {})
            lines.append(f"| {record['unit']} | {stage_dir.name} | {steps} | {_mean(losses[:10])} | "
                         f"{_mean(losses[-10:])} | {f'{dev[0]:.2f} -> {min(dev):.2f}' if dev else '–'} | {result} | "
                         f"{fmt(seconds / 60 if seconds else None)}{mark} |")
    if any((p or {}).get("resumed") for r in done.values() for n, p in r["phases"].items() if n.startswith("train-")):
        lines += ["", f"{RESUMED}, {PARTIAL}: a resumed stage, as under the wall-time table below."]
    if any((p or {}).get("shared") for r in done.values() for p in r["phases"].values()):
        lines += ["", f"{SHARED} {SHARED_NOTE}"]
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
            cells.append(fmt(seconds / 60 if seconds is not None else None) + mark)
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
    if SHARED in marks:
        lines.append(f"{SHARED} {SHARED_NOTE}")
    if PARTIAL in marks:
        lines.append(f"{PARTIAL} A phase resumed where an earlier run stopped, without a record of the earlier runs' "
                     "time (a training stage resumed from a checkpoint written before runs recorded it, or an "
                     "evaluation resumed from its saved predictions): the last run's time only, so a lower bound (as "
                     "is the unit's total).")
    return lines + [""]


def phase_seconds(phase: dict) -> tuple[float | None, str]:
    """A phase's wall time for the table, and its mark: a resumed phase counts all its runs where known."""
    if phase.get("shared"):
        return phase.get("stage_elapsed_s"), SHARED
    if not phase.get("resumed"):
        return phase.get("seconds"), ""
    if phase.get("stage_elapsed_s") is not None:
        return phase["stage_elapsed_s"], RESUMED
    return phase.get("seconds"), PARTIAL


def fusion_model(record: dict, study: Study) -> tuple[str | None, str]:
    """Where the unit's adapters are, and how the report names them: its work folder's model (recorded relative to
    the study's root; older records absolute), else a model shipped in the package from this unit (its card names
    the unit)."""
    from layalign.pretrained import card, shipped_models

    recorded = relative_path(record["model_dir"], study.root)
    if (study.root / recorded).is_dir():
        return str(study.root / recorded), recorded
    shipped = next((name for name in shipped_models() if card(name).get("source_unit") == record["unit"]), None)
    return shipped, f"the model shipped from this unit, `{shipped}`"


def fusion_section(done: dict[str, dict], figures: Path, out_dir: Path, study: Study, measure: tuple[str, str],
                   by: str) -> list[str]:
    """The best LayAlign unit's gates and layer mix beside their initialisation (where its first stage's
    fusion_init.json is kept), its top encoder layers only for the rows that moved beyond their initialisation
    spread, and the branch's measured contribution (every gate at zero) where diagnostics.json holds it."""
    from layalign.inspection import FUSION_INIT, InspectError, describe, load_fusion_weights, plot, read_fusion_init

    layalign = [r for r in done.values() if r["system"] == "layalign"]
    lines = ["## What the best LayAlign unit fuses: gates, layer mix, and the branch's measured contribution", ""]
    if not layalign:
        return lines + ["No LayAlign unit is finished yet.", ""]
    best = max(layalign, key=lambda r: r["results"][measure]["average"]["accuracy"])
    lines.append(f"The LayAlign unit with the highest {by}: {best['unit']} "
                 f"({best['results'][measure]['average']['accuracy']:.1f} %).")
    model, named = fusion_model(best, study)
    try:
        weights = load_fusion_weights(model) if model else None
    except (InspectError, FileNotFoundError):
        weights = None
    if weights is None:
        return lines + ["", f"Its adapters are neither in the work folder nor shipped; rerun "
                        f"`layalign study run {study.name} --units {best['unit']}` on a machine that keeps the work "
                        "folder to draw them.", ""]
    init_path = best["folder"] / DIAGNOSTICS.parent / FUSION_INIT
    init = read_fusion_init(init_path) if init_path.is_file() else None
    png = plot(weights, figures / f"fusion-{best['unit']}.png")
    for stale in set(figures.glob("fusion-*.png")) - {png}:  # the chart of an earlier best unit
        stale.unlink()
    where = f"{relative_path(init_path, study.root)}" if init else "not kept for this unit"
    return lines + ["", f"![gates and layer mix of {best['unit']}]({link(png, out_dir)})", "",
                    f"Read from {named}; the weights at initialisation: {where}.", "", "```",
                    describe(weights, init=init), "```", "",
                    *diagnostics_lines(_read(best["folder"] / DIAGNOSTICS), init is not None)]


def diagnostics_lines(diagnostics: dict, init_known: bool) -> list[str]:
    """diagnostics.json's zero-gate measurement in a sentence, and 'not measured' for what is not known."""
    zero = diagnostics.get("zero_gates") or {}
    lines = [] if init_known else [
        "- Layer-mix weights beside their initialisation: not measured (the unit kept no fusion_init.json), so no "
        "top-encoder-layers reading is shown: weights that have not left their random initialisation range would "
        "describe noise."]
    if zero.get("accuracy_with_gates") is not None:
        lines.append(f"- The fusion branch's contribution, measured: with every gate set to zero (no retraining; "
                     f"{zero.get('scoring', '?')} scoring, {zero.get('rows', '?')} rows), accuracy goes from "
                     f"{zero['accuracy_with_gates']:.1f} % to {zero['accuracy_zero_gates']:.1f} % "
                     f"({zero['accuracy_zero_gates'] - zero['accuracy_with_gates']:+.1f} points); "
                     f"{zero.get('changed', '?')} predictions change; mean KL divergence KL(with gates || zero "
                     "gates) of the answer distributions "
                     f"{zero.get('mean_kl', float('nan')):.3f} nats.")
    else:
        lines.append("- The fusion branch's contribution (accuracy with every gate set to zero): not measured for "
                     "this unit. Gate size alone does not tell it: small gates can multiply large values.")
    return lines + [""]


def commands_section(done: dict[str, dict], study: Study) -> list[str]:
    """The exact commands of the first finished unit of each system, as unit.json recorded them."""
    lines = ["## Exact commands", "", "Each unit records the commands it ran in its unit.json; the first finished unit "
             "of each system (the others differ only in `seed=` and their folders), run from the repository root with "
             "../shared beside it:", ""]
    for name, records in by_system(done, study).items():
        record = records[0]
        lines += [f"{study.systems[name].label} ({record['unit']}):", "", "```bash",
                  *[relative_command(c["command"], study.root) for c in record["commands"]], "```", ""]
    return lines


def link(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(path, out_dir)).as_posix()


def plural(n: int, word: str) -> str:
    """"1 language", "2 languages"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _mean(values: list[float]) -> str:
    return f"{stats.mean(values):.3f}" if values else "–"


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
