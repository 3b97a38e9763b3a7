"""The report's section on a study's `all_languages` unit: the best seed of a system evaluated on every language of
the benchmark, with its gates and with every gate at zero (the fusion branch's contribution, no retraining), overall
and by language group: the encoder's pretraining languages and the rest, and each script that at least
MIN_SCRIPT languages are written in (Flores-200 codes only: SIB-200)."""

from __future__ import annotations

import json
from pathlib import Path

from layalign.data.flores import ENCODER_LANGUAGES, FLORES_CODE, SCRIPTS, script
from layalign.evaluation.statistics import aligned, correctness, paired_bootstrap
from layalign.studies.runner import MARKER, ZERO_GATES, finish_command, provisional, read_jsonl
from layalign.studies.spec import Study, Unit

MIN_SCRIPT = 5  # a script's own row needs this many languages


def language_groups(langs: list[str]) -> list[tuple[str, list[str]]]:
    """(name, languages) of the section's rows: every language, then, for Flores-200 codes, the encoder's
    pretraining languages and the rest, then each script of at least MIN_SCRIPT languages (most languages first)."""
    groups = [(f"every language ({len(langs)})", langs)]
    if not all(FLORES_CODE.fullmatch(lang) for lang in langs):
        return groups
    seen = [lang for lang in langs if lang in ENCODER_LANGUAGES]
    groups += [("in the encoder's pretraining set", seen), ("outside it", [g for g in langs if g not in seen])]
    scripts: dict[str, list[str]] = {}
    for lang in langs:
        scripts.setdefault(script(lang), []).append(lang)
    for code, members in sorted(scripts.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if len(members) >= MIN_SCRIPT:
            groups.append((f"{SCRIPTS.get(code, code)} script", members))
    return groups


def all_languages_section(units: list[Unit], study: Study, results: Path, resamples: int = 10_000) -> list[str]:
    unit = next((u for u in units if u.all_languages), None)
    if unit is None:
        return []
    folder = results / unit.name
    lines = [f"## Every language: the best seed of {unit.system.label}", ""]
    if not (folder / MARKER).is_file():
        return lines + [f"Not run yet. Once every seed of {unit.system.label} is done: "
                        f"`{finish_command([unit], study)}` (before then, with `--best-so-far`, on the best seed so "
                        "far).", ""]
    record = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    best = record["best_of"]
    if provisional(record):
        lines += [f"**Provisional:** run with `--best-so-far` when {len(best['accuracy'])} of {unit.system.label}'s "
                  f"{best['planned']} seeds were done. Once every seed is, `{finish_command([unit], study)}` runs it "
                  "again: it only collects where the best seed is the same, and evaluates the new best where not.",
                  ""]
    with_gates = read_jsonl(folder / "eval" / "choices" / "predictions.jsonl")
    zero = read_jsonl(folder / "eval" / ZERO_GATES / "predictions.jsonl")
    (a, b), _, langs = aligned([[correctness(with_gates)], [correctness(zero)]])
    seeds = ", ".join(f"{name} {accuracy:.1f}" for name, accuracy in best["accuracy"].items())
    lines += [f"{best['unit']}, the best of {len(best['accuracy'])} seeds on the study's languages (choice scoring: "
              f"{seeds}), choice-scored on {len(langs)} languages x {a.shape[0]} dev rows, with its gates and with "
              f"every gate at zero (the same model; the fusion branch's contribution). Chosen on the study's dev "
              "rows, which these include: its scores there are the best seed's. Intervals: 95 % paired bootstrap "
              f"over items ({resamples:,} resamples, each item's languages kept together).", "",
              "| languages | n | with its gates [95 % interval] | every gate at zero | difference [95 % interval] |",
              "|---|---:|---|---:|---|"]
    for name, members in language_groups(langs):
        cols = [langs.index(lang) for lang in members]
        alone = paired_bootstrap(a[:, cols], 0 * a[:, cols], resamples=resamples, seed=0)  # its accuracy's interval
        interval = paired_bootstrap(a[:, cols], b[:, cols], resamples=resamples, seed=0)
        lines.append(f"| {name} | {len(members)} | {100 * a[:, cols].mean():.1f} [{100 * alone.low:.1f}, "
                     f"{100 * alone.high:.1f}] | {100 * b[:, cols].mean():.1f} | {100 * interval.difference:+.1f} "
                     f"[{100 * interval.low:+.1f}, {100 * interval.high:+.1f}] |")
    return lines + [""]
