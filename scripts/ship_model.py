"""Ship the best trained LayAlign of a study inside the package (src/layalign/pretrained/NAME/).

    python scripts/ship_model.py                          # XNLI: the best finished layalign-sN unit (dev, choices)
    python scripts/ship_model.py --unit layalign-s1       # a given unit
    python scripts/ship_model.py --study sib200           # SIB-200: layalign-sib200-e5-smollm2

The folder gets the unit's adapters and config (a few MB; the frozen encoder and LLM stay in the catalogue), a card
(card.json and README.md: the unit's recipes, commands, seed, steps, wall times, machine and dev scores under every
scoring and protocol the unit ran, and its every-language scores where the study's all-languages unit scored it) and
regression.json: the model's choice log-likelihoods on the benchmark's fixed regression subset of dev
(`layalign.evaluation.regression`), recomputed now in float32, which tests/test_pretrained.py compares against.

The adapters come from the unit's work folder (the study's `work`, git-ignored): ship on the machine that ran it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from layalign.files import relative_to_root

ROOT = Path(__file__).resolve().parents[1]
SCORINGS = ("choices", "generate")
PROTOCOLS = ("lenient", "paper")


def dev_scores(unit_dir: Path) -> dict:
    """{scoring: {protocol: {"average": .., "per_language": {lang: accuracy}, "n": rows, "truncated": {lang: rows
    cut to the length limits}, "lengths": {..}}}} from a finished unit, for every scoring it ran."""
    scores: dict = {}
    for scoring in SCORINGS:
        for protocol in PROTOCOLS:
            path = unit_dir / "eval" / scoring / f"results-{protocol}.json"
            if scoring != "choices" and not path.is_file():
                continue  # a study that scores by choices only
            results = json.loads(path.read_text("utf-8"))
            scores.setdefault(scoring, {})[protocol] = {
                "average": round(results["average"]["accuracy"], 4), "n": results["n"],
                "per_language": {lang: round(s["accuracy"], 4) for lang, s in results["per_language"].items()},
                "truncated": {lang: s["truncated"] for lang, s in results["per_language"].items()
                              if s.get("truncated")}, "lengths": results.get("lengths")}
    return scores


def every_language(units: Path, system: str, unit: str) -> dict | None:
    """The study's every-language evaluation of this unit's model (SYSTEM-all-languages, provisional or not), where
    it scored this unit: the average, each language group's (`layalign.studies.all_languages.language_groups`) and
    each language's accuracy, with the model's gates and with every gate at zero. None where it did not."""
    from layalign.studies.all_languages import language_groups

    folder = units / f"{system}-all-languages"
    if not (folder / "unit.json").is_file():
        return None
    record = json.loads((folder / "unit.json").read_text("utf-8"))
    if record["best_of"]["unit"] != unit:
        return None
    with_gates, zero = (json.loads((folder / "eval" / sub / "results-lenient.json").read_text("utf-8"))
                        for sub in ("choices", "choices-zero-gates"))
    per = {lang: s["accuracy"] for lang, s in with_gates["per_language"].items()}
    per_zero = {lang: s["accuracy"] for lang, s in zero["per_language"].items()}

    def mean(values: list[float]) -> float:  # languages weigh alike (each has the same rows)
        return round(sum(values) / len(values), 4)

    return {"unit": record["unit"], "languages": len(per), "rows": with_gates["n"],
            "average": mean(list(per.values())), "zero_gates_average": mean(list(per_zero.values())),
            "groups": [{"name": group, "languages": len(members), "accuracy": mean([per[g] for g in members]),
                        "zero_gates": mean([per_zero[g] for g in members])}
                       for group, members in language_groups(list(per))],
            "per_language": {lang: round(acc, 4) for lang, acc in per.items()}}


def build_card(name: str, unit_dir: Path, record: dict, scores: dict, seeds: dict[str, float],
               benchmark: str = "xnli", study: str = "xnli", title: str = "XNLI", planned: int | None = None,
               every: dict | None = None) -> dict:
    """The card: the unit's record and scores; `seeds`, the finished seeds it was chosen from, of `planned`;
    `every`, the study's every-language evaluation of this model (`every_language`)."""
    train = {}
    stages = [p.removeprefix("train-") for p in record["phases"] if p.startswith("train-")]  # in training order
    for stage_dir in (unit_dir / "train" / stage for stage in stages):
        log = [json.loads(line) for line in (stage_dir / "train_log.jsonl").read_text("utf-8").splitlines()
               if line.strip()]
        steps = max((r.get("step", 0) for r in log), default=0)
        dev = [r for r in log if "dev_loss" in r or "dev_ppl" in r]
        train[stage_dir.name] = {"steps": steps, "last_dev": dev[-1] if dev else None,
                                 "config": (stage_dir / "train_config.yaml").read_text("utf-8")}
    choices = scores["choices"]["lenient"]["average"]
    # a card ships in the wheel: its paths are the repository's (runs/..., ../shared/data), never this checkout's
    return relative_to_root({
        "name": name,
        "summary": (f"LayAlign on multilingual-e5-small + SmolLM2-135M-Instruct, trained on {title} "
                    f"({train.get('task', {}).get('steps')} task steps, seed {record['seed']}); {title} dev "
                    f"{choices:.1f} % by choice scoring, {len(scores['choices']['lenient']['per_language'])} "
                    "languages" + (f"; {every['average']:.1f} % over all {every['languages']}" if every else "")),
        "study": study, "source_unit": record["unit"], "seed": record["seed"], "system": record["label"],
        "train": train, "commands": record["commands"],
        "phases": record["phases"],
        "settings": record["settings"], "machine": record["machine"], "benchmark": benchmark, "dev": scores,
        # chosen on the same dev rows it is scored on: its score is the best of the seeds, not what a seed gets
        "selected_from": {"by": f"{title} dev accuracy, choice scoring", "seeds": seeds, "planned_seeds": planned},
        **({"every_language": every} if every else {}),
    }, ROOT)


