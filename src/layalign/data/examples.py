"""The two record types every reader returns: what the model trains on, and what a benchmark asks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainExample:
    """One training example.

    source: the text the multilingual encoder reads (the X-language sentence or query; for X-CSQA/XNLI the whole
        formatted prompt).
    target: the English text the LLM must produce (the loss is on these tokens, plus eos).
    prompt: the LLM prompt ("augmentation"): the task template around the same query; None in the translation
        stage and for LangBridge.
    """

    source: str
    target: str
    prompt: str | None = None
    lang: str = "xx"


@dataclass
class EvalExample:
    """One benchmark question. `gold` is the reference answer as text (a number, a choice letter, a label word or
    an English sentence); `source` and `prompt` play the same roles as in TrainExample."""

    id: str
    lang: str
    source: str
    gold: str
    prompt: str | None = None
    meta: dict = field(default_factory=dict)
