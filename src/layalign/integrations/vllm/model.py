"""LayAlign as a vLLM model: an encoder-decoder model in vLLM's sense, built like its Whisper support.

One request = one source text (the multimodal item "source", see processing.py) + the LLM prompt. What runs where:

- once per request, in `embed_multimodal` (vLLM's encoder step): the frozen encoder on the source, the input mapping
  of its final states (the soft tokens), and the aligner's keys and values for every fused LLM layer, through each
  layer's own frozen k/v projections and with the gate already multiplied into the values, as
  `layalign.model.fusion.FusionState.build` does. The result is one (T, d + 2 F kv + 3) tensor per request (the last
  3 columns: the source's key, see `_pair`).
- at the request's prefill step (the only step that gets `encoder_outputs`): the soft tokens and the boundary vector
  replace the key tokens that the processor put after bos, and every fused layer's cross-attention writes the
  request's K/V into vLLM's cross-attention KV cache;
- at every decoding step: each fused layer's self-attention queries (rotary applied) also attend to the cached K/V,
  and the result is added to the self-attention output before o_proj (layalign.model.fusion, method notes step 3).

The encoder side and the trainable parts are this library's own code: the adapters are built and loaded by
`layalign.model.modeling.build_adapters` / `load_adapters`, the K/V by `LayerwiseAligner.keys_values`, so the vLLM
path computes them as `LayAlignModel` does. The decoder is vLLM's own decoder layer of the LLM's family (`FAMILIES`:
Llama, Mistral, Qwen2), with the fusion branch added to the fused layers' attention; other families are refused
by the export (export.py says why for each).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from vllm.config import VllmConfig
from vllm.forward_context import get_forward_context
from vllm.model_executor.layers.attention import CrossAttention
from vllm.model_executor.layers.layernorm import RMSNorm
from vllm.model_executor.layers.logits_processor import LogitsProcessor
from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal
from vllm.model_executor.models.llama import LlamaDecoderLayer, LlamaModel
from vllm.model_executor.models.mistral import MistralDecoderLayer
from vllm.model_executor.models.qwen2 import Qwen2DecoderLayer, Qwen2Model
from vllm.model_executor.models.utils import AutoWeightsLoader, WeightsMapper, make_layers, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.v1.attention.backend import AttentionType

from layalign.backbones.loading import freeze, load_encoder
from layalign.integrations.vllm.export import refuse_unserved
from layalign.integrations.vllm.processing import (
    LayAlignDummyInputsBuilder,
    LayAlignMultiModalProcessor,
    LayAlignProcessingInfo,
    layalign_settings,
    source_key,
)
from layalign.model.config import ADAPTER_NAME
from layalign.model.modeling import ADAPTER_NAMES, build_adapters, load_adapters


def _llama_layer(vllm_config: VllmConfig, prefix: str) -> nn.Module:
    return LlamaDecoderLayer(vllm_config=vllm_config, prefix=prefix)


def _mistral_layer(vllm_config: VllmConfig, prefix: str) -> nn.Module:
    return MistralDecoderLayer(vllm_config=vllm_config, prefix=prefix)


def _qwen2_layer(vllm_config: VllmConfig, prefix: str) -> nn.Module:
    return Qwen2DecoderLayer(vllm_config.model_config.hf_config, cache_config=vllm_config.cache_config,
                             quant_config=vllm_config.quant_config, prefix=prefix)


# model_type -> (vLLM's decoder layer, the checkpoint names' mapping onto it). All three layers call
# `self_attn.attn(q, k, v)` with rotary-embedded q, and take (positions, hidden_states, residual).
FAMILIES: dict[str, tuple[Callable[[VllmConfig, str], nn.Module], WeightsMapper]] = {
    "llama": (_llama_layer, LlamaModel.hf_to_vllm_mapper),
    "mistral": (_mistral_layer, LlamaModel.hf_to_vllm_mapper),
    "qwen2": (_qwen2_layer, Qwen2Model.hf_to_vllm_mapper),
}


class _StepFusion:
    """The fusion K/V of the current forward pass, by LLM layer: the new requests' K/V at their prefill step (the
    cross-attention writes them into its cache), empty otherwise (it reads the cache). Shared by the fused layers."""

    def __init__(self) -> None:
        self.kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}


def _add_fusion_branch(attention: nn.Module, layer: int, step: _StepFusion, prefix: str, vllm_config: VllmConfig
                       ) -> None:
    """Give a fused layer's self-attention LayAlign's gated branch over the encoder-side K/V, held in a
    cross-attention KV cache: its output is added to the self-attention's (before o_proj), with the same
    rotary-embedded queries and head layout. K/V arrive already projected and gated (g * softmax(QK^T) V)."""
    attention.fusion_attn = CrossAttention(attention.num_heads, attention.head_dim, attention.scaling,
                                           num_kv_heads=attention.num_kv_heads, cache_config=vllm_config.cache_config,
                                           quant_config=vllm_config.quant_config, prefix=f"{prefix}.fusion_attn",
                                           attn_type=AttentionType.ENCODER_DECODER)

    def add_branch(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        key, value = step.kv.get(layer, (None, None))
        return output + attention.fusion_attn(args[0], key, value)

    attention.attn.register_forward_hook(add_branch)


class LayAlignDecoder(nn.Module):
    """The LLM's model structure and parameter names (so its checkpoints load unchanged) over vLLM's decoder layers
    of its family, taking input embeddings. Not torch.compile'd: the prefill splice is data-dependent (eager)."""

    def __init__(self, *, vllm_config: VllmConfig, step: _StepFusion, prefix: str = ""):
        super().__init__()
        config = vllm_config.model_config.hf_config
        settings = layalign_settings(config)
        make_layer, self.mapper = FAMILIES[config.model_type]
        self.embed_tokens = VocabParallelEmbedding(config.vocab_size, config.hidden_size,
                                                   quant_config=vllm_config.quant_config)
        self.start_layer, self.end_layer, self.layers = make_layers(
            config.num_hidden_layers, lambda prefix: make_layer(vllm_config, prefix), prefix=f"{prefix}.layers")
        if settings.fusion:
            for index in settings.llm_layers:
                _add_fusion_branch(self.layers[index].self_attn, index, step, f"{prefix}.layers.{index}.self_attn",
                                   vllm_config)
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, inputs_embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        hidden_states, residual = inputs_embeds, None
        for layer in self.layers:
            hidden_states, residual = layer(positions, hidden_states, residual)
        hidden_states, _ = self.norm(hidden_states, residual)
        return hidden_states

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights, mapper=self.mapper)


