"""The benchmark registry: every entry is consistent, its default data is where it says, unknown names fail clearly,
and a new benchmark is one entry plus a reader."""

import dataclasses
from pathlib import Path

import pytest

import layalign.data
from evaluation_helpers import FakeSystem
from layalign.cli import build_parser
from layalign.data.examples import EvalExample
from layalign.evaluation import evaluate, extract_answer, is_correct
from layalign.tasks import ANSWER_KINDS, SHARED_DATA, TASKS, Task, get_task

REPO = Path(__file__).parents[1]
DATA = REPO / ".." / "shared" / "data"


def test_the_six_benchmarks_are_registered():
    assert list(TASKS) == ["mgsm", "msvamp", "xcsqa", "xnli", "sib200", "translation"]
    assert all(name == task.name for name, task in TASKS.items())


@pytest.mark.parametrize("name", list(TASKS))
def test_every_entry_is_consistent(name):
    task = TASKS[name]
    assert len(set(task.languages)) == len(task.languages)
    assert set(task.low_resource) <= set(task.languages) and task.low_resource
    assert task.answer in ANSWER_KINDS and task.max_new_tokens > 0
    assert task.prompt_template == layalign.data.TEMPLATES[task.template]
    assert task.data_path is None or task.data_path.startswith(f"{SHARED_DATA}/")
    assert task.data_path is not None or "--data" in task.data_note  # no shared copy: the error says what to pass
    if task.choices is not None:
        # every allowed answer is what extraction reads from it, and it is right against itself
        assert task.per_example
        for choice in task.choices:
            assert extract_answer(name, choice) == choice
            assert is_correct(name, choice, choice)


@pytest.mark.skipif(not (DATA / "MANIFEST.md").is_file(), reason=f"the shared data copy is not at {DATA}")
@pytest.mark.parametrize("name", list(TASKS))
def test_every_default_path_reads_or_fails_clearly(name, monkeypatch):
    monkeypatch.chdir(REPO)  # default paths are relative to the repository root
    task = TASKS[name]
    if task.data_path is None:
        with pytest.raises(ValueError, match="has no copy.*--data"):
            task.read()
    elif not Path(task.data_path).exists():
        with pytest.raises(FileNotFoundError, match=f"default {name} data .*{task.data_note[:20]}.*--data"):
            task.read()
    else:
        lang = task.languages[0]
        examples = task.read(langs=[lang], limit=2)
        assert list(examples) == [lang] and len(examples[lang]) == 2
        assert all(isinstance(e, EvalExample) and e.lang == lang for e in examples[lang])


def test_the_registry_is_the_one_place_for_benchmark_facts():
    # layalign.data once kept its own tables of languages and paths beside the registry; they must not come back
    for name in ("LANGS", "LOW_RESOURCE", "DEFAULT_PATHS", "default_path", "read_benchmark"):
        assert not hasattr(layalign.data, name), name
    assert not hasattr(layalign.data.numbers, "parse_number")


def test_unknown_names_and_bad_entries_fail_clearly():
    with pytest.raises(ValueError,
                       match="unknown benchmark 'gsm9k'; known: mgsm, msvamp, xcsqa, xnli, sib200, translation"):
        get_task("gsm9k")
    with pytest.raises(ValueError, match="mgsm has no splits"):
        get_task("mgsm").read(DATA / "mgsm", split="test")
    mgsm = get_task("mgsm")
    with pytest.raises(ValueError, match="answer kind"):
        dataclasses.replace(mgsm, answer="essay")
    with pytest.raises(ValueError, match="metrics"):
        dataclasses.replace(mgsm, metrics=("f1",))
    with pytest.raises(ValueError, match="template"):
        dataclasses.replace(mgsm, template="no-such-template")
    with pytest.raises(ValueError, match="low-resource"):
        dataclasses.replace(mgsm, low_resource=("xx",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        mgsm.max_new_tokens = 1


def test_the_registry_puts_what_a_reader_found_in_the_tasks_order(tmp_path):
    found = {}

    def read_any(path, langs=None, limit=None):  # a reader knows no order: what it found, sorted, or as asked
        found["langs"] = langs
        return {lang: [] for lang in (langs or ["zz", "en", "sw", "aa"])}

    task = Task("any", read_any, "none", languages=("sw", "ur", "en"), low_resource=("sw",), data_path=None,
                max_new_tokens=4, answer="line")
    assert list(task.read(tmp_path)) == ["sw", "en", "aa", "zz"]  # the task's order, the ones it lacks sorted after
    assert list(task.read(tmp_path, langs=["en", "sw"])) == ["en", "sw"] and found["langs"] == ["en", "sw"]


def evaluate_args(benchmark):
    return build_parser().parse_args(["evaluate", "--model", "m", "--benchmark", benchmark])


def test_the_cli_offers_the_registered_benchmarks(capsys):
    for name in TASKS:
        assert evaluate_args(name).benchmark == name
    with pytest.raises(SystemExit):
        evaluate_args("gsm9k")
    assert "{mgsm,msvamp,xcsqa,xnli,sib200,translation}" in capsys.readouterr().err.replace("\n", "").replace(" ", "")


def test_a_new_benchmark_is_one_entry_and_a_reader(tmp_path, monkeypatch):
    """The README's example: a yes/no benchmark read from a TSV file, scored as NLI-style labels."""

    def read_toy(path, langs=None, limit=None):
        rows = [line.split("\t") for line in Path(path).read_text(encoding="utf-8").splitlines()]
        return {"en": [EvalExample(id=f"toy-{i}", lang="en", source=q, gold=a, prompt=q)
                       for i, (q, a) in enumerate(rows[:limit])]}

    (tmp_path / "toy.tsv").write_text("Is it raining?\tentailment\nIs it dry?\tcontradiction\n", encoding="utf-8")
    toy = Task("toy", read_toy, "none", languages=("en",), low_resource=("en",), data_path=str(tmp_path / "toy.tsv"),
               max_new_tokens=4, answer="label", choices=("entailment", "contradiction"))
    monkeypatch.setitem(TASKS, "toy", toy)
    results = evaluate(FakeSystem("yes-man", lambda s: "Yes."), "toy", get_task("toy").read(), tmp_path / "run",
                       progress=False)
    assert results["per_language"]["en"]["accuracy"] == 50.0 and results["low_resource_languages"] == ["en"]
    assert evaluate_args("toy").benchmark == "toy"
