"""Input lengths: a trained model's recorded lengths are reused by evaluation, explicit lengths apply to every
system alike (the bare LLM's prompt included), and every run records its limits and how many inputs were cut per
language."""

import json

import pytest
import torch

from evaluation_helpers import FakeSystem
from layalign.data.examples import EvalExample
from layalign.evaluation import evaluate, results_markdown
from layalign.model.modeling import LayAlignModel
from layalign.model.processing import DEFAULT_LENGTHS, InputLengths, LayAlignProcessor
from layalign.systems import LENGTHS_KEY, LayAlignSystem, LLMOnlySystem, load_system, recorded_lengths
from layalign.testing import byte_tokenizer, tiny_encoder, tiny_llm, tiny_model


def test_the_processor_records_which_texts_of_each_example_were_cut():
    processor = LayAlignProcessor(byte_tokenizer(), byte_tokenizer(), max_source_length=6, max_prompt_length=4)
    processor.warn_truncation = False
    processor(["a" * 20, "b", "c" * 20], ["short", None, "p"])
    assert processor.last_truncated == [["source", "prompt"], [], ["source"]]
    processor(["b"], ["q"])
    assert processor.last_truncated == [[]]  # per call, not cumulative
    assert processor.lengths == InputLengths(6, 4, DEFAULT_LENGTHS.max_target_length)


def test_the_bare_llm_takes_the_same_prompt_limit_and_reports_cuts():
    llm = tiny_model().llm
    assert LLMOnlySystem(llm, byte_tokenizer(), name="bare").max_prompt_length == DEFAULT_LENGTHS.max_prompt_length
    system = LLMOnlySystem(llm, byte_tokenizer(), name="bare", max_prompt_length=8)
    system.generate(["s", "s"], ["0123456789abc", "short"], max_new_tokens=1)
    assert system.last_truncated == [["prompt"], []]
    assert system.lengths == {"max_source_length": None, "max_prompt_length": 8}


def saved_model(tmp_path, lengths):
    model = tiny_model()
    if lengths is not None:
        model.config.extra[LENGTHS_KEY] = lengths
    model.save_pretrained(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_loading(monkeypatch):
    """load_system on a saved tiny model: the backbones are the tiny ones, not downloads."""
    original = LayAlignModel.from_pretrained.__func__

    def from_pretrained(cls, directory, **overrides):
        model = original(cls, directory, encoder=tiny_encoder("bert"), llm=tiny_llm("llama", seed=1), **overrides)
        model.encoder_tokenizer = model.llm_tokenizer = byte_tokenizer()
        return model

    monkeypatch.setattr(LayAlignModel, "from_pretrained", classmethod(from_pretrained))


def test_load_system_reuses_the_recorded_lengths_unless_overridden(tmp_path, tiny_loading):
    recorded = {"max_source_length": 64, "max_prompt_length": 128, "max_target_length": 32}
    path = saved_model(tmp_path / "m", recorded)
    system = load_system(str(path), device="cpu")
    assert system.processor.lengths == InputLengths(64, 128, 32)
    assert system.lengths == {"max_source_length": 64, "max_prompt_length": 128}
    system = load_system(str(path), device="cpu", max_prompt_length=300)
    assert system.processor.lengths == InputLengths(64, 300, 32)
    # a model saved before lengths were recorded: the defaults
    old = load_system(str(saved_model(tmp_path / "old", None)), device="cpu")
    assert old.processor.lengths == DEFAULT_LENGTHS == recorded_lengths(tiny_model().config)


def test_a_run_records_its_lengths_and_truncated_inputs_per_language(tmp_path):
    model = tiny_model()
    processor = LayAlignProcessor.from_model(model, max_source_length=12, max_prompt_length=512)
    system = LayAlignSystem(model, name="tiny", processor=processor)
    examples = {"te": [EvalExample(id=f"te-{i}", lang="te", source="తెలుగు ప్రశ్న" * (i + 1), gold="1", prompt="Q")
                       for i in range(3)],
                "en": [EvalExample(id="en-0", lang="en", source="short", gold="1", prompt="Q")]}
    results = evaluate(system, "mgsm", examples, tmp_path, max_new_tokens=1, progress=False)
    assert results["lengths"] == {"max_source_length": 12, "max_prompt_length": 512}
    assert results["per_language"]["te"]["truncated"] == 3 and results["per_language"]["en"]["truncated"] == 0
    assert results["truncated"] == 3
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["truncated"] for r in rows] == [["source"]] * 3 + [[]]
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved["per_language"]["te"]["truncated"] == 3 and saved["lengths"]["max_source_length"] == 12
    assert json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["lengths"] == results["lengths"]
    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "input limits (tokens): source 12, prompt 512; inputs truncated: te 3/3" in md.lower()
    # other limits cannot resume into the same run
    other = LayAlignSystem(model, name="tiny", processor=LayAlignProcessor.from_model(model, max_source_length=99))
    with pytest.raises(ValueError, match="another run.*lengths"):
        evaluate(other, "mgsm", examples, tmp_path, max_new_tokens=1, progress=False)


