"""Loading the frozen encoder and LLM from a reference, and the shape facts the adapters need from them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from layalign.model.config import DTYPES as DTYPE_NAMES

# transformers model_type values we know how to read hidden states from / fuse into
ENCODER_FAMILIES = ("t5", "mt5", "umt5", "bert", "roberta", "xlm-roberta", "gemma3_text", "m2m_100")
LLM_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text")

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


@dataclass(frozen=True)
class EncoderShape:
    num_layers: int  # blocks; the encoder returns num_layers + 1 hidden states
    width: int


@dataclass(frozen=True)
class LLMShape:
    num_layers: int
    width: int
    num_kv_heads: int


def encoder_shape(config) -> EncoderShape:
    kind = config.model_type
    if kind not in ENCODER_FAMILIES:
        raise ValueError(f"unsupported encoder family {kind!r}; supported: {', '.join(ENCODER_FAMILIES)}")
    if kind in ("t5", "mt5", "umt5"):
        return EncoderShape(config.num_layers, config.d_model)
    if kind == "m2m_100":
        return EncoderShape(config.encoder_layers, config.d_model)
    return EncoderShape(config.num_hidden_layers, config.hidden_size)


def llm_shape(config) -> LLMShape:
    kind = config.model_type
    if kind not in LLM_FAMILIES:
        raise ValueError(f"unsupported LLM family {kind!r}; supported: {', '.join(LLM_FAMILIES)}")
    return LLMShape(config.num_hidden_layers, config.hidden_size,
                    getattr(config, "num_key_value_heads", None) or config.num_attention_heads)


def as_encoder(model: nn.Module) -> nn.Module:
    """The module that maps token ids to hidden states: the encoder half of an encoder-decoder model."""
    if getattr(model.config, "is_encoder_decoder", False):
        return model.get_encoder()
    return model


def resolve(ref: str) -> str:
    """A hub id or local directory, pulling a catalogue entry or converting a GGUF file first if needed."""
    from layalign.backbones.catalogue import resolve_reference

    return resolve_reference(ref)


def load_encoder(ref: str, dtype: str = "float32"):
    """Load a frozen multilingual encoder and its tokenizer from a reference."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = resolve(ref)
    config = AutoConfig.from_pretrained(path)
    encoder_shape(config)  # refuse unsupported families before loading weights
    kwargs = {"dtype": DTYPES[dtype]}
    kind = config.model_type
    if kind in ("t5", "mt5", "umt5"):
        import transformers

        cls = {"t5": transformers.T5EncoderModel, "mt5": transformers.MT5EncoderModel,
               "umt5": transformers.UMT5EncoderModel}[kind]
        model = cls.from_pretrained(path, **kwargs)
    elif kind in ("bert", "roberta", "xlm-roberta"):
        model = AutoModel.from_pretrained(path, add_pooling_layer=False, **kwargs)
    else:
        model = AutoModel.from_pretrained(path, **kwargs)
    return as_encoder(model), AutoTokenizer.from_pretrained(path)


def load_llm(ref: str, dtype: str = "float32"):
    """Load a frozen causal LM and its tokenizer from a reference."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = resolve(ref)
    llm_shape(AutoConfig.from_pretrained(path))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    return model, AutoTokenizer.from_pretrained(path)


def freeze(module: nn.Module) -> nn.Module:
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module.eval()


def pad_token_id(llm: nn.Module, tokenizer=None) -> int:
    """The id to pad LLM inputs and finished generations with: the tokenizer's pad token, else the model's, else
    an end-of-sequence token (padding is always masked, so any real token id works), else 0."""
    sources = [tokenizer, llm.generation_config, llm.config]
    for name in ("pad_token_id", "eos_token_id"):
        for source in sources:
            value = getattr(source, name, None)
            if isinstance(value, list):
                value = value[0] if value else None
            if value is not None:
                return int(value)
    return 0
