"""The LLM prompt templates of the paper and its release, and the XNLI label words.

The templates are reproduced character for character from the LayAlign release (`construct_prompt_math`,
`construct_prompt_x_csqa`, `construct_prompt_xnli`, `construct_prompt_mt` in its `tools/read_datasets.py`, shared
with MindMerger):

- math (MetaMath/Alpaca, no input): the question goes in `{query}`; the prompt ends in
  "### Response: Let's think step by step." with no trailing space or newline.
- xcsqa: `{question}\\nOptions:{options}\\nAnswer:`, where `options` is "A. text" for each choice joined by a tab,
  lettered by position (A, B, C, ...) - see `format_options`.
- xnli: `Premise: {premise}\\nHypothesis: {hypothesis}\\nLabel:`; the target is a label word.
- sib200 (not in the release; SIB-200 is not one of its benchmarks): `Text: {text}\nTopic (...):` naming the seven
  labels, in the order and words of SIB-200's own prompt for GPT ("Is this a piece of news regarding
  science/technology, travel, ...?"), so a bare LLM knows the answer set; the target is a label word, as XNLI's.
- translation: the release's Alpaca-with-input instruction. LayAlign and MindMerger train the translation stage
  without any LLM prompt; this template is only for prompting a bare LLM (the "LLM only" baseline).
- none: the query itself, for free-form use.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

MATH_TEMPLATE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{query}\n\n### Response: Let's think step by step."
)
XCSQA_TEMPLATE = "{question}\nOptions:{options}\nAnswer:"
XNLI_TEMPLATE = "Premise: {premise}\nHypothesis: {hypothesis}\nLabel:"
SIB200_TEMPLATE = (
    "Text: {text}\nTopic (science/technology, travel, politics, sports, health, entertainment or geography):"
)
TRANSLATION_TEMPLATE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n"
    "### Instruction:\nTranslate the following sentences from {src_lang} to {tgt_lang}.\n"
    "### Input:\n{text}\n### Response:"
)

TEMPLATES: dict[str, str] = {
    "math": MATH_TEMPLATE,
    "xcsqa": XCSQA_TEMPLATE,
    "xnli": XNLI_TEMPLATE,
    "sib200": SIB200_TEMPLATE,
    "translation": TRANSLATION_TEMPLATE,
    "none": "{query}",
}

# Benchmarks that share a template with a task.
_ALIASES = {"mgsm": "math", "msvamp": "math", "gsm8k": "math", "x-csqa": "xcsqa", "x_csqa": "xcsqa"}

# HF convention: 0 = entailment, 1 = neutral, 2 = contradiction.
XNLI_LABELS: tuple[str, str, str] = ("entailment", "neutral", "contradiction")
# SIB-200's categories as its files write them, in the order of its paper and prompt
SIB200_LABELS: tuple[str, ...] = ("science/technology", "travel", "politics", "sports", "health", "entertainment",
                                  "geography")


def template_fields(template: str) -> list[str]:
    """The `{field}` names a template needs, in order of first appearance."""
    names: list[str] = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"template field {{{name}}} must be a plain name (no indexing, attributes or positions)")
        if name not in names:
            names.append(name)
    return names


def register_template(name: str, template: str, overwrite: bool = False) -> None:
    """Add a template to TEMPLATES under `name`; a name already taken is an error unless overwrite=True."""
    if not name:
        raise ValueError("a template needs a non-empty name")
    if name in TEMPLATES and not overwrite:
        raise ValueError(f"template {name!r} is already registered; pass overwrite=True to replace it")
    template_fields(template)  # reject malformed templates now rather than at the first format_prompt call
    TEMPLATES[name] = template


def get_template(task: str) -> str:
    """The template registered for `task` (benchmark names such as "mgsm" resolve to their task's template)."""
    name = _ALIASES.get(task, task)
    if name not in TEMPLATES:
        raise KeyError(f"unknown prompt task {task!r}; known: {', '.join(sorted(TEMPLATES))}")
    return TEMPLATES[name]


def format_prompt(task: str, **fields: str) -> str:
    """Fill the template of `task` with `fields`. Every field the template names must be given; extra fields are an
    error too, since they usually mean the wrong task was named."""
    template = get_template(task)
    needed = template_fields(template)
    missing = [name for name in needed if name not in fields]
    if missing:
        raise ValueError(f"prompt {task!r} needs field(s) {', '.join(missing)} (template fields: {', '.join(needed)})")
    extra = sorted(set(fields) - set(needed))
    if extra:
        raise ValueError(f"prompt {task!r} takes no field(s) {', '.join(extra)} (template fields: {', '.join(needed)})")
    return template.format(**{name: str(fields[name]) for name in needed})


def format_options(choices: Sequence[str]) -> str:
    """X-CSQA options as the release writes them: "A. first\\tB. second\\t..." (letters by position)."""
    if not 0 < len(choices) <= 26:
        raise ValueError(f"X-CSQA needs 1 to 26 choices, got {len(choices)}")
    return "\t".join(f"{chr(ord('A') + i)}. {text}" for i, text in enumerate(choices))


def math_prompt(query: str) -> str:
    return format_prompt("math", query=query)


def xcsqa_prompt(question: str, choices: Sequence[str]) -> str:
    return format_prompt("xcsqa", question=question, options=format_options(choices))


def xnli_prompt(premise: str, hypothesis: str) -> str:
    return format_prompt("xnli", premise=premise, hypothesis=hypothesis)


def sib200_prompt(text: str) -> str:
    return format_prompt("sib200", text=text)


def xnli_label_word(label: int | str) -> str:
    """The label word for an XNLI label given as 0/1/2 (int or digit string) or as a word (any case)."""
    if isinstance(label, bool):  # bool is an int subclass; True is not a label
        raise ValueError(f"unknown XNLI label {label!r}")
    if isinstance(label, int):
        if 0 <= label < len(XNLI_LABELS):
            return XNLI_LABELS[label]
    elif isinstance(label, str):
        text = label.strip().lower()
        if text in XNLI_LABELS:
            return text
        if text.isdigit() and int(text) < len(XNLI_LABELS):
            return XNLI_LABELS[int(text)]
    raise ValueError(f"unknown XNLI label {label!r}; expected 0/1/2 or one of {', '.join(XNLI_LABELS)}")