def test_systems_that_report_no_truncation_are_unknown_not_zero(tmp_path):
    examples = {"en": [EvalExample(id="en-0", lang="en", source="s", gold="1", prompt="p")]}
    system = FakeSystem("fake", lambda s: "1")
    results = evaluate(system, "mgsm", examples, tmp_path, progress=False)
    assert results["truncated"] is None and results["per_language"]["en"]["truncated"] is None
    assert results["lengths"] is None
    assert "truncat" not in results_markdown(results)
    assert system.langs == ["en"]  # evaluation passes every example's language


def test_the_cli_passes_explicit_lengths_to_every_system(tmp_path, monkeypatch, capsys):
    import dataclasses
    import sys
    import types

    from layalign.cli import main
    from layalign.tasks import TASKS

    examples = {"en": [EvalExample(id="en-0", lang="en", source="s", gold="1", prompt="p")]}
    system = FakeSystem("llm:Some/Model", lambda s: "1")
    calls = []
    stub = types.ModuleType("layalign.systems")
    stub.load_system = lambda model, **kwargs: calls.append(kwargs) or system
    stub.answer = lambda system, question, task, max_new_tokens, lang, fields: f"{lang}:{question}"
    stub.single_input = lambda text, task, lang=None, fields=None: (text, text, [lang])  # checked before loading
    stub.classify = None  # mgsm has no labels: never called
    monkeypatch.setitem(sys.modules, "layalign.systems", stub)
    monkeypatch.setitem(TASKS, "mgsm", dataclasses.replace(
        TASKS["mgsm"], reader=lambda path, langs=None, limit=None: examples, data_path=str(tmp_path)))
    monkeypatch.chdir(tmp_path)

    assert main(["evaluate", "--model", "llm:Some/Model", "--benchmark", "mgsm", "--max-prompt-length", "300"]) == 0
    assert main(["evaluate", "--model", "llm:Some/Model", "--benchmark", "mgsm", "--out", "b"]) == 0
    assert main(["generate", "q", "--model", "m", "--lang", "sw", "--max-source-length", "50"]) == 0
    assert main(["evaluate", "--model", "m", "--benchmark", "mgsm", "--out", "c", "--dtype", "bfloat16"]) == 0
    assert calls == [{"device": None, "dtype": None, "max_prompt_length": 300}, {"device": None, "dtype": None},
                     {"device": None, "dtype": None, "max_source_length": 50},
                     {"device": None, "dtype": "bfloat16"}]
    assert "sw:q" in capsys.readouterr().out


def test_a_run_records_its_dtype_and_refuses_to_resume_in_another(tmp_path):
    examples = {"en": [EvalExample(id="en-0", lang="en", source="short", gold="1", prompt="Q")]}
    model = tiny_model()
    results = evaluate(LayAlignSystem(model, name="tiny"), "mgsm", examples, tmp_path, max_new_tokens=1,
                       progress=False)
    assert results["dtype"] == "float32"
    assert json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["dtype"] == "float32"
    bare = LLMOnlySystem(tiny_llm().to(torch.bfloat16), byte_tokenizer(), name="tiny")
    with pytest.raises(ValueError, match="another run.*dtype"):
        evaluate(bare, "mgsm", examples, tmp_path, max_new_tokens=1, progress=False, name="tiny")
