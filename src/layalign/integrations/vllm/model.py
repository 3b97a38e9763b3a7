"""LayAlign as a vLLM model: an encoder-decoder model in vLLM's sense, built like its Whisper support.

One request = one source text (the multimodal item "source", see processing.py) + the LLM prompt. What runs where:

- once per request, in `embed_multimodal` (vLLM's encoder step): the frozen encoder on the source, the input mapping
  of its final states (the soft tokens), and the aligner's keys and values for every fused LLM layer, through each
  layer's own frozen k/v projections and with the gate already multiplied into the values, as
  `layalign.model.fusion.FusionState.build` does. The result is one (T, d + 2 F kv) tensor per request.
- at the request's prefill step (the only step that gets `encoder_outputs`): the soft tokens and the boundary vector
  replace the placeholder tokens that the processor put after bos, and every fused layer's cross-attention writes
  the request's K/V into vLLM's cross-attention KV cache;
- at every decoding step: each fused layer's self-attention queries (rotary applied) also attend to the cached K/V,
  and the result is added to the self-attention output before o_proj (layalign.model.fusion, method notes step 3).

The encoder, the mapping and the aligner are this library's own modules (layalign.backbones / layalign.model.aligner),
so the vLLM path computes the encoder side with the same code as `LayAlignModel`. The decoder is vLLM's Llama
(LlamaAttention / LlamaDecoderLayer), so any checkpoint vLLM loads as LlamaForCausalLM works (Llama, SmolLM2,
Mistral without sliding window, TinyLlama, ...); other decoder families need their own attention subclass.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from vllm.config import VllmConfig
from vllm.model_executor.layers.attention import CrossAttention
from vllm.model_executor.layers.layernorm import RMSNorm
from vllm.model_executor.layers.logits_processor import LogitsProcessor
from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal
from vllm.model_executor.models.llama import LlamaAttention, LlamaDecoderLayer, LlamaModel
from vllm.model_executor.models.utils import AutoWeightsLoader, extract_layer_index, make_layers, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.v1.attention.backend import AttentionType

from layalign.backbones.loading import freeze, load_encoder
from layalign.integrations.vllm.processing import (
    LayAlignDummyInputsBuilder,
    LayAlignMultiModalProcessor,
    LayAlignProcessingInfo,
    layalign_settings,
)
from layalign.model.aligner import InputMapping, LayerwiseAligner
from layalign.model.config import ADAPTER_NAME
from layalign.model.modeling import check_adapter_tensors


class FusedLlamaAttention(LlamaAttention):
    """Llama self-attention plus, in a fused layer, LayAlign's gated branch over the encoder-side K/V (held in a
    cross-attention KV cache); the branch uses the same rotary-embedded queries and the same head layout."""

    def __init__(self, *args, prefix: str = "", cache_config=None, quant_config=None, **kwargs):
        super().__init__(*args, prefix=prefix, cache_config=cache_config, quant_config=quant_config, **kwargs)
        settings = layalign_settings(kwargs["config"])
        self.fused = settings.fusion and extract_layer_index(prefix) in settings.llm_layers
        if self.fused:
            # K/V arrive already projected and gated (the gate sits in the values): g * softmax(QK^T) V
            self.fusion_attn = CrossAttention(self.num_heads, self.head_dim, self.scaling,
                                              num_kv_heads=self.num_kv_heads, cache_config=cache_config,
                                              quant_config=quant_config, prefix=f"{prefix}.fusion_attn",
                                              attn_type=AttentionType.ENCODER_DECODER)

    def forward(self, positions: torch.Tensor, hidden_states: torch.Tensor,
                fusion_kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        qkv, _ = self.qkv_proj(hidden_states)
        q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q, k = self.rotary_emb(positions, q, k)
        out = self.attn(q, k, v)
        if self.fused:
            # fusion_kv: the new requests' K/V at their prefill step (written to the cache), None afterwards
            key, value = fusion_kv if fusion_kv is not None else (None, None)
            out = out + self.fusion_attn(q, key, value)
        output, _ = self.o_proj(out)
        return output


class LayAlignDecoderLayer(LlamaDecoderLayer):
    def __init__(self, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__(vllm_config=vllm_config, prefix=prefix, attn_layer_type=FusedLlamaAttention)

    def forward(self, positions: torch.Tensor, hidden_states: torch.Tensor, residual: torch.Tensor | None,
                fusion_kv: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if residual is None:
            residual = hidden_states
            hidden_states = self.input_layernorm(hidden_states)
        else:
            hidden_states, residual = self.input_layernorm(hidden_states, residual)
        hidden_states = self.self_attn(positions=positions, hidden_states=hidden_states, fusion_kv=fusion_kv)
        hidden_states, residual = self.post_attention_layernorm(hidden_states, residual)
        return self.mlp(hidden_states), residual


class LayAlignDecoder(nn.Module):
    """LlamaModel's structure and parameter names (so its checkpoints load unchanged), taking input embeddings and
    the per-layer fusion K/V. Not torch.compile'd: the prefill splice is data-dependent (eager, as on the CPU)."""

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.embed_tokens = VocabParallelEmbedding(config.vocab_size, config.hidden_size,
                                                   quant_config=vllm_config.quant_config)
        self.start_layer, self.end_layer, self.layers = make_layers(
            config.num_hidden_layers, lambda prefix: LayAlignDecoderLayer(vllm_config=vllm_config, prefix=prefix),
            prefix=f"{prefix}.layers")
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, inputs_embeds: torch.Tensor, positions: torch.Tensor,
                fusion_kv: dict[int, tuple[torch.Tensor, torch.Tensor]] | None) -> torch.Tensor:
        hidden_states, residual = inputs_embeds, None
        for index, layer in enumerate(self.layers):
            layer_kv = None if fusion_kv is None else fusion_kv.get(index)
            hidden_states, residual = layer(positions, hidden_states, residual, fusion_kv=layer_kv)
        hidden_states, _ = self.norm(hidden_states, residual)
        return hidden_states

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights, mapper=LlamaModel.hf_to_vllm_mapper)


