"""Studies (layalign.studies, `layalign study`): a user's study declared in YAML runs end to end on tiny random
models (run, resume, status, report), its learning-rate sweep picks the rate its seeded unit trains with, its
records hold no absolute path, and its report's first table states each system's budget; the XNLI and maths studies
in configs/studies/ read as they ran; bad study files fail in one line; and evaluation.rescore, which the runner uses
to judge the generated outputs under the paper protocol without generating twice."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from evaluation_helpers import FakeSystem
from layalign.cli import main as cli
from layalign.data.examples import EvalExample
from layalign.evaluation import evaluate, load_predictions, rescore
from layalign.studies import StudyError, load_study, parse_unit, plan
from layalign.studies import runner as study_runner
from layalign.studies.report import normalised
from layalign.studies.runner import check_recipe, eval_argv, provisional, relative_command, stage_overrides
from layalign.studies.sections import wall_time_section
from layalign.studies.settings import settings_for
from layalign.studies.spec import relative_path
from layalign.tasks import get_task
from training_helpers import DATA, PARALLEL, XNLI, save_tiny_pair

ROOT = Path(__file__).resolve().parents[1]
needs_data = pytest.mark.skipif(not (DATA / "xnli").is_dir(), reason=f"shared data not found at {DATA}")


def test_rescore_judges_the_same_outputs_under_another_protocol(tmp_path):
    examples = {"en": [EvalExample(id=f"xnli-en-{i}", lang="en", source="s", prompt="p", gold="entailment")
                       for i in range(3)]}
    outputs = iter(["entailment", "Entailment", "entailment\nPremise: more"])  # all right leniently, one by the paper
    system = FakeSystem("fake", lambda s: next(outputs))
    first = evaluate(system, "xnli", examples, tmp_path / "lenient", progress=False)
    again = rescore(tmp_path / "lenient", tmp_path / "paper", "paper")
    assert first["average"]["accuracy"] == 100.0 and again["average"]["accuracy"] == pytest.approx(100 / 3)
    assert again["protocol"] == "paper" and again["system"] == "fake" and system.calls == 1  # nothing generated
    lenient, paper = load_predictions(tmp_path / "lenient" / "predictions.jsonl"), \
        load_predictions(tmp_path / "paper" / "predictions.jsonl")
    assert [r["output"] for r in lenient] == [r["output"] for r in paper]
    assert [r["correct"] for r in paper] == [True, False, False]
    rescore(tmp_path / "lenient", tmp_path / "paper", "paper")  # again: replaced, not appended
    assert len(load_predictions(tmp_path / "paper" / "predictions.jsonl")) == 3


# --- the committed studies ----------------------------------------------------------------------------------------


def test_the_xnli_study_has_the_units_it_ran():
    study = load_study("xnli")
    names = [u.name for u in plan(study)]
    assert names[:4] == ["layalign-s0", "mindmerger-s0", "llm-lora-s0", "langbridge-s0"]
    assert names.count("llm-prompted") == 1 and len(names) == 3 + 3 + 2 + 2 + 1
    assert {n for n in names if n.endswith("-s2")} == {"layalign-s2", "mindmerger-s2"}
    assert parse_unit("mindmerger-s4", study).seed == 4 and parse_unit("llm-prompted", study).seed is None
    with pytest.raises(ValueError, match="unknown unit"):
        parse_unit("llm-prompted-s0", study)
    # the settings its committed units recorded, once their absolute paths are read as relative ones
    record = json.loads((study.results / "layalign-s0" / "unit.json").read_text())
    assert normalised(record["settings"], study) == normalised(settings_for(study).record(), study)
    lora = study.systems["llm-lora"].learning_rate
    assert not lora.swept and not lora.tuned and "untuned" in lora.reason


def test_the_math_study_has_its_own_systems_recipes_and_settings():
    study = load_study("math")
    assert [u.name for u in plan(study)] == ["layalign-s0", "mindmerger-s0", "llm-prompted"]
    assert [u.name for u in plan(study, {"layalign": 2, "mindmerger": 2})][:4] == [
        "layalign-s0", "mindmerger-s0", "layalign-s1", "mindmerger-s1"]
    with pytest.raises(ValueError, match="in the math study"):
        parse_unit("langbridge-s0", study)
    assert parse_unit("mindmerger-s2", study).system.stages[1].recipe == "math-mindmerger.yaml"
    settings = settings_for(study)
    assert (settings.limit, settings.llm, settings.study, settings.data) == (25, "qwen2.5-coder-0.5b-instruct",
                                                                             "math", "../shared/data")
    assert settings.max_new_tokens >= 256 and study_runner.languages(settings, study) == list(
        get_task("mgsm").languages)
    from layalign.training import TrainConfig

    stage1 = TrainConfig.from_yaml(study.recipes / "math-translation.yaml")
    assert stage1.stage == "translation" and stage1.model["llm"] == "qwen2.5-coder-0.5b-instruct"
    assert set(stage1.train_data[0]["langs"]) == set(get_task("mgsm").languages) - {"en"}


def test_device_reaches_every_command_and_paths_stay_relative():
    study = load_study("math")
    unit = parse_unit("layalign-s0", study)
    plain, on_gpu = settings_for(study), settings_for(study, device="cuda")
    for stage in unit.system.stages:
        assert "device=cuda" in stage_overrides(unit, stage, on_gpu, "runs/x", study, study.results)
        assert not any(o.startswith("device=") for o in stage_overrides(unit, stage, plain, "runs/x", study,
                                                                         study.results))
    argv = eval_argv(unit, "generate", "m", on_gpu, study, "runs/x/eval")
    assert argv[argv.index("--device") + 1] == "cuda" and "--device" not in eval_argv(unit, "generate", "m", plain,
                                                                                       study, "runs/x/eval")
    assert argv[argv.index("--data") + 1] == "../shared/data/mgsm"
    assert "device" in on_gpu.record() and "device" not in plain.record()


def test_old_absolute_records_read_as_relative_ones():
    root = Path("/somewhere/checkout")
    assert relative_path("/elsewhere/main/runs/comparison/layalign-s0/task/best", root) == \
        "runs/comparison/layalign-s0/task/best"
    assert relative_path("/elsewhere/shared/data", root) == "../shared/data"
    assert relative_path("/somewhere/checkout/configs/x.yaml", root) == "configs/x.yaml"
    assert relative_path("configs/x.yaml", root) == "configs/x.yaml"
    command = "layalign train --config /old/main/configs/r/t.yaml data_dir=/old/shared/data --name 'LLM (seed 0)'"
    assert relative_command(command, root) == \
        "layalign train --config configs/r/t.yaml data_dir=../shared/data --name 'LLM (seed 0)'"


def test_a_one_stage_system_refuses_a_two_stage_recipe(tmp_path):
    study = load_study("xnli")
    system = study.systems["langbridge"]
    (tmp_path / "langbridge.yaml").write_text("stage: task\ninit_from: runs/x/translation\n")
    with pytest.raises(ValueError, match="not a one-stage langbridge recipe"):
        check_recipe(system, system.stages[0], tmp_path)
    with pytest.raises(FileNotFoundError, match="llm-lora.yaml"):
        check_recipe(study.systems["llm-lora"], study.systems["llm-lora"].stages[0], tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"benchmark": "nope"}, "benchmark 'nope' is not one of"),
    ({"colour": 1}, "unknown field"),
    ({"systems": [{"name": "a", "stages": [{"name": "task", "recipe": "t.yaml"}]}]}, "fixes it with a reason"),
    ({"lr_sweep": {"steps": 3}}, "lr_sweep needs values"),
    ({"scorings": ["vibes"]}, "scorings"),
    ({"more_seeds": {"over": 2.0}}, "more_seeds is"),
    ({"more_seeds": {"over": -1, "seeds": 5}}, "more_seeds is"),
    ({"equivalence_margin": "small"}, "equivalence_margin is a number"),
])
def test_a_bad_study_file_fails_in_one_line_naming_it(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"benchmark": "xnli", "systems": [{"name": "llm-prompted"}]} | change))
    with pytest.raises(StudyError, match=message) as err:
        load_study(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_wall_times_of_resumed_stages_are_marked():
    phases = {"train-task": {"seconds": 60.0, "resumed": True, "stage_elapsed_s": None}, "eval": {"seconds": 120.0}}
    record = {"unit": "u-s0", "phases": phases, "machine": {"lanes": 2, "threads_per_command": 1}}
    text = "\n".join(wall_time_section({"u-s0": record}))
    assert "| u-s0 | 1.0‡ | 2.0 | ≥ 3.0 | 2 / 1 |" in text and "lower bound" in text and "†" not in text
    phases["train-task"]["stage_elapsed_s"] = 600.0  # known over all its runs
    text = "\n".join(wall_time_section({"u-s0": record}))
    assert "| u-s0 | 10.0† | 2.0 | 12.0 | 2 / 1 |" in text and "lower bound" not in text


# --- a user's study, end to end on the tiny pair ------------------------------------------------------------------


def write_user_study(root: Path) -> Path:
    """A study folder as a user would write it: the tiny pair, two recipes, and the study YAML naming them, with
    paths relative to the folder (its root: no repository above a temporary folder)."""
    pair = save_tiny_pair(root / "pair")
    pair = {k: os.path.relpath(v, root) for k, v in pair.items()}
    common = dict(learning_rate=3e-3, batch_size=4, log_every=1, device="cpu", max_source_length=64,
                  max_prompt_length=64, max_target_length=16, select="final")
    (root / "recipes").mkdir()
    (root / "recipes" / "translation.yaml").write_text(yaml.safe_dump(
        dict(stage="translation", model=dict(pair), train_data=[PARALLEL], **common)))
    (root / "recipes" / "task.yaml").write_text(yaml.safe_dump(dict(stage="task", train_data=[XNLI], **common)))
    study = {"name": "mine", "benchmark": "xnli", "eval_data": "xnli/dev", "data": os.path.relpath(DATA, root),
             "recipes": "recipes", "work": "work", "results": "units", "report": "report.md", "rows": 2,
             "languages": ["en", "sw"], "scorings": ["choices"], "steps": 2, "stage1_steps": 2, "dev_size": 8,
             "llm": pair["llm"], "lr_sweep": {"values": [3e-3, 1e-3], "steps": 1, "rows": 1},
             "all_languages": "layalign",
             "systems": [{"name": "llm-prompted", "label": "LLM only"},
                         {"name": "layalign", "label": "LayAlign", "seeds": 1,
                          "stages": [{"name": "translation", "recipe": "translation.yaml",
                                      "overrides": ["model.variant=layalign"]},
                                     {"name": "task", "recipe": "task.yaml"}]}]}
    (root / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    return root / "study.yaml"


def names_absolute(text: str, path: Path) -> bool:
    """Whether `text` names `path` as an absolute path (not as the tail of a relative one, ../../work/...)."""
    return re.search(r"(^|[\s\"'=])" + re.escape(str(path)), text) is not None


@needs_data
@pytest.mark.slow
def test_a_users_study_runs_resumes_and_reports_with_relative_paths(tmp_path, monkeypatch, capsys):
    path = write_user_study(tmp_path)
    study = load_study(path)
    assert study.root == tmp_path.resolve()
    assert [u.name for u in plan(study)] == ["layalign-lr0.003", "layalign-lr0.001", "layalign-s0", "llm-prompted",
                                             "layalign-all-languages"]
    assert cli(["study", "run", str(path), "--in-process"]) == 0
    units = tmp_path / "units"

    # the all-languages unit: the best seed's model (the only one here) on every XNLI language, with its gates and
    # with every gate at zero, no training
    every = json.loads((units / "layalign-all-languages" / "unit.json").read_text())
    assert every["best_of"]["unit"] == "layalign-s0" and every["model_dir"] == "work/layalign-s0/task/final"
    assert every["best_of"]["planned"] == 1 and not provisional(every)
    assert list(every["phases"]) == ["eval-choices", "rescore", "eval-choices-zero-gates", "collect"]
    # its evaluations started from the seed's own on the study's languages (en, sw: 2 rows each), which a new run
    # would write again: the same model, settings and rows, batches of one language
    assert {"phase": "reuse", "command": "rows of layalign-s0's own evaluations copied: choices-lenient 4, "
            "choices-zero-gates 4"} in every["commands"]
    seed_rows = {"choices": (units / "layalign-s0" / "eval" / "choices" / "predictions.jsonl").read_text(),
                 "choices-zero-gates": (tmp_path / "work" / "layalign-s0" / "eval" / "choices-zero-gates" /
                                        "predictions.jsonl").read_text()}
    for folder in ("choices", "choices-zero-gates"):
        rows = (units / "layalign-all-languages" / "eval" / folder / "predictions.jsonl").read_text().splitlines()
        assert len(rows) == 2 * 15 and {json.loads(r)["lang"] for r in rows} == set(get_task("xnli").languages)
        seed = [json.loads(r) for r in seed_rows[folder].splitlines()]
        assert [json.loads(r) for r in rows[:4]] == [{k: v for k, v in r.items() if k not in ("prompt", "source")}
                                                     for r in seed]
    assert not (units / "layalign-all-languages" / "train").exists()
    assert (tmp_path / "work" / "layalign-all-languages" / "layalign-s0" / "eval").is_dir()  # keyed by the seed

    # the sweep ran short (1 step, 1 row per language), and the seeded unit trained with its pick
    sweep = json.loads((units / "lr_sweep.json").read_text())["layalign"]
    assert set(sweep["accuracy"]) == {"0.003", "0.001"} and sweep["pick"] in (3e-3, 1e-3)
    swept = json.loads((units / "layalign-lr0.003" / "unit.json").read_text())
    assert "learning_rate=0.003" in swept["commands"][1]["command"] and "max_steps=1" in swept["commands"][1]["command"]
    assert len((units / "layalign-lr0.003" / "eval" / "choices" / "predictions.jsonl").read_text().splitlines()) == 2
    record = json.loads((units / "layalign-s0" / "unit.json").read_text())
    assert f"learning_rate={sweep['pick']:g}" in record["commands"][1]["command"]
    assert "max_steps=2" in record["commands"][1]["command"] and "--resume" in record["commands"][1]["command"]
    assert list(record["phases"]) == ["train-translation", "train-task", "eval-choices", "rescore",
                                      "eval-choices-zero-gates", "diagnostics", "collect"]
    # the fusion's diagnostics: gates and layer mix against the first stage's initialisation, and every gate at zero
    diagnostics = json.loads((units / "layalign-s0" / "diagnostics" / "diagnostics.json").read_text())
    assert diagnostics["gates"]["init"] == [0.0] * len(diagnostics["gates"]["final"])
    assert diagnostics["zero_gates"]["rows"] == 4 and diagnostics["zero_gates"]["scoring"] == "choices"
    assert (units / "layalign-s0" / "diagnostics" / "fusion_init.json").is_file()
    assert "layalign-lr0.003" not in [p.parent.parent.name for p in units.rglob("diagnostics.json")]
    assert record["model_dir"] == "work/layalign-s0/task/final"
    # the first stage depends on the system and the seed only: the sweep's units and the seed-0 unit train it once
    # and every task stage starts from it
    assert [p.name for p in (tmp_path / "work" / "stages").iterdir() if p.is_dir()] == ["layalign-s0"]
    assert not (tmp_path / "work" / "layalign-s0" / "translation").exists()
    trained = [json.loads((units / u / "unit.json").read_text())["phases"]["train-translation"]
               for u in ("layalign-lr0.003", "layalign-lr0.001", "layalign-s0")]
    assert trained[0]["seconds"] is not None and "shared" not in trained[0]
    assert [t.get("shared") for t in trained[1:]] == ["work/stages/layalign-s0/translation"] * 2
    stage_result = json.loads((tmp_path / "work" / "stages" / "layalign-s0" / "translation" /
                               "stage_result.json").read_text())
    assert [t["stage_elapsed_s"] for t in trained[1:]] == [stage_result["elapsed_s"]] * 2
    assert "init_from=work/stages/layalign-s0/translation" in record["commands"][1]["command"]
    assert (units / "layalign-lr0.001" / "train" / "translation" / "train_log.jsonl").read_text() == \
        (units / "layalign-s0" / "train" / "translation" / "train_log.jsonl").read_text()
    # the marker is the last file written
    written = [p for p in (units / "layalign-s0").rglob("*") if p.is_file()]
    assert max(written, key=lambda p: p.stat().st_mtime_ns).name == "unit.json"

    # no record names an absolute path of this machine
    for file in [*units.rglob("*"), *(tmp_path / "work").rglob("*.json"), *(tmp_path / "work").rglob("*.yaml")]:
        if file.is_file() and file.suffix in (".json", ".jsonl", ".yaml"):
            text = file.read_text(encoding="utf-8")
            assert not names_absolute(text, tmp_path) and not names_absolute(text, DATA.resolve()), file

    # a rerun finds every unit done and runs nothing; a unit without its marker is collected again
    calls = []
    monkeypatch.setattr(study_runner.Runner, "__call__", lambda self, argv, log: calls.append(argv))
    assert cli(["study", "run", str(path), "--in-process"]) == 0 and calls == []
    (units / "layalign-s0" / "unit.json").unlink()
    assert cli(["study", "run", str(path), "--in-process"]) == 0 and calls == []
    assert json.loads((units / "layalign-s0" / "unit.json").read_text())["phases"]["train-task"]["seconds"] is not None
    monkeypatch.undo()

    # status, and a report whose first table is the budget
    shutil.rmtree(units / "llm-prompted")
    capsys.readouterr()
    assert cli(["study", "status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "missing (1): llm-prompted" in out and "layalign study run study.yaml --lanes 1 --units llm-prompted" in out
    assert cli(["study", "report", str(path), "--resamples", "200"]) == 0
    text = (tmp_path / "report.md").read_text()
    first_table = text[text.index("\n|"):]
    assert first_table.startswith("\n| system | trainable parameters | optimiser steps | data each stage saw")
    row = next(line for line in text.splitlines() if line.startswith("| LayAlign |"))
    assert "translation 2 + task 2" in row and "2 languages (sw fr)" in row and "(en sw)" in row
    assert f"task: {sweep['pick']:g}, cosine" in row and "swept on dev" in row and "the final step's" in row
    assert "| LayAlign | " + " | ".join(f"{sweep['accuracy'][v]:.1f}" for v in ("0.003", "0.001")) in text
    assert "missing (1): llm-prompted" in text and "## Exact commands" in text and str(tmp_path) not in text
    zero = diagnostics["zero_gates"]
    assert f"accuracy goes from {zero['accuracy_with_gates']:.1f} % to {zero['accuracy_zero_gates']:.1f} %" in text
    assert "the weights at initialisation: units/layalign-s0/diagnostics/fusion_init.json" in text
    assert "| layalign-s0 | translation | 2 |" in text and "§ A stage trained once" in text
    section = text.split("## Every language: the best seed of LayAlign")[1]
    assert "layalign-s0, the best of 1 seeds" in section and "| every language (15) | 15 |" in section


@needs_data
@pytest.mark.slow
def test_the_every_language_unit_can_run_on_the_best_seed_so_far_and_runs_again_once_the_seeds_are_done(
        tmp_path, capsys):
    path = write_user_study(tmp_path)
    study = yaml.safe_load(path.read_text())
    study["systems"][1]["seeds"] = 2
    study["languages"] = ["en"]
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    every = tmp_path / "units" / "layalign-all-languages" / "unit.json"
    assert cli(["study", "run", str(path), "--in-process", "--units", "layalign-lr0.003", "layalign-lr0.001",
                "layalign-s0"]) == 0
    capsys.readouterr()
    # without the flag it waits for the missing seed, and says how not to
    assert cli(["study", "run", str(path), "--in-process", "--units", "layalign-all-languages"]) == 1
    assert "layalign-s1 is not done" in capsys.readouterr().err and not every.exists()
    assert cli(["study", "run", str(path), "--in-process", "--units", "layalign-all-languages", "--best-so-far"]) == 0
    first = json.loads(every.read_text())
    assert provisional(first) and first["best_of"]["unit"] == "layalign-s0" and first["best_of"]["planned"] == 2
    capsys.readouterr()
    assert cli(["study", "status", str(path)]) == 0
    assert "layalign-all-languages" in capsys.readouterr().out.split("missing")[1]  # provisional: still missing
    assert cli(["study", "report", str(path), "--resamples", "50"]) == 0
    section = (tmp_path / "report.md").read_text().split("## Every language: the best seed of LayAlign")[1]
    assert "**Provisional:** run with `--best-so-far` when 1 of LayAlign's 2 seeds were done" in section
    assert "layalign-s0, the best of 1 seeds" in section
    # each group's accuracy with its 95 % interval over items, then every gate at zero and the difference
    assert re.search(r"\| every language \(15\) \| 15 \| [\d.]+ \[[\d.]+, [\d.]+\] \| [\d.]+ \| [+-]", section)

    # the seed done, the unit runs again on the final best: the same seed only collects, a new one is evaluated
    assert cli(["study", "run", str(path), "--in-process", "--units", "layalign-s1", "layalign-all-languages"]) == 0
    final = json.loads(every.read_text())
    assert not provisional(final) and set(final["best_of"]["accuracy"]) == {"layalign-s0", "layalign-s1"}
    if final["best_of"]["unit"] == "layalign-s0":
        assert final["phases"]["eval-choices"] == first["phases"]["eval-choices"]  # not evaluated again
    else:
        assert final["phases"]["eval-choices"]["seconds"] is not None
    assert (tmp_path / "work" / "layalign-all-languages" / final["best_of"]["unit"] / "eval").is_dir()
    capsys.readouterr()
    assert cli(["study", "status", str(path)]) == 0
    assert "layalign-all-languages" not in capsys.readouterr().out.split("missing")[1]


@needs_data
def test_an_evaluation_split_over_lanes_writes_the_rows_and_results_of_one_command(tmp_path):
    pair = save_tiny_pair(tmp_path / "pair")
    langs = ["en", "sw", "fr", "de", "zh"]
    dev = DATA / "xnli" / "dev"
    examples = get_task("xnli").read(str(dev), langs=langs, limit=2)

    def command(share: list[str] | None, folder: Path) -> list[str]:
        return ["evaluate", "--model", f"llm:{pair['llm']}", "--benchmark", "xnli", "--data", str(dev), "--langs",
                *(share or langs), "--limit", "2", "--scoring", "choices", "--name", "tiny", "--out", str(folder)]

    runner = study_runner.Runner(tmp_path, execute=cli, lanes=2)
    runner(command(None, tmp_path / "one"), tmp_path / "one.log")
    # as the all-languages unit starts: one language's rows already there (its seed's), and a part left by an earlier
    # run that dealt the languages otherwise
    split = tmp_path / "split"
    one = load_predictions(tmp_path / "one" / "predictions.jsonl")
    split.mkdir()
    (split / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in one if r["lang"] == "en"))
    (tmp_path / "split-part3").mkdir()
    (tmp_path / "split-part3" / "predictions.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in one if r["lang"] == "zh"))
    calls = []
    counting = study_runner.Runner(tmp_path, execute=lambda argv: calls.append(argv) or cli(argv), lanes=2)
    study_runner.split_evaluation(command, split, examples, counting, tmp_path / "logs" / "eval-choices")
    shares = [argv[argv.index("--langs") + 1: argv.index("--limit")] for argv in calls]
    assert shares == [["sw", "de"], ["fr", "zh"], langs]  # the rest dealt in turn; the whole command last
    key = lambda r: (r["lang"], r["id"])  # noqa: E731
    rows = load_predictions(split / "predictions.jsonl")
    assert sorted(rows, key=key) == sorted(one, key=key)
    results = [json.loads((folder / "results.json").read_text()) for folder in (tmp_path / "one", split)]
    assert results[0]["per_language"] == results[1]["per_language"]
    assert not list(tmp_path.glob("split-part*"))  # joined, then removed


def test_a_dry_run_takes_the_studys_tiny_sizes_into_its_own_folder(capsys):
    study = load_study("xnli")
    dry = settings_for(study, dry_run=True)
    assert (dry.steps, dry.stage1_steps, dry.dev_size, dry.limit, dry.langs) == (2, 2, 8, 2, ["en", "sw"])
    assert settings_for(study, dry_run=True, steps=5).steps == 5  # an option wins over the dry size
    assert study.dry_work == study.root / "runs" / "comparison-dry"
    assert cli(["study", "status", "xnli", "--dry-run", "--results", str(study.root / "runs" / "nothing-here")]) == 0
    assert "missing (11)" in capsys.readouterr().out


def test_a_report_without_finished_units_lists_them_with_the_command(tmp_path):
    from layalign.studies.report import write_report

    study = load_study("math")
    out = tmp_path / "report.md"
    write_report(plan(study), study, tmp_path / "units", out)
    text = out.read_text()
    assert text.startswith("# Maths: the bare LLM, MindMerger and LayAlign on MGSM")
    assert "missing (3): layalign-s0, mindmerger-s0, llm-prompted" in text
    assert "layalign study run math --lanes 1 --units layalign-s0 mindmerger-s0 llm-prompted" in text
    assert "layalign study report math" in text and "## What a unit costs" in text
    assert "qwen2.5-coder-0.5b-instruct" in text and "11 languages" in text and "choice" not in text.lower()


def test_the_runner_does_not_import_the_report():
    import subprocess
    import sys

    code = ("import sys, layalign.studies.runner, layalign.studies.command; "
            "print(sorted(m for m in sys.modules if m.startswith('layalign.studies.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env=os.environ | {"PYTHONPATH": str(ROOT / "src")}).stdout
    assert "layalign.studies.runner" in loaded and "layalign.studies.report" not in loaded
    assert "layalign.studies.sections" not in loaded and "layalign.studies.budget" not in loaded


@pytest.mark.parametrize("name", ["xnli", "math", "sib200"])
def test_every_shipped_study_loads_and_its_recipes_parse_with_their_overrides(name):
    from layalign.studies.runner import check_recipe
    from layalign.training.config import TrainConfig

    study = load_study(name)
    units = plan(study)
    assert units and len({u.name for u in units}) == len(units)
    for system in study.systems.values():
        for stage in system.stages:
            config = TrainConfig.from_yaml(check_recipe(system, stage, study.recipes))
            assert config.stage == stage.name and config.train_data, (name, system.name, stage.name)


def test_an_ablation_trains_at_the_swept_rate_of_the_system_it_ablates(tmp_path):
    """SIB-200's LayAlign ablations: no sweep units of their own, LayAlign's pick in their task stage, their one
    change in their first stage (which they do not share with LayAlign's)."""
    study = load_study("sib200")
    names = [u.name for u in plan(study)]
    assert not any(n.startswith("layalign-last-layer-lr") or n.startswith("layalign-no-soft-tokens-lr") for n in names)
    assert {"layalign-last-layer-s2", "layalign-no-soft-tokens-s2"} <= set(names)
    results = tmp_path / "units"
    for value, accuracy in zip(study.lr_sweep.values, (40.0, 55.0, 50.0, 45.0, 30.0), strict=True):
        folder = results / f"layalign-lr{value:g}"
        (folder / "eval" / "choices").mkdir(parents=True)
        (folder / "unit.json").write_text("{}")
        scores = {"average": {"accuracy": accuracy}}
        (folder / "eval" / "choices" / "results-lenient.json").write_text(json.dumps(scores))
    settings = settings_for(study)
    for name, change in [("layalign-last-layer-s1", "model.encoder_layers=[-1]"),
                         ("layalign-no-soft-tokens-s1", "model.mapping=none")]:
        unit = parse_unit(name, study)
        first, task = (stage_overrides(unit, stage, settings, "w", study, results) for stage in unit.system.stages)
        assert change in first and f"output_dir=w/stages/{unit.system.name}-s1/translation" in first
        assert f"learning_rate={study.lr_sweep.values[1]:g}" in task
        assert f"init_from=w/stages/{unit.system.name}-s1/translation" in task


def test_an_ablation_must_name_a_system_that_sweeps(tmp_path):
    raw = yaml.safe_load((ROOT / "configs" / "studies" / "sib200.yaml").read_text())
    raw["systems"][-1]["learning_rate"] = {"as": "llm-prompted"}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(StudyError, match="takes the swept rate of 'llm-prompted', which is not a trained system"):
        load_study(tmp_path / "s.yaml")
    raw["systems"][-1]["learning_rate"] = {"as": "layalign", "reason": "x"}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(StudyError, match="sets learning_rate, but the study sweeps"):
        load_study(tmp_path / "s.yaml")


def test_a_report_shows_the_sweep_as_far_as_it_ran(tmp_path):
    """Before any seeded unit: each swept system's finished rates, and its pick only once all its rates are done."""
    from layalign.studies.report import write_report

    study = load_study("sib200")
    results = tmp_path / "units"
    for name, accuracy in [("layalign-lr0.0003", 40.0), ("layalign-lr0.001", 55.0), ("layalign-lr0.003", 55.0),
                           ("layalign-lr0.01", 50.0), ("layalign-lr0.03", 20.0), ("mindmerger-lr0.001", 47.5),
                           ("llm-lora-lr0.0003", 45.0), ("llm-lora-lr0.001", 44.0), ("llm-lora-lr0.003", 43.0),
                           ("llm-lora-lr0.01", 10.0), ("llm-lora-lr0.03", 5.0)]:
        (results / name / "eval" / "choices").mkdir(parents=True)
        (results / name / "unit.json").write_text("{}")
        (results / name / "eval" / "choices" / "results-lenient.json").write_text(
            json.dumps({"average": {"accuracy": accuracy}, "truncated": 3, "n": 120, "per_language": {
                lang: {"accuracy": accuracy + (10.0 if lang == "eng_Latn" else 0.0)} for lang in study.settings[
                    "languages"]}}))
    text = write_report(plan(study), study, results, tmp_path / "report.md")
    assert "| LayAlign | 40.0 | 55.0 | 55.0 | 50.0 | 20.0 | 0.001 | 3 of 120 |" in text  # a tie: the smaller rate
    assert "| MindMerger | – | 47.5 | – | – | – | not yet swept (1 of 5 rates done) | 3 of 120 |" in text
    assert "| LangBridge | – | – | – | – | – | not yet swept (0 of 5 rates done) | – |" in text
    assert "At the grid's edge: LLM + LoRA (0.0003, the grid's smallest); no rate beyond it was tried." in text
    # the fully swept systems at their picks, by the study's groups (English 10 points up in this fake)
    assert "| LayAlign (0.001) | 65.0 | 55.0 | 55.0 | 55.2 |" in text
    assert "| LLM + LoRA (0.0003) | 55.0 | 45.0 | 45.0 | 45.2 |" in text and "| MindMerger (" not in text
    assert "LayAlign's best rate then was the grid's largest" in text  # the study's note on how the grid came to be
    assert "LayAlign, encoder's last layer only |" not in text.split("## The learning-rate sweep")[1].split("##")[0]
    assert "missing (29):" in text and "layalign-lr0.001," not in text.split("missing (29):")[1].split("\n")[0]


@needs_data
@pytest.mark.slow
def test_a_sweep_rate_that_diverges_is_recorded_and_never_picked(tmp_path, capsys):
    """A learning rate so high that the loss stops being finite is a result of the sweep, not a failed unit: `layalign
    train` exits with NonFiniteLoss's code, the unit is done with status "diverged" and no evaluation, the pick is
    among the other rates, and the report's sweep table says so."""
    path = write_user_study(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["lr_sweep"] = {"values": [3e-3, 1e30], "steps": 3, "rows": 1}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert cli(["study", "run", str(path), "--in-process", "--units", "layalign-lr0.003", "layalign-lr1e+30"]) == 0
    assert "layalign-lr1e+30: diverged" in capsys.readouterr().out
    units = tmp_path / "units"
    record = json.loads((units / "layalign-lr1e+30" / "unit.json").read_text())
    assert record["status"] == "diverged" and re.fullmatch(r"step 3: the (loss|gradient norm) is (nan|inf)",
                                                           record["diverged"])
    assert record["phases"]["train-task"] == {"seconds": None, "diverged": True}
    assert "model_dir" not in record and not (units / "layalign-lr1e+30" / "eval").exists()
    assert (units / "layalign-lr1e+30" / "train" / "task" / "train_log.jsonl").is_file()
    study = load_study(path)
    rate, scores = study_runner.sweep_pick(study, study.systems["layalign"], units)
    assert rate == 3e-3 and list(scores) == ["0.003"]
    assert json.loads((units / "lr_sweep.json").read_text())["layalign"]["diverged"] == ["1e+30"]
    assert cli(["study", "report", str(path), "--resamples", "50"]) == 0
    row = next(line for line in (tmp_path / "report.md").read_text().splitlines()
               if line.startswith("| LayAlign | ") and "diverged" in line)
    assert row.startswith(f"| LayAlign | {scores['0.003']:.1f} | diverged | 0.003 |")
    # a seeded unit trains at the pick; every rate diverged leaves nothing to pick
    (units / "layalign-lr0.003" / "unit.json").write_text(json.dumps({"status": "diverged", "diverged": "x"}))
    with pytest.raises(ValueError, match="every swept rate of layalign diverged"):
        study_runner.sweep_pick(study, study.systems["layalign"], units)


def test_the_budget_table_reads_language_sets_and_a_planned_systems_swept_rate(tmp_path):
    """A SIB-200 recipe names its languages by set ("task"): the table lists the set's codes, not its letters. A
    planned system with a swept rate trains at the sweep's pick (its source's, for an ablation), shown once the sweep
    is done; a diverged rate is never the pick."""
    from layalign.data.flores import TASK_LANGUAGES
    from layalign.studies.budget import planned_stages, schedule, stage_data

    task = " ".join(TASK_LANGUAGES)
    assert stage_data({"train_data": [{"langs": "task"}]}, {}).startswith(f"{len(TASK_LANGUAGES)} languages ({task})")
    assert stage_data({"train_data": [{"langs": ["eng_Latn", "task"]}]}, {}).startswith(
        f"{len(TASK_LANGUAGES) + 1} languages (eng_Latn {task})")
    study = load_study("sib200")
    settings, results = settings_for(study).record(), tmp_path / "units"
    ablation = study.systems["layalign-last-layer"]
    assert schedule(planned_stages(ablation, study, settings, results)["task"][0]) == "swept, not picked yet"
    for value, accuracy in zip(study.lr_sweep.values, (40.0, 55.0, 50.0, None, 30.0), strict=True):
        folder = results / f"layalign-lr{value:g}"
        (folder / "eval" / "choices").mkdir(parents=True)
        (folder / "unit.json").write_text(json.dumps({"status": "diverged", "diverged": "step 9: the loss is nan"}
                                                     if accuracy is None else {"status": "done"}))
        (folder / "eval" / "choices" / "results-lenient.json").write_text(json.dumps({"average": {"accuracy":
                                                                                                   accuracy}}))
    assert schedule(planned_stages(ablation, study, settings, results)["task"][0]).startswith(
        f"{study.lr_sweep.values[1]:g}, cosine")


def test_a_difference_is_called_better_only_where_it_holds_over_seeds():
    """Over items a gap can be clear while the seeds are one each (their noise unmeasured) or disagree: the report
    says what the seeds run scored, and calls a system better only where the gap also holds over seeds."""
    from layalign.evaluation.statistics import Interval
    from layalign.studies.report import Pair, difference_sentence

    study = load_study("sib200")
    items = Interval(0.119, 0.071, 0.168, 0.95, 99, 47, 1000, 0.0001)
    over_seeds = Interval(0.12, 0.05, 0.19, 0.95, None, None, None, 0.01, (3, 3), 4.0)
    unit = {"unit": "u"}
    one = difference_sentence(Pair("layalign", "mindmerger", items, None, 0.0003), study,
                              {"layalign": [unit], "mindmerger": [unit]})
    assert one.startswith("LayAlign scores higher than MindMerger on the seeds run: +11.9 points")
    assert "better" not in one
    assert "(1 vs 1 seeds: the seed noise is not measured, so this is no verdict on the systems yet)" in one
    three = {"layalign": [unit] * 3, "mindmerger": [unit] * 3}
    held = difference_sentence(Pair("layalign", "mindmerger", items, over_seeds, 0.0003, 0.01), study, three)
    assert held.startswith("LayAlign is better than MindMerger: +11.9 points") and "holds after the correction" in held
    not_held = difference_sentence(Pair("layalign", "mindmerger", items, over_seeds, 0.0003, 0.2), study, three)
    assert not_held.startswith("LayAlign scores higher than MindMerger on the seeds run")
    assert "does not hold after the correction" in not_held and "no verdict on the systems" in not_held


def finished_seed(results: Path, unit: str, accuracy: float) -> None:
    """A seeded unit's marker and its first scoring's average, as the runner leaves them."""
    (results / unit / "eval" / "choices").mkdir(parents=True)
    (results / unit / "unit.json").write_text(json.dumps({"status": "done", "model_dir": f"runs/{unit}/final"}))
    (results / unit / "eval" / "choices" / "results-lenient.json").write_text(
        json.dumps({"average": {"accuracy": accuracy}}))


def test_a_system_whose_seeds_spread_gets_more_seeds(tmp_path):
    """The SIB-200 study's rule: 3 seeds, 5 for a system whose 3 spread more than 2 points, decided once all 3 are
    done. The plan, the best seed (which waits for the added ones) and the report's Units section follow it."""
    from layalign.studies.report import seeds_rule

    study, results = load_study("sib200"), tmp_path / "units"
    assert study.settings["more_seeds"] == {"over": 2.0, "seeds": 5}
    for seed, accuracy in enumerate((60.0, 63.0, 61.0)):  # spread 3.0
        finished_seed(results, f"layalign-s{seed}", accuracy)
    for seed, accuracy in enumerate((50.0, 52.0)):  # not all done: not decided yet
        finished_seed(results, f"mindmerger-s{seed}", accuracy)
    for seed, accuracy in enumerate((40.0, 41.5, 42.0)):  # spread 2.0: not more than 2
        finished_seed(results, f"llm-lora-s{seed}", accuracy)
    counts = study_runner.seed_counts(study, results)
    assert counts["layalign"] == 5 and counts["mindmerger"] == 3 and counts["llm-lora"] == 3
    names = [u.name for u in plan(study, counts)]
    assert {"layalign-s3", "layalign-s4"} <= set(names) and "mindmerger-s3" not in names
    assert "llm-lora-s3" not in names and names[-1] == "layalign-all-languages"
    with pytest.raises(ValueError, match="layalign-s3, layalign-s4 are not done"):
        study_runner.best_seed(study.systems["layalign"], study, results)
    best = study_runner.best_seed(study.systems["layalign"], study, results, finished_only=True)
    assert best["unit"] == "layalign-s1"
    text = " ".join(seeds_rule(study, results))
    assert "(3 per trained system), and 5 for a system whose seeds spread more than 2 points" in text
    assert "LayAlign's 3 seeds spread 3.0 points: seeds 3-4 are added." in text
    assert "LLM + LoRA's 3 seeds spread 2.0 points." in text and "MindMerger's" not in text


def test_a_verdict_is_an_order_over_items_and_seeds_or_no_difference_within_the_margin():
    """The goal's verdicts: an order where both levels differ after the correction; "no difference" only where
    neither does and both intervals lie inside the study's margin (1.5 points); otherwise no verdict, with why."""
    from layalign.evaluation.statistics import Interval
    from layalign.studies.report import Pair, verdict_text, verdicts_lines

    study = load_study("sib200")
    assert study.settings["equivalence_margin"] == 1.5

    def interval(low: float, high: float, p: float) -> Interval:
        return Interval((low + high) / 2, low, high, 0.95, 99, 47, 1000, p)

    clear, tight, wide = interval(0.07, 0.17, 0.0001), interval(-0.008, 0.012, 0.6), interval(-0.01, 0.03, 0.3)
    pairs = [Pair("layalign", "mindmerger", clear, clear, 0.0003, 0.003, 0.015),  # an order
             Pair("layalign", "langbridge", tight, tight, 0.6, 0.6, 0.015),  # no difference
             Pair("mindmerger", "langbridge", tight, wide, 0.6, 0.6, 0.015),  # the seeds reach +3.0
             Pair("llm-lora", "langbridge", clear, None, 0.0003, None, 0.015),  # one seed
             Pair("mindmerger", "llm-lora", clear, wide, 0.0003, 0.6, 0.015)]  # items only
    assert [p.ordered for p in pairs] == [True, False, False, False, False]
    assert [p.equivalent for p in pairs] == [False, True, False, False, False]
    assert verdict_text(pairs[1]) == "no difference: both intervals inside ±1.5"
    assert verdict_text(pairs[2]) == "no difference shown; an interval reaches past ±1.5"
    text = "\n".join(verdicts_lines(pairs, study))
    assert "inside ±1.5 points): 2 of 5 pairs." in text
    assert "- LayAlign above MindMerger: +12.0 points (items [+7.0, +17.0], seeds [+7.0, +17.0])" in text
    assert "- no difference between LayAlign and LangBridge: +0.2 points" in text
    assert "No verdict yet for 3 pairs." in text
    assert ("No difference shown, but an interval reaches past ±1.5 points (how far in brackets): MindMerger vs "
            "LangBridge (3.0).") in text
    assert "A trained system has one seed, so the seed noise is not measured: LLM + LoRA vs LangBridge." in text
    assert "They differ over items, not over seeds: MindMerger vs LLM + LoRA." in text
    # without a margin a pair that does not differ is never called the same
    assert not Pair("layalign", "langbridge", tight, tight, 0.6, 0.6).equivalent
