"""A study's languages in groups, and each system's per-language gain over a baseline: the report's view of where a
method helps. A study names them in its YAML file:

    groups:                       # name -> languages; "rest": the study's languages no earlier group holds
      English: [eng_Latn]
      trained in the task stage: [arb_Arab, fra_Latn]
      no stage trained on: rest
    gain_over: llm-lora           # a trained system; every other trained system's gain over it, per language

Both are descriptive: a group's accuracy is the mean over its languages of each seed's per-language accuracy (mean
and min-max over seeds), and a gain is the difference of two systems' means over seeds in one language. Which
differences hold is the paired statistics' job (the report's pairs tables), not this section's.
"""

from __future__ import annotations

import statistics as stats
from pathlib import Path

from layalign.studies.spec import Study

REST = "rest"


def resolve_groups(study: Study, langs: list[str]) -> dict[str, list[str]]:
    """{group: its languages among `langs`, in `langs`' order}; "rest" takes what no other group holds."""
    groups = study.settings.get("groups") or {}
    taken = {lang for members in groups.values() if members != REST for lang in members}
    out = {}
    for name, members in groups.items():
        if chosen := [lang for lang in langs if (lang not in taken if members == REST else lang in members)]:
            out[name] = chosen
    return out


def per_language_means(records: list[dict], scoring: str, protocol: str, langs: list[str]) -> dict[str, float]:
    """A system's accuracy per language, the mean over its seeds (languages some seed lacks are left out)."""
    out = {}
    for lang in langs:
        values = [r["results"][scoring, protocol]["per_language"][lang]["accuracy"] for r in records
                  if lang in r["results"][scoring, protocol]["per_language"]]
        if len(values) == len(records):
            out[lang] = stats.mean(values)
    return out


def groups_section(systems: dict[str, list[dict]], study: Study, measure: tuple[str, str, str], langs: list[str],
                   figures: Path, out_dir: Path) -> list[str]:
    """The groups table and the gain chart of one measure; nothing where the study names neither."""
    scoring, protocol, title = measure
    groups = resolve_groups(study, langs)
    lines = []
    if groups:
        heads = [f"{name} ({len(members)})" for name, members in groups.items()] + [f"all ({len(langs)})"]
        lines += [f"Accuracy by language group, {title} (%): per seed the mean over the group's languages; the mean "
                  "over seeds, and min-max over seeds where a system has several:", "",
                  "| system | seeds | " + " | ".join(heads) + " |", "|---|---:|" + "---:|" * len(heads)]
        for name, records in systems.items():
            cells = []
            for members in [*groups.values(), langs]:
                per_seed = [stats.mean(r["results"][scoring, protocol]["per_language"][lang]["accuracy"]
                                       for lang in members) for r in records]
                spread = f" ({min(per_seed):.1f}-{max(per_seed):.1f})" if len(per_seed) > 1 else ""
                cells.append(f"{stats.mean(per_seed):.1f}{spread}")
            lines.append(f"| {study.systems[name].label} | {len(records)} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines + gain_section(systems, study, measure, langs, groups, figures, out_dir)


def gain_section(systems: dict[str, list[dict]], study: Study, measure: tuple[str, str, str], langs: list[str],
                 groups: dict[str, list[str]], figures: Path, out_dir: Path) -> list[str]:
    """Each trained system's per-language gain over the study's `gain_over` system, sorted, as a chart, with a
    sentence per system counted from the same numbers."""
    from layalign.studies.sections import link

    scoring, protocol, title = measure
    base = study.settings.get("gain_over")
    if not base or base not in systems:
        return []
    base_means = per_language_means(systems[base], scoring, protocol, langs)
    gains = {}
    for name, records in systems.items():
        if name == base or not study.systems[name].seeded:
            continue
        means = per_language_means(records, scoring, protocol, langs)
        gains[name] = {lang: means[lang] - base_means[lang] for lang in langs if lang in means and lang in base_means}
    gains = {name: g for name, g in gains.items() if g}
    if not gains:
        return []
    base_label = study.systems[base].label
    lines = [f"Gain over {base_label} per language, {title} (points; each system's mean over its seeds minus "
             f"{base_label}'s, {len(systems[base])} seed(s)):", ""]
    for name, gain in gains.items():
        values = sorted(gain.values())
        above, below = sum(v > 0 for v in values), sum(v < 0 for v in values)
        lines.append(f"- {study.systems[name].label} ({len(systems[name])} seed(s)): above in {above} of "
                     f"{len(values)} languages, below in {below}; median {stats.median(values):+.1f}, from "
                     f"{values[0]:+.1f} ({min(gain, key=gain.get)}) to {values[-1]:+.1f} ({max(gain, key=gain.get)})")
    lines += truncation_split(gains, systems[base], base_label, study, (scoring, protocol))
    chart = figures / f"gain-{scoring}-{protocol}.png"
    gain_chart(chart, gains, {n: study.systems[n].label for n in gains}, groups, f"gain over {base_label}, {title}")
    return lines + ["", f"![gain over {base_label}, {title}]({link(chart, out_dir)})", ""]


def truncation_split(gains: dict[str, dict[str, float]], base: list[dict], base_label: str, study: Study,
                     measure: tuple[str, str]) -> list[str]:
    """The median gains where the baseline's inputs were mostly cut to the length limits against the rest: a gain
    there may be the encoder reading what the baseline's LLM never saw, not the method."""
    from layalign.studies.sections import plural

    per_language = base[0]["results"][measure]["per_language"]  # every seed reads the same inputs
    langs = next(iter(gains.values()))
    cut = [lang for lang in langs if per_language[lang].get("truncated", 0) > per_language[lang].get("n", 0) / 2]
    rest = [lang for lang in langs if lang not in cut]
    if not cut or not rest:
        return []

    def medians(members: list[str]) -> str:
        return ", ".join(f"{study.systems[name].label} {stats.median(gain[lang] for lang in members):+.1f}"
                         for name, gain in gains.items())

    return [f"- Where {base_label}'s inputs were cut to the length limits on more than half of the rows "
            f"({plural(len(cut), 'language')}: {' '.join(cut)}), the median gain is: {medians(cut)}; in the other "
            f"{plural(len(rest), 'language')}: {medians(rest)}."]


def gain_chart(path: Path, gains: dict[str, dict[str, float]], labels: dict[str, str],
               groups: dict[str, list[str]], title: str) -> None:
    """One panel per system: its per-language gains sorted, bars coloured by language group."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg

    colours = {lang: f"C{i}" for i, members in enumerate(groups.values()) for lang in members}
    width = max(7.0, 0.18 * max(len(g) for g in gains.values()))
    fig = Figure(figsize=(width, 2.6 * len(gains)), layout="constrained")
    axes = fig.subplots(len(gains), 1, squeeze=False)[:, 0]
    for ax, (name, gain) in zip(axes, gains.items(), strict=True):
        order = sorted(gain, key=gain.get)
        ax.bar(range(len(order)), [gain[lang] for lang in order], color=[colours.get(lang, "C7") for lang in order])
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(order)), order, rotation=90, fontsize="x-small")
        ax.set_ylabel("points")
        ax.set_title(f"{labels[name]}: {title}", fontsize="small")
    if groups:
        from matplotlib.patches import Patch

        axes[0].legend(handles=[Patch(color=f"C{i}", label=name) for i, name in enumerate(groups)],
                       fontsize="x-small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
