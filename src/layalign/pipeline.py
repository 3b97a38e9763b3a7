"""Text in, text out: a trained LayAlign model, or the bare LLM, behind one `generate` for evaluation and the CLI."""

from __future__ import annotations

from pathlib import Path

import torch

from layalign.config import CONFIG_NAME, LayAlignConfig
from layalign.modeling import LayAlignModel
from layalign.processing import LayAlignProcessor

LLM_ONLY_PREFIX = "llm:"


class LayAlignSystem:
    """A LayAlign (or MindMerger / LangBridge) model with its processor."""

    def __init__(self, model: LayAlignModel, name: str, processor: LayAlignProcessor | None = None):
        self.model = model.eval()
        self.name = name
        self.processor = processor or LayAlignProcessor.from_model(model)

    def generate(self, sources: list[str], prompts: list[str | None], max_new_tokens: int,
                 **generation_kwargs) -> list[str]:
        batch = self.processor(sources, prompts)
        batch = {k: v.to(self.model.llm.device) for k, v in batch.items()}
        generation_kwargs.setdefault("do_sample", False)
        new_tokens = self.model.generate(**batch, max_new_tokens=max_new_tokens, **generation_kwargs)
        return self.processor.decode(new_tokens)


class LLMOnlySystem:
    """The bare LLM reading the prompt (or, without one, the source) directly: the "LLM only" row of every table.
    Its input is [bos] + prompt tokens, the same start LayAlign gives the LLM."""

    def __init__(self, llm, tokenizer, name: str, max_prompt_length: int = 1024):
        self.llm = llm.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.max_prompt_length = max_prompt_length

    def generate(self, sources: list[str], prompts: list[str | None], max_new_tokens: int,
                 **generation_kwargs) -> list[str]:
        texts = [prompt or source for source, prompt in zip(sources, prompts, strict=True)]
        bos = self.llm.config.bos_token_id
        ids = [([bos] if bos is not None else []) + self.tokenizer(t, add_special_tokens=False)["input_ids"]
               [-self.max_prompt_length:] for t in texts]
        width = max(len(x) for x in ids)
        pad = _pad_token(self.llm, self.tokenizer)
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.llm.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.llm.device)
        generation_kwargs.setdefault("do_sample", False)
        with torch.no_grad():
            out = self.llm.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                    pad_token_id=pad, **generation_kwargs)
        return [t.strip() for t in self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)]


def load_system(model: str, device: str | None = None, dtype: str | None = None):
    """`llm:REF` -> the bare LLM; a LayAlign directory -> the trained model; `ENCODER,LLM` -> an untrained LayAlign
    pair (gates at zero: it answers as the bare LLM would, given the mapped encoder states)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if model.startswith(LLM_ONLY_PREFIX):
        from layalign.models import load_llm

        ref = model[len(LLM_ONLY_PREFIX):]
        llm, tokenizer = load_llm(ref, dtype or "float32")
        return LLMOnlySystem(llm.to(device), tokenizer, name=f"LLM only ({Path(ref).name})")
    if (Path(model) / CONFIG_NAME).is_file():
        overrides = {"dtype": dtype} if dtype else {}
        trained = LayAlignModel.from_pretrained(model, **overrides).to(device)
        return LayAlignSystem(trained, name=_system_name(trained.config, Path(model).name))
    if "," in model:
        encoder, llm = (part.strip() for part in model.split(",", 1))
        untrained = LayAlignModel(LayAlignConfig(encoder=encoder, llm=llm, dtype=dtype or "float32")).to(device)
        return LayAlignSystem(untrained, name="LayAlign (untrained)")
    raise ValueError(f"{model!r} is neither a LayAlign directory (no {CONFIG_NAME}), nor llm:REF, nor ENCODER,LLM")


def _system_name(config: LayAlignConfig, directory: str) -> str:
    names = {"layalign": "LayAlign", "mindmerger": "MindMerger", "langbridge": "LangBridge"}
    return config.extra.get("name") or f"{names[config.variant]} ({directory})"


def _pad_token(llm, tokenizer) -> int:
    for value in (tokenizer.pad_token_id, llm.config.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0
