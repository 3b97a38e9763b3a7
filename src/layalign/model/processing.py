"""LayAlignProcessor: texts -> the tensors LayAlignModel.forward / generate take.

The encoder tokenizer reads the source; the LLM tokenizer reads the prompt and the target (no special tokens: the
model adds bos, and the processor appends eos to every target). Over-long texts are truncated with one warning per
call: sources and targets keep their beginning, prompts keep their end (where the template's answer cue is).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

import torch


class LayAlignProcessor:
    def __init__(self, encoder_tokenizer, llm_tokenizer, max_source_length: int = 200,
                 max_prompt_length: int = 512, max_target_length: int = 512):
        if encoder_tokenizer is None or llm_tokenizer is None:
            raise ValueError("LayAlignProcessor needs both the encoder's and the LLM's tokenizer")
        self.encoder_tokenizer = encoder_tokenizer
        self.llm_tokenizer = llm_tokenizer
        self.max_source_length = max_source_length
        self.max_prompt_length = max_prompt_length
        self.max_target_length = max_target_length
        self.eos_token_id = llm_tokenizer.eos_token_id
        # texts cut so far, per kind; a trainer turns the per-call warnings off and reports these totals instead
        self.truncated: Counter[str] = Counter()
        self.warn_truncation = True
        if self.eos_token_id is None:
            raise ValueError("the LLM tokenizer has no eos token; targets could never end")

    @classmethod
    def from_model(cls, model, **lengths) -> LayAlignProcessor:
        return cls(model.encoder_tokenizer, model.llm_tokenizer, **lengths)

    def __call__(self, sources: Sequence[str], prompts: Sequence[str | None] | None = None,
                 targets: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        _check_texts("source", sources)
        # the encoder's own special tokens (<s> ... </s>, or T5's </s>) are part of how it was trained
        source_ids = [self.encoder_tokenizer(text)["input_ids"] for text in sources]
        source_ids = self._truncate(source_ids, self.max_source_length, "source", keep="start",
                                    tail=self._encoder_tail())
        batch = _pad(source_ids, "encoder_input_ids", "encoder_attention_mask", self._encoder_pad())
        if prompts is not None and any(p is not None for p in prompts):
            if len(prompts) != len(sources):
                raise ValueError(f"{len(prompts)} prompts for {len(sources)} sources")
            prompt_ids = [self._llm_ids(p) if p else [] for p in prompts]
            prompt_ids = self._truncate(prompt_ids, self.max_prompt_length, "prompt", keep="end")
            batch |= _pad(prompt_ids, "prompt_input_ids", "prompt_attention_mask", 0)
        if targets is not None:
            _check_texts("target", targets)
            if len(targets) != len(sources):
                raise ValueError(f"{len(targets)} targets for {len(sources)} sources")
            target_ids = [self._llm_ids(t) + [self.eos_token_id] for t in targets]
            target_ids = self._truncate(target_ids, self.max_target_length, "target", keep="start")
            batch |= _pad(target_ids, "labels", "labels_attention_mask", 0)
        return batch

    def decode(self, token_ids: torch.Tensor) -> list[str]:
        return [text.strip() for text in self.llm_tokenizer.batch_decode(token_ids, skip_special_tokens=True)]

    def _llm_ids(self, text: str) -> list[int]:
        return self.llm_tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encoder_pad(self) -> int:
        return self.encoder_tokenizer.pad_token_id or 0

    def _encoder_tail(self) -> list[int]:
        """The encoder's closing special token(s), kept when a source is cut."""
        eos = self.encoder_tokenizer.sep_token_id or self.encoder_tokenizer.eos_token_id
        return [] if eos is None else [eos]

    def _truncate(self, ids: list[list[int]], limit: int, what: str, keep: str,
                  tail: list[int] | None = None) -> list[list[int]]:
        cut = sum(len(x) > limit for x in ids)
        if not cut:
            return ids
        self.truncated[what] += cut
        if self.warn_truncation:
            warnings.warn(f"{cut} of {len(ids)} {what} texts are longer than {limit} tokens and were truncated",
                          stacklevel=3)
        if keep == "end":
            return [x[-limit:] for x in ids]
        tail = tail or []
        return [x if len(x) <= limit else x[: limit - len(tail)] + tail for x in ids]


def _check_texts(what: str, texts: Sequence[str]) -> None:
    if not len(texts):
        raise ValueError(f"no {what} texts given")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what} text {i} is empty")


def _pad(ids: list[list[int]], ids_key: str, mask_key: str, pad_id: int) -> dict[str, torch.Tensor]:
    """Right padding; the model moves all padding of the assembled LLM input to the left itself."""
    width = max(1, max(len(x) for x in ids))
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[row, : len(x)] = 1
    return {ids_key: input_ids, mask_key: mask}
