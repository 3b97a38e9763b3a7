"""The report's first table: what each system was given, read from its units' records (the training config as run,
the stage result, the evaluation's truncation counts) and from the study (how its learning rate was chosen), and its
trainable parameters counted on the model its first stage builds."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import yaml

from layalign.studies.runner import DIVERGED, finished_pick, sweep_results, sweep_scores
from layalign.studies.sections import plural
from layalign.studies.spec import Study, System


def budget_section(systems: dict[str, list[dict]], study: Study, measure: tuple[str, str], settings: dict,
                   results: Path) -> list[str]:
    """One row per system, from its first finished unit (the seeds of a system share their recipe); a system
    without one is read from its recipes, the study's settings and the sweep's pick in `results`, marked planned."""
    lines = ["## What each system was given", "",
             "Read from each system's first finished unit: the training config as run (train_config.yaml), which "
             "checkpoint the stage kept (stage_result.json), and the evaluation's truncation counts; the trainable "
             "parameters are counted on the model the first stage builds. A system without a finished unit is read "
             "from its recipes (planned).", "",
             "| system | trainable parameters | optimiser steps | data each stage saw | learning rate and schedule | "
             "rate chosen how | kept checkpoint | truncated inputs |", "|---|---:|---|---|---|---|---|---|"]
    notes = []
    for name, system in study.systems.items():
        record = systems[name][0] if name in systems else None
        stages = stage_records(record["folder"]) if record else planned_stages(system, study, settings, results)
        steps = " + ".join(f"{stage} {result.get('step', '?')}" for stage, (_, result) in stages.items()) or "none"
        data = "; ".join(f"{stage}: {stage_data(config, result)}" for stage, (config, result) in stages.items())
        rates = "; ".join(f"{stage}: {schedule(config)}" for stage, (config, _) in stages.items())
        kept = "; ".join(f"{stage}: {kept_checkpoint(config, result)}" for stage, (config, result) in stages.items())
        policy = system.learning_rate
        if policy is None:
            how = "–"
        elif policy.same_as:
            how = f"{study.systems[policy.same_as].label}'s swept rate (an ablation: one change)"
        elif policy.swept:
            how = "swept on dev (below)"
        else:
            how = "fixed" + ("" if policy.tuned else ", **untuned**") + f" (note {len(notes) + 1})"
            notes.append(f"{len(notes) + 1}. {system.label}: {policy.reason}.")
        params = trainable_of(stages)
        label = system.label if record else f"{system.label} (planned)"
        lines.append(f"| {label} | {f'{params:,}' if params is not None else 'not measured'} | {steps} | "
                     f"{data or 'no training'} | {rates or '–'} | {how} | {kept or '–'} | "
                     f"{truncated(record['results'][measure]) if record else 'not run'} |")
    return lines + ["", *notes, ""] if notes else lines + [""]


def stage_records(folder: Path) -> dict[str, tuple[dict, dict]]:
    """stage -> (its training config as run, its stage_result.json), translation first."""
    out = {}
    for stage_dir in sorted((folder / "train").glob("*"), key=lambda p: p.name != "translation"):
        config = yaml.safe_load((stage_dir / "train_config.yaml").read_text(encoding="utf-8")) \
            if (stage_dir / "train_config.yaml").is_file() else {}
        result = json.loads((stage_dir / "stage_result.json").read_text(encoding="utf-8")) \
            if (stage_dir / "stage_result.json").is_file() else {}
        out[stage_dir.name] = (config, result)
    return out


def planned_stages(system: System, study: Study, settings: dict, results: Path) -> dict[str, tuple[dict, dict]]:
    """What a system's stages will be given, from its recipes, their overrides, the study's steps and, for a swept
    rate, the sweep's pick (until the sweep is done: "swept, not picked yet"): the same shape as `stage_records` (the
    step a stage will end at, the checkpoint its recipe selects)."""
    out = {}
    for stage in system.stages:
        config = recipe_defaults() | (yaml.safe_load((study.recipes / stage.recipe).read_text(encoding="utf-8")) or {})
        for override in stage.overrides:
            key, _, value = override.partition("=")
            *parents, leaf = key.split(".")
            target = config
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = yaml.safe_load(value)
        steps = settings["steps"] if stage.name == "task" else (settings.get("stage1_steps")
                                                                 or config.get("max_steps"))
        policy = system.learning_rate
        if stage.name == "task" and policy is not None and policy.swept and study.lr_sweep is not None:
            config["learning_rate"] = finished_pick(sweep_results(study, study.systems.get(policy.same_as, system),
                                                                  results))
        out[stage.name] = (config, {"step": steps, "select": config.get("select", "best"),
                                    "model": config.get("select", "best")})
    return out


def recipe_defaults() -> dict:
    """What a recipe that leaves a field out trains with (TrainConfig's defaults)."""
    from dataclasses import MISSING, fields

    from layalign.training import TrainConfig

    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def stage_data(config: dict, result: dict) -> str:
    """"8 languages (en de ...), 1,000 sampled each, 80 held out for dev; 2,400 examples seen (300 x 8)"."""
    from layalign.data.flores import LANGUAGE_SETS

    parts = []
    for source in config.get("train_data") or []:
        # codes, or the names of Flores-200 sets (SIB-200 readers): "task" is six languages, not four letters
        given = source.get("langs") or []
        langs = [code for item in ([given] if isinstance(given, str) else given)
                 for code in (LANGUAGE_SETS.get(item) or [item])]
        each = source.get("sample") or source.get("limit")
        parts.append(f"{plural(len(langs), 'language')} ({' '.join(langs)})"
                     + (f", up to {each:,} each" if each else ""))
    batch = config.get("batch_size", 0) * config.get("gradient_accumulation_steps", 1)
    steps = result.get("step")
    seen = f"{steps * batch:,} examples seen ({steps} x {batch})" if steps and batch else "examples seen unknown"
    held = f", {config['dev_size']} held out for dev" if config.get("dev_size") else ""
    return f"{' + '.join(parts) or 'unknown'}{held}; {seen}"


def schedule(config: dict) -> str:
    if "learning_rate" not in config:
        return "not recorded"
    if config["learning_rate"] is None:  # a planned stage whose rate the sweep has not picked yet
        return "swept, not picked yet"
    warmup = config.get("warmup_ratio")
    return (f"{config['learning_rate']:g}, {config.get('lr_scheduler', 'cosine')}"
            + (f" after {100 * warmup:g} % warm-up" if warmup else ""))


def kept_checkpoint(config: dict, result: dict) -> str:
    chosen = result.get("model")
    if chosen == "best":
        return (f"lowest dev perplexity ({config.get('dev_size', '?')} held-out examples, every "
                f"{config.get('eval_every', '?')} steps)")
    if chosen == "final":
        return "the final step's" + (" (select: final)" if result.get("select") == "final" else " (no dev data)")
    return "not recorded"


def truncated(results: dict) -> str:
    """Inputs cut in the evaluation: "505 of 3,000", summed over languages ("not recorded" where the run did not
    count them)."""
    if results.get("truncated") is None:
        return "not recorded"
    per = results["per_language"].values()
    return f"{sum(s.get('truncated') or 0 for s in per):,} of {sum(s['n'] for s in per):,}"


def trainable_of(stages: dict[str, tuple[dict, dict]]) -> int | None:
    """Trainable parameters of the model the first stage builds (a later stage starts from it, training the same
    tensors); 0 for a system without training; None when it cannot be built here (its models are not available)."""
    if not stages:
        return 0
    config = next(iter(stages.values()))[0]
    model = config.get("model") or {}
    if not model:
        return None
    return count_trainable(json.dumps(model, sort_keys=True))


@functools.cache
def count_trainable(model_json: str) -> int | None:
    """Build the model a recipe's `model` names (loading its frozen encoder and LLM) and count what trains."""
    from layalign.model.config import LayAlignConfig
    from layalign.model.lora import LORA_VARIANT, LLMLoRAModel, LoRAConfig
    from layalign.model.modeling import LayAlignModel

    model = json.loads(model_json)
    try:
        built = LLMLoRAModel(LoRAConfig.from_dict(model)) if model.get("variant") == LORA_VARIANT else \
            LayAlignModel(LayAlignConfig.from_dict(model))
    except (OSError, ValueError, KeyError):
        return None
    return built.num_trainable_parameters()


def truncation(found: dict[str, dict | None]) -> str:
    """How many of a system's sweep inputs were cut to the study's length limits (the same rows and limits at every
    rate: its first finished rate's count), or "–"."""
    for results in found.values():
        if results and "truncated" in results:
            return f"{results['truncated']:,} of {results['n']:,}"
    return "–"


def sweep_section(study: Study, results: Path) -> list[str]:
    """The learning-rate sweep: each swept system's dev accuracy per rate so far, and the rate its seeded units use
    once all its rates are done (the runner's rule, read from the sweep units themselves)."""
    sweep = study.lr_sweep
    if sweep is None:
        return []
    values = [f"{v:g}" for v in sweep.values]
    lines = ["## The learning-rate sweep", "",
             f"Every trained system's task-stage rate, picked by the same sweep: {', '.join(values)}, seed "
             f"{sweep.seed}, {sweep.steps} task steps, the first {sweep.rows} eval rows per language, scored by "
             f"{study.scorings[0]}; the highest average accuracy wins (the smaller rate on a tie; a rate whose "
             "training diverged, a non-finite loss, never does)."
             + (f" {sweep.note}" if sweep.note else ""), "",
             "| system | " + " | ".join(values) + " | pick | inputs cut to the length limits |",
             "|---|" + "---:|" * len(values) + "---|---:|"]
    edges, picks = [], {}
    for name in study.order:
        if study.systems[name].learning_rate.same_as:
            continue  # an ablation: its source's pick (the budget table says which)
        found = sweep_results(study, study.systems[name], results)
        done, finished = sweep_scores(found), sum(r is not None for r in found.values())
        if (rate := finished_pick(found)) is not None:
            picks[name] = (f"{rate:g}", found[f"{rate:g}"]["per_language"])
        pick = picks[name][0] if name in picks else "every rate diverged" if finished == len(values) else \
            f"not yet swept ({finished} of {len(values)} rates done)"
        lines.append(f"| {study.systems[name].label} | " + " | ".join(
            f"{done[v]:.1f}" if v in done else DIVERGED if found[v] else "–" for v in values)
            + f" | {pick} | {truncation(found)} |")
        if name in picks and pick in (values[0], values[-1]):
            side = "smallest" if pick == values[0] else "largest"
            edges.append(f"{study.systems[name].label} ({pick}, the grid's {side})")
    if edges:  # the best rate may lie beyond the grid
        lines += ["", f"At the grid's edge: {', '.join(edges)}; no rate beyond it was tried."]
    return lines + [""] + sweep_groups(study, picks)


def sweep_groups(study: Study, picks: dict[str, tuple[str, dict]]) -> list[str]:
    """Each fully swept system at its pick (system -> (rate, per-language results)), by the study's language groups
    (descriptive: one seed, and the pick was chosen on these same rows)."""
    from layalign.studies.groups import resolve_groups

    if not picks or not study.settings.get("groups"):
        return []
    langs = list(next(iter(picks.values()))[1])
    groups = resolve_groups(study, langs) | {"all": langs}
    lines = ["At each fully swept system's pick, by language group (%: the mean over the group's languages). One seed "
             f"and {study.lr_sweep.rows} rows per language, and each pick is the best of {len(study.lr_sweep.values)} "
             "rates on these same rows: descriptive, and biased upwards by the choice; the seeded units measure.", "",
             "| system (rate) | " + " | ".join(f"{g} ({len(m)})" for g, m in groups.items()) + " |",
             "|---|" + "---:|" * len(groups)]
    for name, (rate, found) in picks.items():
        lines.append(f"| {study.systems[name].label} ({rate}) | " + " | ".join(
            f"{sum(found[lang]['accuracy'] for lang in members) / len(members):.1f}" for members in groups.values())
            + " |")
    return lines + [""]
