"""Prompt templates: the papers' and releases' exact templates, registration, XNLI label words."""

from __future__ import annotations

import pytest

from layalign.data import (
    prompts,
)
from layalign.data.prompts import format_options, format_prompt, register_template, xnli_label_word


def test_math_template_is_the_papers():
    assert format_prompt("math", query="Q?") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nQ?\n\n### Response: Let's think step by step."
    )
    assert format_prompt("mgsm", query="Q?") == format_prompt("math", query="Q?")


def test_xcsqa_and_xnli_templates_are_the_releases():
    options = format_options(["dog", "cat", "cow"])
    assert options == "A. dog\tB. cat\tC. cow"
    expected = "Which?\nOptions:A. dog\tB. cat\tC. cow\nAnswer:"
    assert format_prompt("xcsqa", question="Which?", options=options) == expected
    assert prompts.xcsqa_prompt("Which?", ["dog", "cat", "cow"]) == expected
    assert prompts.xnli_prompt("P.", "H.") == "Premise: P.\nHypothesis: H.\nLabel:"


def test_format_prompt_errors_name_the_problem():
    with pytest.raises(KeyError, match="unknown prompt task 'nope'.*math"):
        format_prompt("nope", query="x")
    with pytest.raises(ValueError, match="needs field.*hypothesis"):
        format_prompt("xnli", premise="p")
    with pytest.raises(ValueError, match="takes no field.*query"):
        format_prompt("xnli", premise="p", hypothesis="h", query="q")


def test_register_template(monkeypatch):
    monkeypatch.setattr(prompts, "TEMPLATES", dict(prompts.TEMPLATES))
    register_template("echo", "Say: {text}")
    assert format_prompt("echo", text="hi") == "Say: hi"
    with pytest.raises(ValueError, match="already registered"):
        register_template("echo", "{text}")
    register_template("echo", "{text}!", overwrite=True)
    assert format_prompt("echo", text="hi") == "hi!"
    with pytest.raises(ValueError, match="already registered"):
        register_template("math", "{query}")


def test_xnli_label_words():
    assert [xnli_label_word(i) for i in (0, 1, 2)] == ["entailment", "neutral", "contradiction"]
    assert xnli_label_word("2") == "contradiction"
    assert xnli_label_word(" Neutral ") == "neutral"
    for bad in (3, -1, "maybe", True, None):
        with pytest.raises(ValueError, match="unknown XNLI label"):
            xnli_label_word(bad)
