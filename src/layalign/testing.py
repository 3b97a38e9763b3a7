"""Tiny random-weight encoders, LLMs and a byte-level tokenizer, built from configs without any download.

For tests and for benchmarks of realistic shapes (pass bigger sizes); not for anything that should learn.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0..3: pad, bos, eos, unk
VOCAB_SIZE = 300


def byte_tokenizer(padding_side: str = "right") -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (every UTF-8 byte is one token, no merges): any text, 260 ids, no files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate(SPECIALS + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", padding_side=padding_side)


def tiny_llm(family: str = "llama", hidden: int = 64, layers: int = 3, heads: int = 4, kv_heads: int = 2,
             intermediate: int | None = None, vocab: int = VOCAB_SIZE, seed: int = 0, **overrides):
    """A random causal LM of the given family (llama, mistral, qwen2, qwen3, gemma3_text)."""
    import transformers

    common = dict(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  num_key_value_heads=kv_heads, intermediate_size=intermediate or 2 * hidden,
                  max_position_embeddings=2048, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                  tie_word_embeddings=False)
    if family in ("qwen3", "gemma3_text"):
        common["head_dim"] = hidden // heads
    if family == "gemma3_text":
        common.update(query_pre_attn_scalar=hidden // heads, sliding_window=8,
                      layer_types=["sliding_attention" if (i + 1) % 3 else "full_attention" for i in range(layers)])
    classes = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "mistral": ("MistralConfig", "MistralForCausalLM"),
               "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"), "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
               "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM")}
    if family not in classes:
        raise ValueError(f"unknown family {family!r}; choose from {sorted(classes)}")
    config_cls, model_cls = (getattr(transformers, name) for name in classes[family])
    config = config_cls(**{**common, **overrides})
    torch.manual_seed(seed)
    return model_cls(config).eval()


def tiny_encoder(family: str = "bert", hidden: int = 48, layers: int = 2, heads: int = 4,
                 vocab: int = VOCAB_SIZE, seed: int = 0, **overrides):
    """A random encoder of the given family (bert, xlm-roberta, t5, mt5, gemma3_text bidirectional, m2m_100)."""
    import transformers

    torch.manual_seed(seed)
    if family in ("bert", "xlm-roberta"):
        cls = transformers.BertConfig if family == "bert" else transformers.XLMRobertaConfig
        config = cls(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=2 * hidden, max_position_embeddings=520, pad_token_id=0,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides)
        model_cls = transformers.BertModel if family == "bert" else transformers.XLMRobertaModel
        return model_cls(config, add_pooling_layer=False).eval()
    if family in ("t5", "mt5"):
        cls = transformers.T5Config if family == "t5" else transformers.MT5Config
        config = cls(vocab_size=vocab, d_model=hidden, num_layers=layers, num_heads=heads, d_kv=hidden // heads,
                     d_ff=2 * hidden, pad_token_id=0, eos_token_id=2, dropout_rate=0.0, **overrides)
        model_cls = transformers.T5EncoderModel if family == "t5" else transformers.MT5EncoderModel
        return model_cls(config).eval()
    if family == "gemma3_text":
        config = transformers.Gemma3TextConfig(
            vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=heads, head_dim=hidden // heads, intermediate_size=2 * hidden,
            query_pre_attn_scalar=hidden // heads, use_bidirectional_attention=True, pad_token_id=0,
            bos_token_id=1, eos_token_id=2, **overrides)
        return transformers.Gemma3TextModel(config).eval()
    if family == "m2m_100":
        config = transformers.M2M100Config(
            vocab_size=vocab, d_model=hidden, encoder_layers=layers, decoder_layers=1, encoder_attention_heads=heads,
            decoder_attention_heads=heads, encoder_ffn_dim=2 * hidden, decoder_ffn_dim=2 * hidden, dropout=0.0,
            attention_dropout=0.0, activation_dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2,
            decoder_start_token_id=2, max_position_embeddings=520, **overrides)
        return transformers.M2M100Model(config).eval()
    raise ValueError(f"unknown encoder family {family!r}")


def tiny_model(variant: str = "layalign", encoder_family: str = "bert", llm_family: str = "llama", seed: int = 0,
               **config_fields):
    """A LayAlignModel on tiny random models, with byte tokenizers attached."""
    from layalign.model.config import LayAlignConfig
    from layalign.model.modeling import LayAlignModel

    config = LayAlignConfig(encoder=f"tiny-{encoder_family}", llm=f"tiny-{llm_family}", variant=variant,
                            **config_fields)
    model = LayAlignModel(config, encoder=tiny_encoder(encoder_family, seed=seed),
                          llm=tiny_llm(llm_family, seed=seed + 1))
    model.encoder_tokenizer = byte_tokenizer()
    model.llm_tokenizer = byte_tokenizer()
    return model


def randomize_adapters(model, scale: float = 0.5, seed: int = 0) -> None:
    """Give the adapters (gates included) non-zero random values, so that fusion really changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                noise = torch.randn(parameter.shape, generator=generator) * scale
                parameter.copy_(noise.to(parameter.dtype))


def reset_adapters(model, seed: int = 0) -> None:
    """Initialise the adapters again exactly as `LayAlignModel.__init__` does, from `torch.manual_seed(seed)`, in
    its order: nn.Linear's own initialisation of the mapping's layers, the boundary (zeros, or N(0, 1) for
    LangBridge's end vector), the aligner's layers, the gates at zero. A test then starts from the same point
    however much random state earlier code consumed (a first `layalign models pull` initialises a whole BertModel
    before loading its weights). On the CPU this reproduces construction bit for bit; on a GPU the draws come from
    the GPU's generator."""
    from torch import nn

    def reset(part) -> None:
        for module in part.modules() if part is not None else ():
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    torch.manual_seed(seed)
    with torch.no_grad():
        reset(model.mapping)
        if model.boundary is not None:
            if model.config.boundary_init == "normal":
                model.boundary.copy_(torch.randn(model.boundary.shape))
            else:
                model.boundary.zero_()
        reset(model.aligner)
        if model.gates is not None:
            model.gates.zero_()