def card_markdown(card: dict, regression: dict, title: str = "XNLI") -> str:
    benchmark, study = card.get("benchmark", "xnli"), card.get("study", "xnli")
    langs = list(card["dev"]["choices"]["lenient"]["per_language"])
    lines = [f"# {card['name']}", "", card["summary"] + ".", "",
             f"Trained by `layalign study run {study}` (unit `{card['source_unit']}`) and shipped by "
             "`scripts/ship_model.py`. Load it by name: `layalign generate \"...\" --model "
             f"{card['name']} --task {benchmark}`, `load_system(\"{card['name']}\")`.", "",
             *selection_note(card, title), *sweep_note(card), f"## {title} dev accuracy (%)", ""]
    # one row per language (a study may score dozens), one column per scoring and protocol
    columns = [(scoring, protocol) for scoring, by_protocol in card["dev"].items() for protocol in by_protocol]
    lines += ["| language | " + " | ".join(f"{scoring}, {protocol}" for scoring, protocol in columns) + " |",
              "|---|" + "---:|" * len(columns)]
    for lang in langs:
        lines.append(f"| {lang} | " + " | ".join(f"{card['dev'][s][p]['per_language'][lang]:.1f}" for s, p in columns)
                     + " |")
    lines.append("| **average** | " + " | ".join(f"**{card['dev'][s][p]['average']:.1f}**" for s, p in columns) + " |")
    n = card["dev"]["choices"]["lenient"]["n"]
    lines += ["", f"{n} rows ({n // len(langs)} per language), evaluation settings in card.json (`settings`).",
              *truncation_note(card["dev"]["choices"]["lenient"]), "", *every_language_markdown(card, title),
              "## Training", ""]
    for stage, info in card["train"].items():
        lines.append(f"- {stage}: {info['steps']} steps; last dev record {json.dumps(info['last_dev'])}")
    lines += ["", "Commands (from the unit's record):", "", "```bash"]
    lines += [c["command"] for c in card["commands"] if c["command"].startswith("layalign ")]
    lines += ["```", "", "## Regression subset", "",
              f"{title} dev, the first {regression['rows_per_language']} rows of {', '.join(regression['langs'])}, "
              f"choice scoring in {regression['dtype']}: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                                    regression["accuracy"].items())
              + f" (average {regression['average']:.1f}). tests/test_pretrained.py recomputes every row.", ""]
    return "\n".join(lines)


def every_language_markdown(card: dict, title: str) -> list[str]:
    every = card.get("every_language")
    if not every:
        return []
    lines = [f"## Every {title} language (dev, %)", "",
             f"The study's unit {every['unit']} scored this model by choices on all {every['languages']} languages "
             f"({every['rows']:,} rows): {every['average']:.1f} on average, {every['zero_gates_average']:.1f} with "
             "every fusion gate at zero (the same model without its fusion branch). Each language's accuracy is in "
             "card.json (`every_language`).", "", "| languages | n | accuracy | every gate at zero |",
             "|---|---:|---:|---:|"]
    lines += [f"| {g['name']} | {g['languages']} | {g['accuracy']:.1f} | {g['zero_gates']:.1f} |"
              for g in every["groups"]]
    return lines + [""]


def truncation_note(scores: dict) -> list[str]:
    """How many evaluated inputs were cut to the length limits, and the languages where every row was."""
    cut, n = scores.get("truncated") or {}, scores["n"]
    if not cut:
        return []
    per_language = n // len(scores["per_language"])
    whole = [lang for lang, rows in cut.items() if rows >= per_language]
    limits = scores.get("lengths") or {}
    return ["", f"Inputs cut to the length limits ({limits.get('max_source_length')} encoder tokens, "
            f"{limits.get('max_prompt_length')} LLM prompt tokens): {sum(cut.values()):,} of {n:,} rows, in "
            f"{len(cut)} languages" + (f"; every row of {', '.join(whole)}" if whole else "") + "."]


