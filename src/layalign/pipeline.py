"""Text in, text out: a trained LayAlign model, or the bare LLM, behind one `generate` for evaluation and the CLI."""

from __future__ import annotations

from pathlib import Path

import torch

from layalign.config import CONFIG_NAME, LayAlignConfig
from layalign.modeling import IGNORE_INDEX, LayAlignModel
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

    @torch.no_grad()
    def score(self, sources: list[str], prompts: list[str | None], continuations: list[str]) -> list[float]:
        """log P(continuation | source, prompt), summed over the continuation's tokens (the eos the processor
        appends to a target is not counted): choice scoring for classification benchmarks."""
        batch = self.processor(sources, prompts, continuations)
        batch = {k: v.to(self.model.llm.device) for k, v in batch.items()}
        out = self.model(**batch)
        targets = out.targets.clone()
        last = (targets != IGNORE_INDEX).cumsum(dim=1) == (targets != IGNORE_INDEX).sum(dim=1, keepdim=True)
        targets[last] = IGNORE_INDEX  # the appended eos is the last target token of every row
        return sum_logprobs(out.logits[:, :-1], targets)


class LLMOnlySystem:
    """The bare LLM reading the prompt (or, without one, the source) directly: the "LLM only" row of every table.
    Its input is [bos] + prompt tokens, the same start LayAlign gives the LLM."""

    def __init__(self, llm, tokenizer, name: str, max_prompt_length: int = 1024):
        self.llm = llm.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.max_prompt_length = max_prompt_length

    def _prompt_ids(self, sources: list[str], prompts: list[str | None]) -> list[list[int]]:
        texts = [prompt or source for source, prompt in zip(sources, prompts, strict=True)]
        bos = self.llm.config.bos_token_id
        return [([bos] if bos is not None else []) + self.tokenizer(t, add_special_tokens=False)["input_ids"]
                [-self.max_prompt_length:] for t in texts]

    def _left_padded(self, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(x) for x in ids)
        pad = _pad_token(self.llm, self.tokenizer)
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.llm.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.llm.device)
        return input_ids, mask

    def generate(self, sources: list[str], prompts: list[str | None], max_new_tokens: int,
                 **generation_kwargs) -> list[str]:
        input_ids, mask = self._left_padded(self._prompt_ids(sources, prompts))
        width, pad = input_ids.shape[1], _pad_token(self.llm, self.tokenizer)
        generation_kwargs.setdefault("do_sample", False)
        with torch.no_grad():
            out = self.llm.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                    pad_token_id=pad, **generation_kwargs)
        return [t.strip() for t in self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)]

    @torch.no_grad()
    def score(self, sources: list[str], prompts: list[str | None], continuations: list[str]) -> list[float]:
        """log P(continuation | prompt), summed over the continuation's tokens, tokenized as a training target."""
        if any(not c.strip() for c in continuations):
            raise ValueError("a continuation to score is empty")
        tails = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
        ids = [head + tail for head, tail in zip(self._prompt_ids(sources, prompts), tails, strict=True)]
        input_ids, mask = self._left_padded(ids)
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)  # left padding: positions start at each row's bos
        width = max(map(len, tails))
        logits = self.llm(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                          logits_to_keep=width + 1).logits
        targets = input_ids[:, -width:].clone()
        for row, tail in enumerate(tails):  # the continuations are the right end of every row
            targets[row, : width - len(tail)] = IGNORE_INDEX
        return sum_logprobs(logits[:, :-1], targets)


def sum_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Per row, the sum of log-softmax(logits) at the target tokens, IGNORE_INDEX positions skipped."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    keep = targets != IGNORE_INDEX
    picked = logprobs.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return (picked * keep).sum(dim=1).tolist()


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
