"""scripts/comparison.py end to end on tiny random models (its --dry-run sizes, in this process): two units run,
their folders hold what the report needs, unit.json is written last, a rerun skips finished units and phases, the
report lists the missing units with the command that finishes them; the same for the maths study (--study math: its
recipes, MGSM, generation only) and --device reaching every command. And evaluation.rescore, which the script uses
to judge the generated outputs under the paper protocol without generating twice."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from evaluation_helpers import FakeSystem
from layalign.data.examples import EvalExample
from layalign.evaluation import evaluate, load_predictions, rescore
from layalign.tasks import get_task
from training_helpers import DATA, PARALLEL, XNLI, save_tiny_pair

# the maths study's task data, small: QAlign's translated GSM8K questions joined to GSM8K's answers
MATH = {"reader": "qalign_math", "math_train_dir": "{data_dir}/math_train",
        "gsm8k_train_path": "{data_dir}/gsm8k/train.jsonl", "langs": ["de", "sw"], "limit": 12}

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
needs_data = pytest.mark.skipif(not (DATA / "xnli").is_dir(), reason=f"shared data not found at {DATA}")


def load_script():
    if "comparison" not in sys.modules:
        sys.path.insert(0, str(SCRIPTS))  # comparison_report imports comparison from beside it
        spec = importlib.util.spec_from_file_location("comparison", SCRIPTS / "comparison.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["comparison"] = module
        spec.loader.exec_module(module)
    return sys.modules["comparison"]


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
    assert json.loads((tmp_path / "paper" / "run.json").read_text())["protocol"] == "paper"
    rescore(tmp_path / "lenient", tmp_path / "paper", "paper")  # again: replaced, not appended
    assert len(load_predictions(tmp_path / "paper" / "predictions.jsonl")) == 3


def test_units_and_their_names():
    cmp = load_script()
    names = [u.name for u in cmp.plan()]
    assert names[:4] == ["layalign-s0", "mindmerger-s0", "llm-lora-s0", "langbridge-s0"]
    assert names.count("llm-prompted") == 1 and len(names) == 3 + 3 + 2 + 2 + 1
    assert {n for n in names if n.endswith("-s2")} == {"layalign-s2", "mindmerger-s2"}
    assert cmp.parse_unit("mindmerger-s4").seed == 4 and cmp.parse_unit("llm-prompted").seed is None
    with pytest.raises(ValueError, match="unknown unit"):
        cmp.parse_unit("llm-prompted-s0")


def test_a_one_stage_system_refuses_a_two_stage_recipe(tmp_path):
    cmp = load_script()
    (tmp_path / "langbridge.yaml").write_text("stage: task\ninit_from: runs/x/translation\n")
    with pytest.raises(ValueError, match="not a one-stage langbridge recipe"):
        cmp.check_recipe(cmp.SYSTEMS["langbridge"], cmp.SYSTEMS["langbridge"].stages[0], tmp_path)
    with pytest.raises(FileNotFoundError, match="llm-lora.yaml"):
        cmp.check_recipe(cmp.SYSTEMS["llm-lora"], cmp.SYSTEMS["llm-lora"].stages[0], tmp_path)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """Recipes for the tiny pair in the shape of configs/reproduction/, and the pair itself."""
    root = tmp_path_factory.mktemp("comparison")
    pair = save_tiny_pair(root / "pair")
    recipes = write_recipes(root / "recipes", pair, translation="translation.yaml", task=("layalign.yaml", XNLI))
    return root, pair, recipes


def write_recipes(folder: Path, pair: dict, translation: str, task: tuple[str, dict]) -> Path:
    """A translation recipe (on the shared pairs) and a task recipe (on `task`'s data) for the tiny pair, in the
    shape of configs/reproduction/."""
    common = dict(model=dict(pair), learning_rate=3e-3, batch_size=4, log_every=1, device="cpu",
                  max_source_length=64, max_prompt_length=64, max_target_length=16)
    folder.mkdir()
    (folder / translation).write_text(yaml.safe_dump(dict(stage="translation", train_data=[PARALLEL], **common)))
    (folder / task[0]).write_text(yaml.safe_dump(dict(stage="task", train_data=[task[1]], **{**common, "model": {}})))
    return folder


@needs_data
@pytest.mark.slow
def test_dry_run_of_two_units_then_resume_then_report(tiny_setup, monkeypatch):
    cmp = load_script()
    root, pair, recipes = tiny_setup
    work, results = root / "work", root / "units"
    args = ["--dry-run", "--units", "layalign-s0", "llm-prompted", "--work", str(work), "--results", str(results)]
    run = ["run", *args, "--recipes", str(recipes), "--llm", pair["llm"], "--data", str(DATA), "--in-process",
           "--train-settings"]  # none: the tiny pair in float32
    assert cmp.main(run) == 0

    unit = results / "layalign-s0"
    record = json.loads((unit / "unit.json").read_text())
    assert record["status"] == "done" and record["seed"] == 0 and record["settings"]["steps"] == 2
    assert list(record["phases"]) == ["train-translation", "train-task", "eval-choices", "eval-generate", "rescore",
                                      "collect"]
    assert [c["phase"] for c in record["commands"]][:2] == ["train-translation", "train-task"]
    assert "max_steps=2" in record["commands"][1]["command"] and "--resume" in record["commands"][1]["command"]
    assert "--dtype bfloat16" in record["commands"][2]["command"]
    assert record["machine"]["cpus"] and record["machine"]["torch"]
    for stage in ("translation", "task"):
        assert (unit / "train" / stage / "train_log.jsonl").is_file()
    for scoring in ("choices", "generate"):
        rows = [json.loads(line) for line in (unit / "eval" / scoring / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 4 and {r["lang"] for r in rows} == {"en", "sw"}  # 2 rows x 2 languages
        assert "prompt" not in rows[0] and "output" in rows[0]  # the committed rows are small
        for protocol in ("lenient", "paper"):
            results_file = unit / "eval" / scoring / f"results-{protocol}.json"
            saved = json.loads(results_file.read_text())
            assert saved["protocol"] == protocol and saved["dtype"] == "bfloat16"  # every system evaluated alike
    # the marker is the last file written
    written = [p for p in unit.rglob("*") if p.is_file()]
    assert max(written, key=lambda p: p.stat().st_mtime_ns).name == "unit.json"
    assert not list((work / "layalign-s0").rglob("*.tmp"))
    assert (results / "llm-prompted" / "unit.json").is_file() and not (results / "llm-prompted" / "train").exists()

    # a rerun finds both units done and runs nothing
    calls = []
    monkeypatch.setattr(cmp.Runner, "__call__", lambda self, argv, log: calls.append(argv))
    assert cmp.main(run) == 0 and calls == []

    # a unit without its marker (killed while collecting) is collected again; its finished phases are skipped
    (unit / "unit.json").unlink()
    assert cmp.main(run) == 0 and calls == []
    assert json.loads((unit / "unit.json").read_text())["phases"]["train-task"]["seconds"] is not None

    # the report: tables, intervals, charts, and the missing units with the command that finishes them
    out = root / "report" / "reproduction.md"
    assert cmp.main(["report", "--dry-run", "--work", str(work), "--results", str(results), "--out", str(out),
                     "--resamples", "200"]) == 0
    text = out.read_text()
    assert "done (2): layalign-s0, llm-prompted" in text
    assert "python scripts/comparison.py run --lanes 2 --units mindmerger-s0 llm-lora-s0" in text
    assert "- LayAlign and LLM only (prompted) are not distinguishable" in text or "- LayAlign is" in text
    assert "| LayAlign | LLM only (prompted) |" in text and "interval contains 0" in text
    assert "## What the finished units show" in text and "| LayAlign | 1 |" in text
    assert "input limits (tokens): source 160, prompt 160" in text  # the limits under each table
    assert "## Exact commands" in text and "max_steps=2" in text
    # the charts go beside the units, linked relative to the report
    assert (results.parent / "accuracy-choices-lenient.png").is_file()
    assert (results.parent / "fusion-layalign-s0.png").is_file()  # adapters still in the work dir
    link = os.path.relpath(results.parent / "accuracy-choices-lenient.png", out.parent)
    assert f"]({Path(link).as_posix()})" in text

    # a training stage resumed from its checkpoints records its time over all its runs, and the report marks it
    monkeypatch.undo()
    shutil.rmtree(unit)
    shutil.rmtree(work / "layalign-s0" / "task" / "final")
    phases_file = work / "layalign-s0" / cmp.PHASES_FILE
    phases = json.loads(phases_file.read_text())
    phases_file.write_text(json.dumps({k: v for k, v in phases.items() if k != "train-task"}))
    assert cmp.main(run) == 0
    task = json.loads((unit / "unit.json").read_text())["phases"]["train-task"]
    assert task["resumed"] is True and isinstance(task["stage_elapsed_s"], float)
    assert "translation" not in json.dumps(task) and "resumed" not in json.loads(
        (unit / "unit.json").read_text())["phases"]["train-translation"]
    assert cmp.main(["report", "--dry-run", "--work", str(work), "--results", str(results), "--out", str(out),
                     "--resamples", "200"]) == 0
    assert "† A training stage resumed from a checkpoint" in out.read_text()

    # an evaluation killed after some batches resumes from its predictions; only the last run's time is known
    shutil.rmtree(unit)
    choices = work / "layalign-s0" / "eval" / "choices-lenient"
    (choices / "results.json").unlink()
    kept = (choices / "predictions.jsonl").read_text().splitlines()[:1]
    (choices / "predictions.jsonl").write_text(kept[0] + "\n")
    phases_file.write_text(json.dumps({k: v for k, v in json.loads(phases_file.read_text()).items()
                                       if k != "eval-choices"}))
    assert cmp.main(run) == 0
    record = json.loads((unit / "unit.json").read_text())
    assert record["phases"]["eval-choices"] == record["phases"]["eval-choices"] | {"resumed": True,
                                                                                    "stage_elapsed_s": None}
    assert len((unit / "eval" / "choices" / "predictions.jsonl").read_text().splitlines()) == 4
    assert cmp.main(["report", "--dry-run", "--work", str(work), "--results", str(results), "--out", str(out),
                     "--resamples", "200"]) == 0
    assert "‡ A phase resumed where an earlier run stopped" in out.read_text()


def test_wall_times_of_resumed_stages_are_marked():
    load_script()
    import comparison_report as report

    phases = {"train-task": {"seconds": 60.0, "resumed": True, "stage_elapsed_s": None}, "eval": {"seconds": 120.0}}
    record = {"unit": "u-s0", "phases": phases, "machine": {"lanes": 2, "threads_per_command": 1}}
    text = "\n".join(report.wall_time_section({"u-s0": record}))
    assert "| u-s0 | 1.0‡ | 2.0 | ≥ 3.0 | 2 / 1 |" in text and "lower bound" in text and "†" not in text
    phases["train-task"]["stage_elapsed_s"] = 600.0  # known over all its runs
    text = "\n".join(report.wall_time_section({"u-s0": record}))
    assert "| u-s0 | 10.0† | 2.0 | 12.0 | 2 / 1 |" in text and "lower bound" not in text


def test_a_difference_beyond_the_item_noise_says_whether_it_holds_over_seeds():
    load_script()
    import comparison_report as report

    from layalign.evaluation.statistics import Interval

    wide, narrow = Interval(0.05, -0.01, 0.11, 0.95, 200, 15, 100), Interval(0.05, 0.02, 0.08, 0.95, 200, 15, 100)
    assert report._over_seeds(wide, 3, 3) == "; resampling seeds too, it does not hold ([-1.0, +11.0], 3 vs 3 seeds)."
    assert report._over_seeds(narrow, 3, 1).startswith("; resampling seeds too, it holds ([+2.0, +8.0], 3 vs 1 seeds;")
    assert "not measured" in report._over_seeds(narrow, 1, 1)


def test_status_lists_missing_units_with_the_command(tmp_path, capsys):
    cmp = load_script()
    (tmp_path / "units" / "layalign-s0").mkdir(parents=True)
    (tmp_path / "units" / "layalign-s0" / "unit.json").write_text("{}")
    (tmp_path / "units" / "mindmerger-s0").mkdir()  # started, no marker: not done
    assert cmp.main(["status", "--units", "layalign-s0", "mindmerger-s0", "--results", str(tmp_path / "units")]) == 0
    out = capsys.readouterr().out
    assert "done (1): layalign-s0" in out and "missing (1): mindmerger-s0" in out
    assert "python scripts/comparison.py run --lanes 2 --units mindmerger-s0" in out


# --- the maths study --------------------------------------------------------------------------------------------


def test_math_study_units_recipes_and_defaults():
    cmp = load_script()
    math = cmp.STUDIES["math"]
    assert [u.name for u in cmp.plan(study=math)] == ["layalign-s0", "mindmerger-s0", "llm-prompted"]
    assert [u.name for u in cmp.plan(2, study=math)][:4] == ["layalign-s0", "mindmerger-s0", "layalign-s1",
                                                              "mindmerger-s1"]
    with pytest.raises(ValueError, match="in the math study"):
        cmp.parse_unit("langbridge-s0", math)
    assert cmp.parse_unit("mindmerger-s2", math).system.stages[1].recipe == "math-mindmerger.yaml"
    assert cmp.parse_unit("layalign-s0").system.stages[1].recipe == "layalign.yaml"  # XNLI stays the default
    settings = cmp.default_settings(math)
    assert (settings.limit, settings.llm, settings.study) == (25, "qwen2.5-coder-0.5b-instruct", "math")
    assert settings.max_new_tokens >= 256 and settings.languages() == list(get_task("mgsm").languages)
    assert len(settings.languages()) == 11
    # an XNLI unit.json records the settings it always recorded (no study, no device unless one is given)
    assert set(cmp.default_settings().record()) == set(vars(cmp.Settings())) - {"study", "device"}
    # the real recipes: the maths LLM, stage 1 on the MGSM languages' pairs, stage 2 on the translated GSM8K
    from layalign.training import TrainConfig

    recipes = Path(cmp.RECIPES)
    stage1 = TrainConfig.from_yaml(recipes / "math-translation.yaml")
    assert stage1.stage == "translation" and stage1.model["llm"] == "qwen2.5-coder-0.5b-instruct"
    assert set(stage1.train_data[0]["langs"]) == set(get_task("mgsm").languages) - {"en"}
    for name in ("layalign", "mindmerger"):
        task = TrainConfig.from_yaml(recipes / f"math-{name}.yaml")
        assert task.stage == "task" and task.train_data[0]["reader"] == "qalign_math"
        assert task.max_target_length >= 256


def test_device_reaches_every_command(tmp_path):
    cmp = load_script()
    unit = cmp.parse_unit("layalign-s0", cmp.STUDIES["math"])
    plain = cmp.default_settings(cmp.STUDIES["math"])
    on_gpu = cmp.settings_from(cmp.build_parser().parse_args(["run", "--study", "math", "--device", "cuda"]))
    for stage in unit.system.stages:
        assert "device=cuda" in cmp.stage_overrides(unit, stage, on_gpu, tmp_path)
        assert not any(o.startswith("device=") for o in cmp.stage_overrides(unit, stage, plain, tmp_path))
    argv = cmp.eval_argv(unit, "generate", "m", on_gpu, tmp_path)
    assert argv[argv.index("--device") + 1] == "cuda" and "--device" not in cmp.eval_argv(unit, "generate", "m",
                                                                                           plain, tmp_path)
    assert argv[argv.index("--benchmark") + 1] == "mgsm" and argv[argv.index("--data") + 1].endswith("/mgsm")
    assert argv[argv.index("--max-new-tokens") + 1] == str(plain.max_new_tokens)
    assert "device" in on_gpu.record() and "device" not in plain.record()


def test_math_report_without_finished_units_lists_them_and_includes_the_cost(tmp_path):
    cmp = load_script()
    results = tmp_path / "comparison-math" / "units"
    results.mkdir(parents=True)
    (results.parent / "cost.md").write_text("A unit costs 42 hours here.\n")
    out = tmp_path / "reproduction-math.md"
    assert cmp.main(["report", "--study", "math", "--results", str(results), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Maths: the bare LLM, MindMerger and LayAlign on MGSM")
    assert "missing (3): layalign-s0, mindmerger-s0, llm-prompted" in text
    assert "python scripts/comparison.py run --study math --lanes 1 --units layalign-s0 mindmerger-s0 llm-prompted" \
        in text and "python scripts/comparison.py report --study math" in text
    assert "qwen2.5-coder-0.5b-instruct" in text and "11 languages" in text
    assert "## What a unit costs" in text and "A unit costs 42 hours here." in text
    assert "choice" not in text.lower()


@pytest.fixture(scope="module")
def tiny_math_recipes(tiny_setup):
    """The maths study's recipe files for the tiny pair."""
    root, pair, _ = tiny_setup
    return write_recipes(root / "math-recipes", pair, translation="math-translation.yaml",
                         task=("math-layalign.yaml", MATH))


needs_math_data = pytest.mark.skipif(not (DATA / "mgsm").is_dir() or not (DATA / "math_train").is_dir(),
                                     reason=f"MGSM or math_train not found in {DATA}")


@needs_math_data
@pytest.mark.slow
def test_dry_run_of_the_math_study_then_report(tiny_setup, tiny_math_recipes, monkeypatch):
    cmp = load_script()
    root, pair, _ = tiny_setup
    work, results = root / "math-work", root / "comparison-math" / "units"
    args = ["--study", "math", "--dry-run", "--units", "layalign-s0", "llm-prompted", "--work", str(work),
            "--results", str(results)]
    run = ["run", *args, "--recipes", str(tiny_math_recipes), "--llm", pair["llm"], "--data", str(DATA),
           "--in-process", "--device", "cpu", "--train-settings"]
    assert cmp.main(run) == 0

    unit = results / "layalign-s0"
    record = json.loads((unit / "unit.json").read_text())
    assert record["settings"]["study"] == "math" and record["settings"]["device"] == "cpu"
    assert list(record["phases"]) == ["train-translation", "train-task", "eval-generate", "rescore", "collect"]
    commands = {c["phase"]: c["command"] for c in record["commands"]}
    assert "math-translation.yaml" in commands["train-translation"] and "model.variant=layalign" in \
        commands["train-translation"]
    assert "math-layalign.yaml" in commands["train-task"] and "max_steps=2" in commands["train-task"]
    assert all("device=cpu" in commands[f"train-{s}"] for s in ("translation", "task"))
    evaluate = commands["eval-generate"]
    assert "--benchmark mgsm" in evaluate and f"--data {DATA.resolve()}/mgsm" in evaluate
    assert "--scoring generate" in evaluate and "--max-new-tokens 8" in evaluate and "--device cpu" in evaluate
    assert "choices" not in json.dumps(record["commands"])
    assert sorted(p.name for p in (unit / "eval").iterdir()) == ["generate"]
    rows = [json.loads(line) for line in (unit / "eval" / "generate" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["lang"] for r in rows} == {"en", "sw"} and "prompt" not in rows[0]
    # the same questions in both languages (MGSM is parallel): ids 0 and 1 of each
    assert sorted(r["id"] for r in rows) == ["mgsm-en-0", "mgsm-en-1", "mgsm-sw-0", "mgsm-sw-1"]
    paper = json.loads((unit / "eval" / "generate" / "results-paper.json").read_text())
    assert paper["benchmark"] == "mgsm" and paper["protocol"] == "paper" and "paper_average" in paper
    llm = json.loads((results / "llm-prompted" / "unit.json").read_text())
    assert f"--model llm:{pair['llm']}" in llm["commands"][0]["command"]

    # a rerun finds both done
    calls = []
    monkeypatch.setattr(cmp.Runner, "__call__", lambda self, argv, log: calls.append(argv))
    assert cmp.main(run) == 0 and calls == []

    out = root / "math-report" / "reproduction-math.md"
    assert cmp.main(["report", "--study", "math", "--dry-run", "--work", str(work), "--results", str(results),
                     "--out", str(out), "--resamples", "200"]) == 0
    text = out.read_text()
    assert "# Maths" in text and "done (2): layalign-s0, llm-prompted" in text
    assert "python scripts/comparison.py run --study math --lanes 1 --units mindmerger-s0" in text
    assert "## MGSM accuracy, generation, lenient protocol" in text and "## MGSM accuracy, generation, paper" in text
    assert "choice scoring" not in text
    assert "Avg w/o te" in text  # the paper protocol's average without Telugu
    assert "| LayAlign | LLM only (prompted) |" in text and "a question with all its translations" in text
    assert "| LayAlign | 1 |" in text and "## Exact commands" in text and "math-layalign.yaml" in text
    assert (results.parent / "accuracy-generate-lenient.png").is_file()
    assert not (results.parent / "accuracy-choices-lenient.png").exists()
    assert "## What a unit costs" in text and "No cost measured yet" in text
