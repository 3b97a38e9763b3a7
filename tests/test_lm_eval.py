"""layalign models as the lm-evaluation-harness model "layalign": the harness's answers and accuracies equal those of
`layalign evaluate` on the same rows, for every kind of model; the shipped task YAMLs cover the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from layalign.tasks import get_task

TASKS_DIR = Path(__file__).parents[1] / "src" / "layalign" / "integrations" / "lm_eval_tasks"
SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"
METADATA = {"msvamp_data": str(SHARED / "msvamp_sample"),
            "xcsqa_data": str(Path(__file__).parent / "fixtures" / "xcsqa"),
            "mgsm_data": str(SHARED / "mgsm"), "xnli_data": str(SHARED / "xnli"),
            "sib200_data": str(Path(__file__).parent / "fixtures" / "sib200")}
# (lm_eval task, benchmark, language, scoring)
TASKS = [("layalign_mgsm_sw", "mgsm", "sw", "generate"), ("layalign_msvamp_th", "msvamp", "th", "generate"),
         ("layalign_xnli_ur", "xnli", "ur", "generate"), ("layalign_xnli_ll_sw", "xnli", "sw", "choices"),
         ("layalign_xcsqa_zh", "xcsqa", "zh", "generate"), ("layalign_xcsqa_ll_en", "xcsqa", "en", "choices")]
LIMIT, NEW_TOKENS = 2, 6


def _template_of(path: Path) -> dict:
    return yaml.safe_load("\n".join(line for line in path.read_text().splitlines() if "!function" not in line))


def test_the_shipped_tasks_cover_every_language_of_the_registry():
    for bench, variants in (("mgsm", [""]), ("msvamp", [""]), ("xnli", ["", "_ll"]), ("xcsqa", ["", "_ll"]),
                            ("sib200", ["", "_ll"])):
        task = get_task(bench)
        for variant in variants:
            prefix = f"layalign_{bench}{variant}"
            group = yaml.safe_load((TASKS_DIR / f"{prefix}.yaml").read_text())
            assert group["task"] == [f"{prefix}_{lang}" for lang in task.languages]
            for lang in task.languages:
                entry = yaml.safe_load((TASKS_DIR / f"{prefix}_{lang}.yaml").read_text())
                assert entry["dataset_kwargs"] == {"benchmark": bench, "lang": lang}
            template = _template_of(TASKS_DIR / f"_{bench}{variant}_template")
            if variant:
                assert tuple(template["doc_to_choice"]) == task.choices and template["target_delimiter"] == ""
            else:
                assert template["generation_kwargs"]["max_gen_toks"] == task.max_new_tokens


def test_the_task_files_are_what_the_generator_writes_from_the_registry():
    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, str(root / "scripts" / "lm_eval_tasks.py"), "--check"], cwd=root,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("0 task files differ")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """pretrained= values: the three fused variants (adapters non-zero), an llm-lora directory, the bare LLM."""
    pytest.importorskip("lm_eval")
    from layalign.model.config import LayAlignConfig
    from layalign.model.lora import LLMLoRAModel, LoRAConfig
    from layalign.model.modeling import LayAlignModel
    from layalign.testing import randomize_adapters
    from training_helpers import save_tiny_pair

    root = tmp_path_factory.mktemp("lm_eval_models")
    pair = save_tiny_pair(root)
    out = {}
    for variant in ("layalign", "mindmerger", "langbridge"):
        model = LayAlignModel(LayAlignConfig(encoder=pair["encoder"], llm=pair["llm"], variant=variant))
        randomize_adapters(model, scale=0.05)
        model.save_pretrained(root / variant)
        out[variant] = str(root / variant)
    LLMLoRAModel(LoRAConfig(llm=pair["llm"])).save_pretrained(root / "lora")
    out["llm-lora"] = str(root / "lora")
    out["llm"] = f"llm:{pair['llm']}"
    return out


def _harness(pretrained: str, tasks: list[str], batch_size: int = 2, limit: int = LIMIT,
             new_tokens: int | None = NEW_TOKENS) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from layalign.integrations.lm_eval import tasks_dir

    manager = TaskManager(include_path=str(tasks_dir()), metadata=METADATA)
    return lm_eval.simple_evaluate(model="layalign", model_args=f"pretrained={pretrained},device=cpu",
                                   batch_size=batch_size, tasks=tasks, limit=limit, task_manager=manager,
                                   gen_kwargs=f"max_gen_toks={new_tokens}" if new_tokens else None, log_samples=True)


def _ours(pretrained: str, bench: str, lang: str, scoring: str, out: Path, limit: int = LIMIT,
          new_tokens: int | None = NEW_TOKENS) -> list[dict]:
    from layalign.evaluation.run import evaluate, load_predictions
    from layalign.systems import load_system

    examples = get_task(bench).read(METADATA[f"{bench}_data"], langs=[lang], limit=limit)
    evaluate(load_system(pretrained, device="cpu"), bench, examples, out, batch_size=2, max_new_tokens=new_tokens,
             progress=False, scoring=scoring)
    order = [ex.id for ex in examples[lang]]  # choice scoring writes rows longest first: back to file order
    return sorted(load_predictions(out / "predictions.jsonl"), key=lambda row: order.index(row["id"]))


@pytest.mark.parametrize("variant", ["layalign", "mindmerger", "langbridge", "llm-lora", "llm"])
def test_the_harness_gives_our_answers_and_accuracy(models, variant, tmp_path):
    _check_parity(models[variant], TASKS, tmp_path)


def _check_parity(pretrained: str, tasks: list[tuple[str, str, str, str]], out: Path, limit: int = LIMIT,
                  new_tokens: int | None = NEW_TOKENS) -> dict:
    """The harness and `layalign evaluate` on the same rows: same prompts, answers (or choice scores), accuracy."""
    import layalign.integrations.lm_eval  # noqa: F401  (registers "layalign")

    results = _harness(pretrained, [t for t, *_ in tasks], limit=limit, new_tokens=new_tokens)
    for name, bench, lang, scoring in tasks:
        rows = _ours(pretrained, bench, lang, scoring, out / name, limit=limit, new_tokens=new_tokens)
        samples = sorted(results["samples"][name], key=lambda s: s["doc_id"])
        assert [s["doc"]["prompt"] for s in samples] == [r["prompt"] for r in rows]
        if scoring == "generate":
            assert [s["resps"][0][0] for s in samples] == [r["output"] for r in rows], name
            assert results["results"][name]["acc_paper,none"] == pytest.approx(
                sum(_paper_correct(bench, r) for r in rows) / len(rows))
        else:
            choices = get_task(bench).choices
            picked = [choices[max(range(len(choices)), key=lambda j, s=s: s["resps"][j][0][0])] for s in samples]
            assert picked == [r["output"] for r in rows], name
            lls = [s["resps"][j][0][0] for s in samples for j in range(len(choices))]
            assert lls == pytest.approx([r["choice_logprobs"][c] for r in rows for c in choices], abs=1e-3)
        assert results["results"][name]["acc,none"] == pytest.approx(sum(r["correct"] for r in rows) / len(rows))
    return results


def test_the_sib200_tasks_give_our_answers_and_accuracy(models, tmp_path):
    """Both SIB-200 variants on the fixture folder (Flores-200 codes as languages), a fused model."""
    _check_parity(models["layalign"], [("layalign_sib200_fra_Latn", "sib200", "fra_Latn", "generate"),
                                       ("layalign_sib200_ll_eng_Latn", "sib200", "eng_Latn", "choices")], tmp_path)


def _paper_correct(bench: str, row: dict) -> bool:
    from layalign.evaluation.scoring import extract_answer, is_correct

    return is_correct(bench, extract_answer(bench, row["output"], "paper"), row["gold"], "paper")


def test_a_group_averages_its_languages_unweighted(models):
    import layalign.integrations.lm_eval  # noqa: F401

    results = _harness(models["llm"], ["layalign_mgsm"], batch_size=16, limit=1, new_tokens=1)["results"]
    languages = get_task("mgsm").languages
    for metric in ("acc,none", "acc_paper,none"):
        assert results["layalign_mgsm"][metric] == pytest.approx(
            sum(results[f"layalign_mgsm_{lang}"][metric] for lang in languages) / len(languages))


def test_loglikelihood_reports_greediness_and_rolling_is_refused(models):
    from lm_eval.api.instance import Instance

    from layalign.integrations.lm_eval import LayAlignLM

    lm = LayAlignLM(pretrained=models["layalign"], device="cpu")
    assert (lm.rank, lm.world_size, lm.gather_object("x")) == (0, 1, ["x"])  # one process: no splitting
    doc = {"source": "Swali", "prompt": "Premise: a\nHypothesis: b\nLabel:"}
    reqs = [Instance("loglikelihood", doc, (doc["prompt"], c), i, ("layalign_xnli_ll_sw", 0, 1))
            for i, c in enumerate(["entailment", "neutral"])]
    scored = lm.loglikelihood(reqs)
    expected = lm.system.score_choices(["Swali"], [doc["prompt"]], ["entailment", "neutral"], langs=["sw"])[0]
    assert [s for s, _ in scored] == pytest.approx(expected)
    # greediness: the bare LLM's most likely next token is greedy, another one is not
    bare = LayAlignLM(pretrained=models["llm"], device="cpu")
    logits = bare.system.llm(**bare.system.inputs(["Swali"], [doc["prompt"]])).logits[0, -1]
    best, other = logits.argsort(descending=True)[:2].tolist()
    texts = [bare.system.tokenizer.decode([t]) for t in (best, other)]
    tokenize = bare.system.tokenizer
    if all(tokenize(t, add_special_tokens=False)["input_ids"] == [i] for t, i in zip(texts, (best, other))):
        reqs = [Instance("loglikelihood", doc, (doc["prompt"], t), i, ("layalign_xnli_ll_sw", 0, 1))
                for i, t in enumerate(texts)]
        assert [g for _, g in bare.loglikelihood(reqs)] == [True, False]
    with pytest.raises(NotImplementedError, match="source text"):
        lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("text",), 0, ("wikitext", 0, 1))])


def test_a_task_without_source_mapping_is_named_with_the_ways_to_add_one(models):
    from lm_eval.api.instance import Instance

    from layalign.integrations.lm_eval import LayAlignLM, register_source, source_of

    req = Instance("generate_until", {"text": "Hujambo", "q": "?"}, ("Q: Hujambo", {"until": ["\n"]}), 0,
                   ("my_task_sw", 0, 1))
    with pytest.raises(ValueError, match=r"task 'my_task_sw'.*register_source.*layalign_source.*source=context"):
        source_of(req)
    register_source("my_task_*", ["text", "q"], separator=" ")
    assert source_of(req) == "Hujambo ?"
    assert source_of(Instance("generate_until", {"layalign_source": "x"}, ("c", {}), 0, ("other", 0, 1))) == "x"
    lm = LayAlignLM(pretrained=models["llm"], device="cpu", source="context")
    assert lm._source(req) == "Q: Hujambo"


def test_the_command_line_wrapper_registers_the_model_and_our_tasks(models, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "layalign.integrations.lm_eval", "run", "--model", "layalign",
           "--model_args", f"pretrained={models['langbridge']},device=cpu", "--tasks", "layalign_xnli_ll_sw",
           "--limit", "2", "--metadata", json.dumps(METADATA), "--output_path", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    written = list(out.rglob("results_*.json"))
    assert written and "layalign_xnli_ll_sw" in json.loads(written[0].read_text())["results"]


def test_the_readme_command_runs_as_written_and_prints_a_results_table(models):
    """README.md's `layalign-lm-eval --model layalign --model_args pretrained=DIR --tasks layalign_xnli_ll` (plus a
    small --limit), from the repository root: no --device, so lm_eval passes cuda:0, which on a machine without that
    GPU becomes the CPU with a warning; the data come from the default copy."""
    import shutil

    import torch

    script = shutil.which("layalign-lm-eval", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "layalign.integrations.lm_eval"]  # the same main()
    cmd = [*command, "--model", "layalign", "--model_args", f"pretrained={models['langbridge']}",
           "--tasks", "layalign_xnli_ll", "--limit", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1],
                          env=_offline_env())
    assert done.returncode == 0, done.stderr[-3000:]
    if not torch.cuda.is_available():
        assert "device 'cuda:0' is not available on this machine: running on the CPU instead" in done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert any(line.split("|")[1].strip() == "layalign_xnli_ll" for line in table), done.stdout[-3000:]
    assert sum("layalign_xnli_ll_" in line for line in table) == len(get_task("xnli").languages)


def test_a_device_that_does_not_exist_falls_back_to_the_cpu_with_a_warning():
    pytest.importorskip("lm_eval")
    import torch

    from layalign.integrations.lm_eval import available_device

    assert available_device("cpu") == "cpu"
    assert available_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: none here, or one too many
    with pytest.warns(UserWarning, match=f"device '{missing}' is not available on this machine"):
        assert available_device(missing) == "cpu"
    with pytest.raises(ValueError, match="'gpu0' is not a torch device"):
        available_device("gpu0")


def test_missing_data_is_one_line_naming_metadata_and_the_variable(models, tmp_path, monkeypatch, capsys):
    """Run from a folder without ../shared/data and without --metadata: exit 2 and one line, no traceback."""
    from layalign.integrations.lm_eval import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAYALIGN_XNLI_DATA", raising=False)
    monkeypatch.delenv("LAYALIGN_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["layalign-lm-eval"])
    with pytest.raises(SystemExit) as stop:
        main(["--model", "layalign", "--model_args", f"pretrained={models['llm']},device=cpu",
              "--tasks", "layalign_xnli_ll_sw", "--limit", "1"])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == ("layalign-lm-eval: error: no xnli data: pass --metadata '{\"xnli_data\": \"DIR\"}' or set "
                     f"LAYALIGN_XNLI_DATA=DIR (the default copy ../shared/data/xnli is not there, relative to "
                     f"{tmp_path})")
    monkeypatch.setenv("LAYALIGN_XNLI_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit):
        main(["--model", "layalign", "--model_args", f"pretrained={models['llm']},device=cpu",
              "--tasks", "layalign_xnli_ll_sw", "--limit", "1"])
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"layalign-lm-eval: error: xnli data {tmp_path / 'nowhere'} (from LAYALIGN_XNLI_DATA) not found")


def test_the_parity_script_compares_both_sides_resumably(models, tmp_path):
    """scripts/lm_eval_parity.py on a tiny model: its page shows full agreement, and a rerun skips finished units."""
    import importlib.util

    script = Path(__file__).parents[1] / "scripts" / "lm_eval_parity.py"
    spec = importlib.util.spec_from_file_location("lm_eval_parity", script)
    parity = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = parity  # its dataclasses look their module up there
    spec.loader.exec_module(parity)
    out, page = tmp_path / "parity", tmp_path / "page.md"
    argv = ["--model", models["layalign"], "--limit", "2", "--langs", "sw", "--tasks", "xnli-choices,mgsm-generate",
            "--mgsm-max-new-tokens", str(NEW_TOKENS), "--batch-size", "2", "--out", str(out), "--report", str(page),
            "--data", f"xnli={METADATA['xnli_data']}", "--data", f"mgsm={METADATA['mgsm_data']}"]
    assert parity.main(argv) == 0
    text = page.read_text()
    assert "2 / 2 (identical label;" in text and "2 / 2 (identical text;" in text
    assert "Every comparison finished" in text
    finished = {path: path.stat().st_mtime_ns for path in out.rglob("*.json")}
    assert parity.main(argv) == 0  # nothing left to run
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*.json")} == finished
    with pytest.raises(SystemExit, match="other settings"):
        parity.main([*argv[:3], "3", *argv[4:]])


@pytest.mark.slow  # two processes that each import torch, transformers and lm_eval: 28 to 64 s here
def test_data_parallel_ranks_give_the_single_process_results(models, tmp_path):
    """Two processes (`accelerate launch`, gloo on the CPU): each rank evaluates its share of the documents and rank 0
    gathers the same samples and accuracy as one process. 5 rows: the ranks get 3 and 2, so lm_eval pads rank 1."""
    import socket

    tasks, limit = ["layalign_xnli_ll_sw", "layalign_mgsm_sw"], 5
    with socket.socket() as s:  # a free port for the process group
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
           str(port), "-m", "layalign.integrations.lm_eval", "run", "--model", "layalign",
           "--model_args", f"pretrained={models['layalign']},device=cpu", "--tasks", ",".join(tasks),
           "--limit", str(limit), "--batch_size", "2", "--gen_kwargs", f"max_gen_toks={NEW_TOKENS}",
           "--metadata", json.dumps(METADATA), "--output_path", str(out), "--log_samples"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_offline_env())
    assert done.returncode == 0, done.stderr[-3000:]
    for task in tasks:  # the harness built each rank's share
        assert f"Building contexts for {task} on rank 1" in done.stderr
    parallel = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
    single = _harness(models["layalign"], tasks, limit=limit)
    for task in tasks:
        assert parallel[task] == pytest.approx(single["results"][task]), task
        rows = sorted((json.loads(line) for line in next(out.rglob(f"samples_{task}_*.jsonl")).open()),
                      key=lambda s: s["doc_id"])
        assert [s["doc_id"] for s in rows] == list(range(limit))
        for ours, theirs in zip(rows, sorted(single["samples"][task], key=lambda s: s["doc_id"]), strict=True):
            # lm_eval appends a padding request's answer to its instance's answers, so compare the first answer of
            # each instance; choice log-likelihoods of batches made of other rows differ by float noise (1e-5)
            if "_ll_" in task:
                assert [float(r[0][0]) for r in ours["resps"]] == pytest.approx(
                    [r[0][0] for r in theirs["resps"]], abs=1e-4)
            else:
                assert ours["resps"][0][0] == theirs["resps"][0][0]


def _offline_env() -> dict[str, str]:
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.mark.real
@pytest.mark.parametrize("kind", ["layalign"])  # the bare LLM takes the tiny tests' path ("llm" here: 6 more minutes)
def test_the_harness_matches_layalign_evaluate_on_the_default_pair(kind, tmp_path):
    """The real pair (multilingual-e5-small + SmolLM2-135M-Instruct), adapters random but small and gates non-zero:
    a few rows of every task, generation (24 new tokens) and choice scoring."""
    pytest.importorskip("lm_eval")
    from layalign.backbones import catalogue
    from layalign.model.config import LayAlignConfig
    from layalign.model.modeling import LayAlignModel
    from layalign.testing import randomize_adapters

    encoder, llm = (catalogue.resolve_reference(ref) for ref in catalogue.default_pair())
    if kind == "llm":
        pretrained = f"llm:{llm}"
    else:
        model = LayAlignModel(LayAlignConfig(encoder=encoder, llm=llm))
        randomize_adapters(model, scale=0.05)
        model.save_pretrained(tmp_path / "pair")
        pretrained = str(tmp_path / "pair")
    tasks = [("layalign_mgsm_sw", "mgsm", "sw", "generate"), ("layalign_msvamp_zh", "msvamp", "zh", "generate"),
             ("layalign_xnli_sw", "xnli", "sw", "generate"), ("layalign_xnli_ll_sw", "xnli", "sw", "choices"),
             ("layalign_xcsqa_zh", "xcsqa", "zh", "generate"), ("layalign_xcsqa_ll_en", "xcsqa", "en", "choices")]
    _check_parity(pretrained, tasks, tmp_path, limit=2, new_tokens=24)