class _KVProjections(nn.Module):
    """A fused layer's own k_proj / v_proj as plain linears, the interface `LayerwiseAligner.keys_values` reads.
    Copies of the slices of vLLM's fused qkv weight, taken right after loading: on the CPU, vLLM then repacks the
    qkv weight for its GEMM kernel and leaves the parameter empty."""

    def __init__(self, attention: FusedLlamaAttention):
        super().__init__()
        weight, bias = attention.qkv_proj.weight.detach(), attention.qkv_proj.bias
        q, kv = attention.q_size, attention.kv_size
        self.k_proj = _linear(weight[q:q + kv], None if bias is None else bias.detach()[q:q + kv])
        self.v_proj = _linear(weight[q + kv:q + 2 * kv], None if bias is None else bias.detach()[q + kv:q + 2 * kv])


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    linear.weight = nn.Parameter(weight.clone(), requires_grad=False)
    if bias is not None:
        linear.bias = nn.Parameter(bias.clone(), requires_grad=False)
    return linear


@MULTIMODAL_REGISTRY.register_processor(LayAlignMultiModalProcessor, info=LayAlignProcessingInfo,
                                        dummy_inputs=LayAlignDummyInputsBuilder)
class LayAlignForConditionalGeneration(nn.Module, SupportsMultiModal):
    """LayAlign (and MindMerger / LangBridge: `fusion` off) over a Llama-family decoder, in vLLM."""

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.config = config
        self.settings = settings = layalign_settings(config)
        # the trained adapter travels in the vLLM directory (export.py copies it there)
        self.adapter_path = Path(vllm_config.model_config.model) / ADAPTER_NAME
        self.model = LayAlignDecoder(vllm_config=vllm_config, prefix=maybe_prefix(prefix, "model"))
        self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size, quant_config=vllm_config.quant_config,
                                      prefix=maybe_prefix(prefix, "lm_head"))
        if config.tie_word_embeddings:
            self.lm_head = self.lm_head.tie_weights(self.model.embed_tokens)
        self.logits_processor = LogitsProcessor(config.vocab_size, scale=getattr(config, "logit_scale", 1.0))

        # the trainable parts, with LayAlignModel's names (the adapter file loads by name) and in float32 as there
        la = settings.layalign
        shapes = la.extra["shapes"]
        enc_width, llm_width = shapes["encoder_width"], shapes["llm_width"]
        # (built on vLLM's device; float32 whatever vLLM's default dtype: LayAlignModel keeps them so)
        f32 = torch.float32
        self.mapping = None if la.mapping == "none" else InputMapping(enc_width, llm_width, la.mapping).to(f32)
        self.boundary = None if la.mapping == "none" else nn.Parameter(torch.zeros(1, 1, llm_width, dtype=f32))
        self.aligner = self.gates = None
        if la.fusion:
            self.aligner = LayerwiseAligner(len(la.encoder_layers), len(la.llm_layers), enc_width, llm_width,
                                            la.aligner_structure).to(f32)
            self.gates = nn.Parameter(torch.zeros(len(la.llm_layers), dtype=f32))
        # the frozen encoder: loaded by this library from its own reference (not part of the vLLM checkpoint)
        encoder, _ = load_encoder(la.encoder, la.dtype)
        self.encoder = freeze(encoder)
        self._kv_projections: list[_KVProjections] | None = None

    # ------------------------------------------------------------ vLLM's encoder step: once per request

    @torch.no_grad()
    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        ids = kwargs.get("encoder_input_ids")
        if ids is None:
            return []
        items = list(ids.unbind(0)) if isinstance(ids, torch.Tensor) and ids.dim() == 2 else list(ids)
        # one source at a time: no padding, so no encoder mask, as with LayAlignModel on one example
        return [self.encode_source(item.reshape(-1)) for item in items]

    def encode_source(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(T, d + 2 F kv): the soft tokens, then every fused layer's key and gated value (layer order)."""
        la = self.settings.layalign
        device = self.model.embed_tokens.weight.device
        input_ids = input_ids.to(device=self.encoder.device, dtype=torch.long)[None]
        out = self.encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_hidden_states=True)
        states = [out.hidden_states[i] for i in la.encoder_layers]
        dtype = self.model.embed_tokens.weight.dtype
        parts = []
        if self.mapping is not None:
            parts.append(self.mapping(out.last_hidden_state.to(device=device, dtype=self.boundary.dtype)).to(dtype))
        else:  # mapping "none": no soft tokens, only fusion (the processor puts no placeholders after bos)
            parts.append(torch.zeros(1, input_ids.shape[1], 0, device=device, dtype=dtype))
        if self.aligner is not None:
            keys, values = self.aligner.keys_values([s.to(device) for s in states], self._projections(),
                                                    self.settings.num_kv_heads, dtype)
            for gate, key, value in zip(self.gates.unbind(0), keys, values, strict=True):
                value = (gate * value).to(value.dtype)  # as FusionState.build: the gate scales the values
                # (1, H_kv, T, d_h) -> (1, T, H_kv * d_h), the layout vLLM's attention takes
                parts += [key.transpose(1, 2).flatten(2), value.transpose(1, 2).flatten(2)]
        return torch.cat(parts, dim=-1)[0]

    def _projections(self) -> list[_KVProjections]:
        if self._kv_projections is None:
            raise RuntimeError("the fused layers' k/v projections are taken in load_weights; it has not run")
        return self._kv_projections

    # ------------------------------------------------------------ the decoder

    def embed_input_ids(self, input_ids: torch.Tensor, multimodal_embeddings: MultiModalEmbeddings | None = None,
                        *, is_multimodal: torch.Tensor | None = None) -> torch.Tensor:
        # encoder-decoder models get their encoder outputs in forward, not spliced by the runner
        return self.model.embed_tokens(input_ids)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor,
                encoder_outputs: list[torch.Tensor] | None = None, **kwargs: object) -> torch.Tensor:
        embeds = self.model.embed_tokens(input_ids)
        fusion_kv = None
        if encoder_outputs:
            embeds, fusion_kv = self._splice(input_ids, embeds, positions, encoder_outputs)
        return self.model(embeds, positions, fusion_kv)

    def _splice(self, input_ids: torch.Tensor, embeds: torch.Tensor, positions: torch.Tensor,
                encoder_outputs: list[torch.Tensor]
                ) -> tuple[torch.Tensor, dict[int, tuple[torch.Tensor, torch.Tensor]] | None]:
        """At the prefill step of new requests: their soft tokens and the boundary after bos, and their fusion K/V.

        vLLM runs encoder-decoder models without chunked prefill and without prefix caching, so a new request's whole
        prompt is in this step, starting at position 0; `encoder_outputs` are in the batch order of those requests
        (the order vLLM's cross-attention slot mapping assumes as well). Decoding rows never have position 0. A new
        request is recognised by position 0 followed by the processor's placeholders: one that came without a source
        (possible offline without the "layalign" renderer) has none and no encoder output, and must not take the
        next request's soft tokens (checked: its neighbour's output stays equal to LayAlignModel.generate's)."""
        starts = torch.nonzero(positions == 0).flatten()
        placeholder = self.settings.placeholder_token_id
        if self.mapping is not None:
            after = (starts + 1).clamp(max=input_ids.shape[0] - 1)
            starts = starts[input_ids[after] == placeholder]
        starts = starts.tolist()
        if len(starts) != len(encoder_outputs):
            raise RuntimeError(f"{len(encoder_outputs)} encoder outputs for {len(starts)} new requests in the batch: "
                               "every LayAlign request needs a source (multi_modal_data={'source': text})")
        width = embeds.shape[-1] if self.mapping is not None else 0
        embeds = embeds.clone()
        for start, output in zip(starts, encoder_outputs):
            if self.mapping is not None:
                length = output.shape[0]
                slots = input_ids[start + 1:start + 2 + length]
                if slots.shape[0] != length + 1 or not bool((slots == placeholder).all()):
                    raise RuntimeError("a new request's placeholders do not match its source's encoder tokens")
                embeds[start + 1:start + 1 + length] = output[:, :width].to(embeds.dtype)
                embeds[start + 1 + length] = self.boundary.reshape(-1).to(embeds.dtype)
        if self.aligner is None:
            return embeds, None
        kv = torch.cat(encoder_outputs)[:, width:]
        size = kv.shape[1] // (2 * len(self.settings.layalign.llm_layers))
        fusion_kv = {layer: (kv[:, 2 * f * size:(2 * f + 1) * size], kv[:, (2 * f + 1) * size:(2 * f + 2) * size])
                     for f, layer in enumerate(self.settings.layalign.llm_layers)}
        return embeds, fusion_kv

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.logits_processor(self.lm_head, hidden_states)

    def get_language_model(self) -> nn.Module:
        return self.model

    # ------------------------------------------------------------ weights

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """The LLM's checkpoint through vLLM's loader (fused qkv / gate_up), the adapter file by LayAlignModel's
        names; the encoder was loaded in __init__ (reported as loaded so that vLLM's completeness check passes)."""
        # as LlamaForCausalLM: the decoder maps q/k/v and gate/up onto vLLM's fused layers; tied heads are handled
        loaded = AutoWeightsLoader(self).load_weights(_llm_only(weights))
        if self.aligner is not None:
            layers = self.model.layers
            self._kv_projections = [_KVProjections(layers[i].self_attn) for i in self.settings.layalign.llm_layers]
        loaded |= self._load_adapter()
        self.encoder.to(self.model.embed_tokens.weight.device)  # from_pretrained put it on the CPU
        loaded |= {f"encoder.{name}" for name, _ in self.encoder.named_parameters()}
        return loaded

    def _load_adapter(self) -> set[str]:
        tensors = load_file(self.adapter_path)
        own = {name: p for name, p in self.named_parameters() if name.split(".")[0] in _ADAPTER_ROOTS}
        check_adapter_tensors(tensors, own, str(self.adapter_path), "the vLLM LayAlign model",
                              "different encoder or LLM?")
        with torch.no_grad():
            for name, tensor in tensors.items():
                own[name].copy_(tensor)
        return set(own)


_ADAPTER_ROOTS = ("mapping", "aligner", "boundary", "gates")


def _llm_only(weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[tuple[str, torch.Tensor]]:
    # the vLLM directory links the LLM's checkpoint only; the adapter is read from its own file (settings)
    for name, tensor in weights:
        if name.split(".")[0] not in _ADAPTER_ROOTS:
            yield name, tensor
