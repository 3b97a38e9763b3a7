"""Adaptive fusion-enhanced attention (method notes, step 3), attached through transformers' attention registry.

Each fused LLM layer i attends, with its own queries (norm and rotary already applied, exactly as in its
self-attention), to keys K_i = k_proj_i(K_in_i) and values V_i = v_proj_i(V_in_i) built from the aligner's output;
the result, scaled by a zero-initialised gate g_i, is added to the self-attention output before o_proj:

    o_proj_i(self_attn + g_i * softmax(Q K_i^T * scaling) V_i)

so with g_i = 0 the layer computes exactly what the bare LLM computes.

How it plugs in: we register an attention implementation "layalign_<base>" that calls the model's own one
(<base> = sdpa, eager, flash_attention_2, ...) and then adds the branch. The encoder keys and values travel to every
layer as the keyword argument `layalign_state`, which transformers passes from the model's forward down to the
attention function (so gradient checkpointing recomputes with them); `generate` refuses unknown keyword
arguments, so during generation they are set in a context variable instead (`active`). The frozen LLM's
modules are not modified, the queries are not recomputed, and the encoder's keys and values are projected once
per forward or generate call, not once per decoding step.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

PREFIX = "layalign_"
STATE_KWARG = "layalign_state"
_ACTIVE: ContextVar[FusionState | None] = ContextVar("layalign_active_state", default=None)


@dataclass
class FusionState:
    """The encoder side of the fusion branch for one batch: per fused layer, float32 keys and gated values
    g_i * V_i with the LLM's key/value heads, (B, H_kv, T, d_h); the encoder padding mask, additive float32
    (B, 1, 1, T) with 0 = attend and -inf = padding, or None.

    The gate multiplies the values, not the branch's output: g * softmax(QK^T) V = softmax(QK^T) (g V), and V has
    T encoder positions where the output has every LLM position (3x fewer elements to scale in a training step
    here, and none per decoding step); a zero gate still gives an exactly zero branch."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor | None
    slots: dict[int, int]  # LLM layer index -> position in keys/values
    _expanded: dict[int, FusionState] = field(default_factory=dict, repr=False)

    def for_batch(self, batch_size: int) -> FusionState:
        """Beam search and num_return_sequences repeat every example; repeat its encoder side to match, once."""
        own = self.keys[0].shape[0]
        if batch_size == own:
            return self
        if batch_size % own:
            raise ValueError(f"fusion state built for batch {own} cannot serve a batch of {batch_size}")
        if batch_size not in self._expanded:
            n = batch_size // own
            self._expanded[batch_size] = FusionState(
                keys=[k.repeat_interleave(n, dim=0) for k in self.keys],
                values=[v.repeat_interleave(n, dim=0) for v in self.values],
                mask=None if self.mask is None else self.mask.repeat_interleave(n, dim=0),
                slots=self.slots,
            )
        return self._expanded[batch_size]


@contextmanager
def active(state: FusionState | None) -> Iterator[None]:
    """Make `state` the fusion state of every fused attention call inside the block (used around generate)."""
    token = _ACTIVE.set(state)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


CHUNK_BYTES = 16 * 2**20