def sweep_note(card: dict) -> list[str]:
    """What a model shipped from a learning-rate sweep unit is: its task stage ran the sweep's steps, and it was
    scored on the sweep's rows only."""
    if "-lr" not in card["source_unit"]:
        return []
    return [f"Shipped from the learning-rate sweep unit {card['source_unit']}: its task stage ran the sweep's "
            f"{card['train'].get('task', {}).get('steps')} steps and it was scored on the sweep's rows (below); it "
            "is not one of the study's seeded units.", ""]


def selection_note(card: dict, title: str = "XNLI") -> list[str]:
    selected = card.get("selected_from") or {}
    seeds, planned = selected.get("seeds") or {}, selected.get("planned_seeds")
    if len(seeds) == 1 and planned and planned > 1:  # shipped before the study's other seeds finished
        return [f"The only one of the study's {planned} planned seeds finished when it shipped ({title} dev, choice "
                f"scoring: {next(iter(seeds.values())):.1f}); once the others finish, `python scripts/ship_model.py "
                f"--study {card.get('study', 'xnli')}` ships the best of them.", ""]
    if len(seeds) < 2:
        return []
    mean = sum(seeds.values()) / len(seeds)
    return [f"Chosen as the best of {len(seeds)} seeds by {title} dev accuracy (choice scoring: "
            + ", ".join(f"{unit} {acc:.1f}" for unit, acc in seeds.items())
            + f"; mean {mean:.1f}), on the rows it is scored on below: its scores are the best seed's, so expect a "
            f"retrained model to land nearer the mean (the study's report: `layalign study report "
            f"{card.get('study', 'xnli')}`).", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="xnli", help="the study whose units to ship from (default: xnli)")
    parser.add_argument("--unit", default=None, help="a finished unit, e.g. layalign-s0 (default: the best seed)")
    parser.add_argument("--units", type=Path, default=None, help="the committed unit folders (default: the study's)")
    parser.add_argument("--name", default=None, help="default: layalign-BENCHMARK-e5-smollm2")
    parser.add_argument("--data", default=None, help="the benchmark's dev data, for the regression subset "
                                                     "(default: the study's eval data)")
    args = parser.parse_args(argv)

    from layalign.evaluation.regression import regression_rows
    from layalign.files import replace_directory
    from layalign.model.config import ADAPTER_NAME, CONFIG_NAME
    from layalign.pretrained import CARD, REGRESSION, SHIPPED_DIR
    from layalign.studies.runner import best_seed, seed_counts
    from layalign.studies.spec import load_study
    from layalign.systems import load_system

    study = load_study(args.study)
    units = args.units or study.root / study.results
    title = study.settings["texts"].get("short", study.benchmark)
    name = args.name or f"layalign-{study.benchmark}-e5-smollm2"
    data = args.data or str(study.root / study.settings["data"] / study.eval_data)
    # the best LayAlign seed finished so far (the study runner's rule); a unit named by hand (a sweep unit, say) may
    # ship before any seed has finished
    try:
        best = best_seed(study.systems["layalign"], study, units, finished_only=True)
    except ValueError as err:
        if args.unit is None:
            raise SystemExit(f"{err} (`layalign study run {study.name} --units layalign-s0`)") from None
        best = {"accuracy": {}}
    seeds = {unit: round(accuracy, 4) for unit, accuracy in best["accuracy"].items()}
    unit_dir = units / (args.unit or best["unit"])
    record = json.loads((unit_dir / "unit.json").read_text("utf-8"))
    model_dir = ROOT / record["model_dir"]  # recorded relative to the repository root (an absolute one stays)
    if not (model_dir / ADAPTER_NAME).is_file():
        raise SystemExit(f"{model_dir} (the unit's model) is not here: ship on the machine that ran {unit_dir.name}")
    card = build_card(name, unit_dir, record, dev_scores(unit_dir), seeds, study.benchmark, study.name, title,
                      planned=seed_counts(study, units)["layalign"],
                      every=every_language(units, "layalign", unit_dir.name))

    def build(folder: Path) -> None:
        for file in (ADAPTER_NAME, CONFIG_NAME):
            shutil.copyfile(model_dir / file, folder / file)  # not the 0600 mode: an installed file is read by all
        regression = regression_rows(load_system(str(folder), device="cpu", dtype="float32"), data,
                                     benchmark=study.benchmark)
        (folder / CARD).write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (folder / REGRESSION).write_text(json.dumps(regression, indent=1, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
        (folder / "README.md").write_text(card_markdown(card, regression, title), encoding="utf-8")

    target = replace_directory(SHIPPED_DIR / name, build)
    print(f"shipped {unit_dir.name} as {name}: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
