"""Text in, text out: a trained LayAlign model, or the bare LLM, behind one `generate` for evaluation and the CLI;
`answer` puts one question through a task's prompt template."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from layalign.data.prompts import format_prompt
from layalign.model import fusion
from layalign.model.config import CONFIG_NAME, LayAlignConfig
from layalign.model.modeling import LayAlignModel
from layalign.model.processing import LayAlignProcessor

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
    def score_choices(self, sources: list[str], prompts: list[str | None], choices: list[str]) -> list[list[float]]:
        """log P(choice | source, prompt) for every example and choice, summed over the choice's tokens (tokenized as
        a training target, without its eos): choice scoring for classification benchmarks."""
        batch = {k: v.to(self.model.llm.device) for k, v in self.processor(sources, prompts).items()}
        inputs, state = self.model.prompt_inputs(**batch)
        prefix = {"inputs_embeds": inputs.embeds, "attention_mask": inputs.attention_mask,
                  "position_ids": inputs.position_ids}
        with fusion.active(state):
            return choice_logprobs(self.model.llm, prefix, [self.processor._llm_ids(c) for c in choices])


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
    def score_choices(self, sources: list[str], prompts: list[str | None], choices: list[str]) -> list[list[float]]:
        """log P(choice | prompt) for every example and choice, summed over the choice's tokens."""
        input_ids, mask = self._left_padded(self._prompt_ids(sources, prompts))
        prefix = {"input_ids": input_ids, "attention_mask": mask,
                  "position_ids": (mask.cumsum(dim=1) - 1).clamp(min=0)}  # positions start at each row's bos
        return choice_logprobs(self.llm, prefix, [self.tokenizer(c, add_special_tokens=False)["input_ids"]
                                                  for c in choices])


def choice_logprobs(llm, prefix: dict[str, torch.Tensor], choices: list[list[int]]) -> list[list[float]]:
    """Sum of log P(choice token | prefix, earlier choice tokens) for every (example, choice): `prefix` holds the
    LLM's keyword arguments for the left-padded prompts (attention_mask and position_ids included). The prompts
    run once; their key/value cache is repeated for the choices, which run together in one short second pass."""
    if not choices or any(not c for c in choices):
        raise ValueError("every choice needs at least one token")
    mask = prefix["attention_mask"]
    batch, n, width = mask.shape[0], len(choices), max(map(len, choices))
    out = llm(**prefix, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V): the choices' first tokens
    ids = torch.zeros(n, width, dtype=torch.long, device=mask.device)
    choice_mask = torch.zeros(n, width, dtype=mask.dtype, device=mask.device)
    for j, tokens in enumerate(choices):  # right-padded: a choice's own positions never see its padding
        ids[j, : len(tokens)] = torch.tensor(tokens, device=mask.device)
        choice_mask[j, : len(tokens)] = 1
    rest = None
    if width > 1:  # row i * n + j: choice j after prompt i
        cache = out.cache if hasattr(out, "cache") else out.past_key_values  # renamed in transformers 5.x
        cache.batch_repeat_interleave(n)
        start = mask.sum(dim=1).repeat_interleave(n)[:, None]  # the next position after each prompt
        logits = llm(input_ids=ids.repeat(batch, 1), attention_mask=torch.cat(
            [mask.repeat_interleave(n, dim=0), choice_mask.repeat(batch, 1)], dim=1),
            position_ids=start + torch.arange(width, device=mask.device), use_cache=True,
            **{_cache_argument(llm): cache}).logits
        rest = torch.log_softmax(logits.float(), dim=-1)
    scores = []
    for i in range(batch):
        row = []
        for j, tokens in enumerate(choices):
            total = first[i, tokens[0]]
            for k in range(1, len(tokens)):
                total = total + rest[i * n + j, k - 1, tokens[k]]
            row.append(float(total))
        scores.append(row)
    return scores


def _cache_argument(llm) -> str:
    """The forward's name for the key/value cache: `cache` from the transformers release that deprecated
    `past_key_values` (removed in 5.40), `past_key_values` before it."""
    return "cache" if "cache" in inspect.signature(llm.forward).parameters else "past_key_values"


def load_system(model: str, device: str | None = None, dtype: str | None = None):
    """`llm:REF` -> the bare LLM; a LayAlign directory -> the trained model; `ENCODER,LLM` -> an untrained LayAlign
    pair (gates at zero: it answers as the bare LLM would, given the mapped encoder states)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if model.startswith(LLM_ONLY_PREFIX):
        from layalign.backbones.loading import load_llm

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


def answer(system: LayAlignSystem | LLMOnlySystem, question: str, task: str = "math", max_new_tokens: int = 128) -> str:
    """The system's answer to one question. The encoder reads the question; the LLM prompt is the task's template
    around it (task "none": the question alone)."""
    if not question.strip():
        raise ValueError("the question is empty")
    prompt = format_prompt(task, query=question)
    return system.generate([question], [prompt], max_new_tokens=max_new_tokens)[0]


def _system_name(config: LayAlignConfig, directory: str) -> str:
    names = {"layalign": "LayAlign", "mindmerger": "MindMerger", "langbridge": "LangBridge"}
    return config.extra.get("name") or f"{names[config.variant]} ({directory})"


def _pad_token(llm, tokenizer) -> int:
    for value in (tokenizer.pad_token_id, llm.config.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0