def layers_per_chunk(state: torch.Tensor) -> int:
    """How many fused layers to mix and project at a time, given one encoder state (B, T, d_e): as many as keep a
    chunk's (2g, B, T, d_e) mix within CHUNK_BYTES. On the CPU, glibc serves allocations above 32 MB by a fresh
    mmap every time, whose pages fault in on first touch; the whole mix of a training batch (93 MB for the default
    pair at batch 8, with its ReLU gradient and its stacked gradient as large) paid that at every step, and the
    page faults slowed the LLM's own element-wise work besides. Chunks stay in the reused heap."""
    return max(1, CHUNK_BYTES // (2 * state.numel() * state.element_size()))


def project_encoder_side(attentions: list[nn.Module], aligner: nn.Module, mixed: torch.Tensor,
                         num_kv_heads: int, fold: bool | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """K_f = k_proj_f(project(m_2f)), V_f = v_proj_f(project(m_2f+1)) for every fused layer f, with the layer's own
    frozen projections and, where the family has them, its key/value norms (Qwen3, Gemma 3). No rotary embedding:
    encoder tokens have no position in the prompt. `mixed` is the aligner's (2F, B, T, d_e) mix. Returned in
    float32, (B, H_kv, T, d_h) per layer: grouped-query heads are not repeated (see fusion_branch).

    With the "linear" aligner both maps are linear, so they fold into one, (W_k W_p) m + (W_k b_p + b_k), whenever
    that is fewer FLOPs: for training batches (many encoder tokens, small models) it skips the (2F, B, T, d)
    intermediate; for one question in front of a wide LLM, the weight product would cost more than it saves.
    `fold`: None chooses by that FLOP count; True / False force it (tests compare the two)."""
    batch, length, enc_dim = mixed.shape[1:]
    llm_dim = attentions[0].k_proj.in_features
    kv_dim = attentions[0].k_proj.out_features
    tokens = batch * length
    if getattr(aligner, "proj2", None) is not None:
        fold = False
    elif fold is None:
        fold = tokens * (enc_dim * llm_dim + llm_dim * kv_dim) > kv_dim * llm_dim * enc_dim + tokens * enc_dim * kv_dim
    if not fold:  # the shared projection once for all 2F states: one large matmul, not 2F small ones
        mixed = aligner.project(mixed).to(attentions[0].k_proj.weight.dtype)
    inputs = mixed.unbind(0)  # unbind, not indexing: 2F indexings would build 2F full-size zero gradients

    def through(linear: nn.Linear, state: torch.Tensor) -> torch.Tensor:
        if fold:  # in the aligner's dtype (float32): the folded weight is trained through
            frozen = linear.weight.to(aligner.proj.weight.dtype)
            weight, bias = frozen @ aligner.proj.weight, frozen @ aligner.proj.bias
            bias = bias if linear.bias is None else bias + linear.bias.to(bias.dtype)
            out = F.linear(state, weight, bias)
        else:
            out = linear(state)
        return out.view(batch, length, num_kv_heads, -1).transpose(1, 2)

    keys, values = [], []
    for f, attention in enumerate(attentions):
        k, v = through(attention.k_proj, inputs[2 * f]), through(attention.v_proj, inputs[2 * f + 1])
        if getattr(attention, "k_norm", None) is not None:
            k = attention.k_norm(k)
        if getattr(attention, "v_norm", None) is not None:
            v = attention.v_norm(v)
        keys.append(k.float())
        values.append(v.float())
    return keys, values


def fusion_branch(module: nn.Module, query: torch.Tensor, state: FusionState, slot: int) -> torch.Tensor:
    """softmax(Q K^T * scaling) (g V) over the encoder tokens, in float32; returns (B, q_len, H, d_h).

    Grouped-query attention without repeating keys and values (`enable_gqa`): query head h reads key/value head
    h // G, the order of transformers' repeat_kv, and each key/value head is read once, not G times."""
    attended = F.scaled_dot_product_attention(query.float(), state.keys[slot], state.values[slot],
                                              attn_mask=state.mask, scale=module.scaling, enable_gqa=True)
    return attended.transpose(1, 2)


def _base_attention(name: str, module: nn.Module):
    if name == "eager":  # eager lives in each family's modeling file (Gemma adds soft-capping, for example)
        return sys.modules[type(module).__module__].eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS[name]


def _make_attention(base: str):
    def layalign_attention(module, query, key, value, attention_mask, **kwargs):
        state: FusionState | None = kwargs.pop(STATE_KWARG, None) or _ACTIVE.get()
        output, weights = _base_attention(base, module)(module, query, key, value, attention_mask, **kwargs)
        slot = None if state is None else state.slots.get(module.layer_idx)
        if slot is not None:
            state = state.for_batch(query.shape[0])
            output = output + fusion_branch(module, query, state, slot).to(output.dtype)
        return output, weights

    return layalign_attention


def register_fused_attention(base: str) -> str:
    """Register "layalign_<base>" for attention and for mask creation; returns the name."""
    if base.startswith(PREFIX):
        return base
    if base != "eager" and base not in ALL_ATTENTION_FUNCTIONS:
        raise ValueError(f"attention implementation {base!r} is not registered in transformers")
    name = PREFIX + base
    if name not in ALL_ATTENTION_FUNCTIONS:
        ALL_ATTENTION_FUNCTIONS.register(name, _make_attention(base))
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    return name


def attach(llm: nn.Module) -> None:
    """Switch the LLM to the fused attention implementation (idempotent; the weights are untouched)."""
    base = llm.config._attn_implementation or "eager"
    llm.config._attn_implementation = register_fused_attention(base)


def detach(llm: nn.Module) -> None:
    """Give the LLM back its own attention implementation."""
    name = llm.config._attn_implementation or ""
    if name.startswith(PREFIX):
        llm.config._attn_implementation = name[len(PREFIX):]