class _KVProjections(nn.Module):
    """A fused layer's own k_proj / v_proj as plain linears, the interface `LayerwiseAligner.keys_values` reads.
    Copies of the slices of vLLM's fused qkv weight, taken right after loading: on the CPU, vLLM then repacks the
    qkv weight for its GEMM kernel and leaves the parameter empty."""

    def __init__(self, attention: nn.Module):
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


# the last columns of every encoder output: the source's key (processing.source_key), one id per encoder token,
# as base-256 digits (exact in float16 / bfloat16 as well as float32; ids below 2 ** 24)
KEY_DIGITS = 3


def _key_columns(key: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    digits = [(key >> (8 * d)) & 255 for d in reversed(range(KEY_DIGITS))]
    return torch.stack(digits, dim=-1).to(dtype)


def _key_of(output: torch.Tensor) -> torch.Tensor:
    digits = output[:, -KEY_DIGITS:].to(torch.long)
    return sum(digits[:, d] << (8 * (KEY_DIGITS - 1 - d)) for d in range(KEY_DIGITS))


def _carries(prompt: torch.Tensor, key: torch.Tensor, placeholder: int) -> bool:
    """Whether a new row's prompt after bos starts with this source key and the boundary's placeholder."""
    length = key.numel()
    return prompt.numel() > length and int(prompt[length]) == placeholder and torch.equal(prompt[:length], key)


@MULTIMODAL_REGISTRY.register_processor(LayAlignMultiModalProcessor, info=LayAlignProcessingInfo,
                                        dummy_inputs=LayAlignDummyInputsBuilder)
class LayAlignForConditionalGeneration(nn.Module, SupportsMultiModal):
    """LayAlign (and MindMerger / LangBridge: `fusion` off) over a Llama, Mistral or Qwen2 decoder, in vLLM."""

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        config = vllm_config.model_config.hf_config
        self.config = config
        self.settings = settings = layalign_settings(config)
        la = settings.layalign
        refuse_unserved(config.to_dict(), la)
        window = getattr(config, "sliding_window", None) if config.model_type == "mistral" else None
        if window is not None and vllm_config.model_config.max_model_len > window:
            # transformers' Mistral applies its window in every layer; vLLM's (a Llama layer) only with layer_types
            raise NotImplementedError(f"this Mistral attends within a sliding window of {window} tokens, which the "
                                      f"served decoder does not apply: serve with --max-model-len {window} or less")
        # the trained adapter travels in the vLLM directory (export.py copies it there)
        self.adapter_path = Path(vllm_config.model_config.model) / ADAPTER_NAME
        self._step = _StepFusion()
        self.model = LayAlignDecoder(vllm_config=vllm_config, step=self._step, prefix=maybe_prefix(prefix, "model"))
        self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size, quant_config=vllm_config.quant_config,
                                      prefix=maybe_prefix(prefix, "lm_head"))
        if config.tie_word_embeddings:
            self.lm_head = self.lm_head.tie_weights(self.model.embed_tokens)
        self.logits_processor = LogitsProcessor(config.vocab_size, scale=getattr(config, "logit_scale", 1.0))

        # the trainable parts: LayAlignModel's own construction (names: the adapter file loads by name), in
        # float32 whatever vLLM's default dtype, as LayAlignModel keeps them
        shapes = la.extra["shapes"]
        build_adapters(self, la, shapes["encoder_width"], shapes["llm_width"])
        for name in ADAPTER_NAMES:
            part = getattr(self, name)
            if isinstance(part, nn.Parameter):
                part.data = part.data.float()
            elif part is not None:
                part.float()
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
        """(T, d + 2 F kv + 3): the soft tokens, every fused layer's key and gated value (layer order), then the
        source's key (processing.source_key) as KEY_DIGITS columns."""
        la = self.settings.layalign
        device = self.model.embed_tokens.weight.device
        dtype = self.model.embed_tokens.weight.dtype
        input_ids = input_ids.to(dtype=torch.long)
        key = torch.tensor(source_key(input_ids.tolist(), self.config.vocab_size), device=device)
        input_ids = input_ids.to(device=self.encoder.device)[None]
        out = self.encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_hidden_states=True)
        parts = [self.mapping(out.last_hidden_state.to(device=device, dtype=self.boundary.dtype)).to(dtype)]
        if self.aligner is not None:
            states = [out.hidden_states[i].to(device) for i in la.encoder_layers]
            keys, values = self.aligner.keys_values(states, self._projections(), self.settings.num_kv_heads, dtype)
            for gate, k, v in zip(self.gates.unbind(0), keys, values, strict=True):
                v = (gate * v).to(v.dtype)  # as FusionState.build: the gate scales the values
                # (1, H_kv, T, d_h) -> (1, T, H_kv * d_h), the layout vLLM's attention takes
                parts += [k.transpose(1, 2).flatten(2), v.transpose(1, 2).flatten(2)]
        return torch.cat([torch.cat(parts, dim=-1)[0], _key_columns(key, dtype)], dim=-1)

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
        if encoder_outputs:
            embeds = self._splice(input_ids, embeds, positions, encoder_outputs)
        try:
            return self.model(embeds, positions)
        finally:
            self._step.kv = {}

    def _new_rows(self, positions: torch.Tensor) -> list[tuple[int, int, int]]:
        """(batch row, first token, end) of the requests that start from position 0 in this step, read from the
        attention metadata of this step (vllm/forward_context.py: ForwardContext.attn_metadata, by layer name):
        `query_start_loc` delimits the rows, `num_actual_tokens` ends the real tokens, so a padded tail (CUDA graphs,
        data or sequence parallel: position 0, placeholder id) and padded empty rows are never taken for requests.
        vLLM runs encoder-decoder models without chunked prefill and prefix caching, so a new request's whole
        prompt is in its row (and a preempted request, recomputed, starts again from position 0)."""
        metadata = get_forward_context().attn_metadata
        name = self.model.layers[0].self_attn.attn.layer_name
        if not isinstance(metadata, dict) or name not in metadata:
            raise RuntimeError("LayAlign's vLLM model needs the step's attention metadata by layer name (vLLM's V1 "
                               f"model runner); got {type(metadata).__name__}")
        meta = metadata[name]
        starts = meta.query_start_loc.tolist()
        real = int(meta.num_actual_tokens)
        first = positions[[min(start, real - 1) for start in starts[:-1]]].tolist() if real else []
        return [(row, start, min(end, real)) for row, (start, end, pos) in enumerate(zip(starts, starts[1:], first))
                if start < min(end, real) and pos == 0]

    def _pair(self, input_ids: torch.Tensor, rows: list[tuple[int, int, int]], encoder_outputs: list[torch.Tensor]
              ) -> list[tuple[int, int, torch.Tensor | None]]:
        """Each new row with its own encoder output, by identity of content: the row's decoder prompt carries its
        source's key after bos (processing.source_key), the output carries the key of the encoder input it was
        computed from. vLLM hands `encoder_outputs` in the scheduler's order of encoder inputs, which is not the
        batch order (vllm/v1/worker/gpu_model_runner.py: `_batch_mm_inputs_from_scheduler` iterates
        `scheduled_encoder_inputs`; the batch follows `input_batch`, which preemption and removals reorder).
        Outputs with equal keys come from equal encoder inputs (one source at a time, deterministic), so they are
        interchangeable; where they differ, or an output is left over, the step is refused rather than swapped.
        A row that matches no output is a request without a source (vLLM's default renderer lets one through)."""
        placeholder = self.settings.placeholder_token_id
        keys = [_key_of(output).to(input_ids.device) for output in encoder_outputs]
        unused = list(range(len(encoder_outputs)))
        paired = []
        for row, start, end in rows:
            matches = [i for i in unused if _carries(input_ids[start + 1:end], keys[i], placeholder)]
            if any(not torch.equal(encoder_outputs[i], encoder_outputs[matches[0]]) for i in matches[1:]):
                raise RuntimeError("two encoder outputs with one source key differ: cannot tell which request each "
                                   "belongs to (refused rather than risk giving one user another's answer)")
            if matches:
                unused.remove(matches[0])
            paired.append((row, start, encoder_outputs[matches[0]] if matches else None))
        if unused:
            raise RuntimeError(f"{len(unused)} of {len(encoder_outputs)} encoder outputs match no new request in "
                               "the batch: every LayAlign request needs a source (multi_modal_data={'source': text})")
        return paired

    def _splice(self, input_ids: torch.Tensor, embeds: torch.Tensor, positions: torch.Tensor,
                encoder_outputs: list[torch.Tensor]) -> torch.Tensor:
        """At the prefill step of new requests: each one's soft tokens and the boundary after bos, and its fusion
        K/V, in batch-row order (the order the cross-attention cache writes them, see `_check_cross_rows`)."""
        paired = self._pair(input_ids, self._new_rows(positions), encoder_outputs)
        width = embeds.shape[-1]
        embeds = embeds.clone()
        boundary = self.boundary.reshape(-1).to(embeds.dtype)
        for _, start, output in paired:
            if output is not None:
                length = output.shape[0]
                embeds[start + 1:start + 1 + length] = output[:, :width].to(embeds.dtype)
                embeds[start + 1 + length] = boundary
        if self.aligner is not None:
            self._check_cross_rows(paired)
            kv = torch.cat([output[:, width:-KEY_DIGITS] for _, _, output in paired if output is not None])
            layers = self.settings.llm_layers
            parts = kv.chunk(2 * len(layers), dim=-1)  # key, value of each fused layer in turn
            self._step.kv = {layer: (parts[2 * f], parts[2 * f + 1]) for f, layer in enumerate(layers)}
        return embeds

    def _check_cross_rows(self, paired: list[tuple[int, int, torch.Tensor | None]]) -> None:
        """The contract the fusion K/V rely on, asserted: the cross-attention writes the K/V it is given, in one
        concatenation, to the rows that start this step and have encoder tokens, in increasing row order, each
        row's `seq_lens` (its encoder length) long (vllm/model_executor/layers/attention/cross_attention.py:
        CrossAttentionBuilder.build and _get_cross_slot_mapping)."""
        metadata = get_forward_context().attn_metadata
        meta = metadata[self.model.layers[self.settings.llm_layers[0]].self_attn.fusion_attn.layer_name]
        expected = meta.seq_lens.tolist()
        for row, _, output in paired:
            length = 0 if output is None else output.shape[0]
            if expected[row] != length:
                raise RuntimeError(f"batch row {row}: the cross-attention cache expects {expected[row]} encoder "
                                   f"tokens, its paired encoder output has {length}")
        slots = getattr(meta, "slot_mapping", None)
        total = sum(output.shape[0] for _, _, output in paired if output is not None)
        if slots is not None and slots.numel() != total:
            raise RuntimeError(f"the cross-attention cache writes {slots.numel()} encoder tokens this step, the new "
                               f"requests' encoder outputs have {total}")

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.logits_processor(self.lm_head, hidden_states)

    def get_language_model(self) -> nn.Module:
        return self.model

    # ------------------------------------------------------------ weights

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """The LLM's checkpoint through vLLM's loader (fused qkv / gate_up), the adapter file by LayAlignModel's
        names; the encoder was loaded in __init__ (reported as loaded so that vLLM's completeness check passes)."""
        # as the family's ForCausalLM: the decoder maps q/k/v and gate/up onto vLLM's fused layers; tied heads too
        loaded = AutoWeightsLoader(self).load_weights(_llm_only(weights))
        if self.aligner is not None:
            layers = self.model.layers
            self._kv_projections = [_KVProjections(layers[i].self_attn) for i in self.settings.llm_layers]
        own = {name: p for name, p in self.named_parameters() if name.split(".")[0] in ADAPTER_NAMES}
        load_adapters(own, load_file(self.adapter_path), str(self.adapter_path), "the vLLM LayAlign model")
        loaded |= set(own)
        self.encoder.to(self.model.embed_tokens.weight.device)  # from_pretrained put it on the CPU
        loaded |= {f"encoder.{name}" for name, _ in self.encoder.named_parameters()}
        return loaded


def _llm_only(weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[tuple[str, torch.Tensor]]:
    # the vLLM directory links the LLM's checkpoint only; the adapter is read from its own file (settings)
    for name, tensor in weights:
        if name.split(".")[0] not in ADAPTER_NAMES:
            yield name, tensor
