"""How a request reaches the LayAlign model in vLLM: the source text is a multimodal item of modality "source".

Why a multimodal item and not an extra request field: vLLM runs an encoder, caches its output for the request and
sizes the cross-attention KV cache only for multimodal items (that is how its Whisper support gets audio to the
encoder); a field outside `multi_modal_data` never reaches the model runner. So a request is

    {"prompt": <the LLM prompt>, "multi_modal_data": {"source": <the text the encoder reads>}}

and the processor below turns it into

    encoder prompt: T placeholders, T = the source's encoder tokens (this sizes the cross-attention cache)
    decoder prompt: [bos] [source key: T ids] [placeholder: boundary] [the LLM prompt's tokens]

exactly the sequence LayAlignModel.build_inputs assembles; the model replaces the key's and the placeholder's embeddings
by the soft tokens and the boundary vector at the prefill step (model.py). The key (`source_key`) is what pairs a
request with its own encoder output. Tokenisation and truncation are
LayAlignProcessor's (the model's recorded lengths): the source keeps its start and its closing special token, the
prompt its end. LangBridge's encoder reads the templated instruction: pass that as the source; its LLM gets no
prompt (`use_prompt` false), so the prompt is dropped here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from transformers import BatchFeature
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems, MultiModalDataParser, ProcessorBatchItems
from vllm.multimodal.processing import BaseDummyInputsBuilder, BaseProcessingInfo, EncDecMultiModalProcessor
from vllm.multimodal.processing.processor import PromptReplacement

from layalign.model.config import LayAlignConfig
from layalign.model.processing import InputLengths, LayAlignProcessor

MODALITY = "source"


@dataclass(frozen=True)
class LayAlignSettings:
    """What the vLLM side needs from the `layalign` block of a vLLM directory's config.json (export.py writes it)."""

    layalign: LayAlignConfig
    lengths: InputLengths
    placeholder_token_id: int
    bos_token_id: int
    num_kv_heads: int

    @property
    def fusion(self) -> bool:
        return bool(self.layalign.fusion)

    @property
    def llm_layers(self) -> list[int]:
        return list(self.layalign.llm_layers or [])

    @property
    def soft_tokens(self) -> bool:
        return self.layalign.mapping != "none"


def layalign_settings(hf_config: Any) -> LayAlignSettings:
    block = getattr(hf_config, "layalign", None)
    if not isinstance(block, dict):
        raise ValueError("this config.json has no 'layalign' block: write the vLLM directory with "
                         "`python -m layalign.integrations.vllm export DIR` (or serve with `layalign serve DIR`)")
    la = LayAlignConfig.from_dict(dict(block["config"]))
    return LayAlignSettings(
        layalign=la,
        lengths=InputLengths.from_dict(la.extra.get("lengths")),
        placeholder_token_id=int(block.get("placeholder_token_id", 0)),
        bos_token_id=int(block["bos_token_id"]),
        num_kv_heads=int(getattr(hf_config, "num_key_value_heads", None) or hf_config.num_attention_heads),
    )


def source_key(source_ids: Sequence[int], vocab_size: int) -> list[int]:
    """The ids a request's decoder prompt carries where its soft tokens go: its encoder ids modulo the LLM's
    vocabulary. The model computes the same key from the encoder input it is handed, so that it can tell which
    encoder output belongs to which new request (model.py, `_pair`) without relying on vLLM's batch order."""
    return [int(i) % vocab_size for i in source_ids]


class SourceItems(ProcessorBatchItems[str]):
    """Source texts, one per request (passed to the processor as `sources`)."""


def check_source(source: object) -> str:
    """`source` if it is a text the encoder can read; otherwise a ValueError that says what was sent (vLLM answers a
    ValueError raised while it processes a request with HTTP 400 and the message, and the engine carries on)."""
    if not isinstance(source, str):
        raise ValueError(f"the source must be a string (the text the encoder reads), not {type(source).__name__}")
    if not source.strip():
        raise ValueError("the source is empty: a LayAlign request needs the text the encoder reads")
    return source


class LayAlignDataParser(MultiModalDataParser):
    def _parse_source(self, data: str | Sequence[str]) -> SourceItems:
        # a string, or a list of them; a dict or any other iterable would otherwise be read as its items (its keys)
        texts = list(data) if isinstance(data, (list, tuple)) else [data]
        return SourceItems([check_source(text) for text in texts], MODALITY)

    def _get_subparsers(self):
        return {**super()._get_subparsers(), MODALITY: self._parse_source}


class LayAlignProcessingInfo(BaseProcessingInfo):
    @cached_property
    def settings(self) -> LayAlignSettings:
        return layalign_settings(self.get_hf_config())

    @cached_property
    def layalign_processor(self) -> LayAlignProcessor:
        """The library's own processor (encoder tokenizer, truncation rules), for the source side."""
        from transformers import AutoTokenizer

        from layalign.backbones.loading import resolve

        settings = self.settings
        encoder_tokenizer = AutoTokenizer.from_pretrained(resolve(settings.layalign.encoder))
        processor = LayAlignProcessor(encoder_tokenizer, self.get_tokenizer(), **settings.lengths.as_dict(),
                                      use_prompt=bool(settings.layalign.use_prompt))
        return processor

    def get_data_parser(self) -> MultiModalDataParser:
        return LayAlignDataParser()

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {MODALITY: 1}

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        return {MODALITY: self.settings.lengths.max_source_length}

    def get_default_tok_params(self):
        # the LLM prompt is tokenised without special tokens, as LayAlignProcessor does; bos comes from the processor
        return super().get_default_tok_params().with_kwargs(add_special_tokens=False)

    @property
    def skip_prompt_length_check(self) -> bool:
        return True

    @cached_property
    def encoder_positions(self) -> int:
        """How many tokens the encoder can read at all: its tokenizer's limit or its position table, the smaller."""
        from transformers import AutoConfig

        from layalign.backbones.loading import resolve

        config = AutoConfig.from_pretrained(resolve(self.settings.layalign.encoder))
        limits = (self.layalign_processor.encoder_tokenizer.model_max_length,
                  getattr(config, "max_position_embeddings", None))
        return min(n for n in limits if isinstance(n, int) and 0 < n < 10**7)

    def source_ids(self, text: str) -> list[int]:
        """The source's encoder tokens, cut to the model's max_source_length as LayAlignModel.generate cuts them; a
        source longer than the encoder's positions is refused rather than cut (no model could read it whole)."""
        processor = self.layalign_processor
        whole = len(processor.encoder_tokenizer(check_source(text)).input_ids)
        if whole > self.encoder_positions:
            raise ValueError(f"the source has {whole} encoder tokens, more than the encoder's {self.encoder_positions} "
                             f"positions; this model reads the first {self.settings.lengths.max_source_length}: "
                             "shorten the source")
        ids = processor([text])["encoder_input_ids"][0]
        return ids.tolist()


class LayAlignDummyInputsBuilder(BaseDummyInputsBuilder[LayAlignProcessingInfo]):
    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return ""

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int], mm_options=None):
        # long enough to be cut to max_source_length: the largest encoder input, for vLLM's memory profiling
        text = " ".join(["word"] * self.info.settings.lengths.max_source_length)
        return {MODALITY: [text] * mm_counts.get(MODALITY, 0)}


class LayAlignMultiModalProcessor(EncDecMultiModalProcessor[LayAlignProcessingInfo]):
    # the decoder prompt below starts with bos itself (vLLM would otherwise prepend decoder_start_token_id)
    skip_decoder_start_token = True

    def create_encoder_prompt(self, prompt: str | list[int], mm_items: MultiModalDataItems) -> list[int]:
        # one placeholder per source; expanded to one per encoder token by the prompt update
        return [self.info.settings.placeholder_token_id] * mm_items.get_count(MODALITY, strict=False)

    def create_decoder_prompt(self, prompt: str | list[int], mm_items: MultiModalDataItems) -> list[int]:
        settings = self.info.settings
        if isinstance(prompt, str):
            prompt = self.info.get_tokenizer().encode(prompt, add_special_tokens=False)
        prompt = list(prompt)[-settings.lengths.max_prompt_length:] if settings.layalign.use_prompt else []
        placeholders: list[int] = []
        if settings.soft_tokens and mm_items.get_count(MODALITY, strict=False):
            source = mm_items.get_items(MODALITY, SourceItems).get(0)
            # the source's own key in place of its soft tokens (replaced before the LLM sees them): model.py pairs
            # each new request with its encoder output by it; the boundary slot keeps the placeholder id
            vocab_size = self.info.get_hf_config().vocab_size
            placeholders = [*source_key(self.info.source_ids(source), vocab_size), settings.placeholder_token_id]
        return [settings.bos_token_id, *placeholders, *prompt]

    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        sources = hf_data.get(f"{MODALITY}s") or []
        ids = [torch.tensor(self.info.source_ids(text), dtype=torch.long) for text in sources]
        return BatchFeature({"encoder_input_ids": ids})

    def _get_mm_fields_config(self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
                              ) -> Mapping[str, MultiModalFieldConfig]:
        return {"encoder_input_ids": MultiModalFieldConfig.batched(MODALITY)}

    def _get_prompt_updates(self, mm_items: MultiModalDataItems, hf_processor_mm_kwargs: Mapping[str, object],
                            out_mm_kwargs: MultiModalKwargsItems) -> Sequence[PromptReplacement]:
        placeholder = self.info.settings.placeholder_token_id

        def one_per_token(item_idx: int) -> list[int]:
            ids = out_mm_kwargs[MODALITY][item_idx]["encoder_input_ids"].data
            return [placeholder] * int(ids.shape[-1])

        return [PromptReplacement(modality=MODALITY, target=[placeholder], replacement=one_per_token)]
