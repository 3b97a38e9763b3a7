"""Adaptive fusion-enhanced attention (method notes, step 3): the attention-time branch, and nothing else.

Each fused LLM layer i attends, with its own queries (norm and rotary already applied, exactly as in its
self-attention), to the keys K_i and values V_i that the aligner built from the encoder (aligner.py); the result,
scaled by a zero-initialised gate g_i, is added to the self-attention output before o_proj:

    o_proj_i(self_attn + g_i * softmax(Q K_i^T * scaling) V_i)

so with g_i = 0 the layer computes exactly what the bare LLM computes.

How it plugs in: we register an attention implementation "layalign_<base>" that calls the model's own one
(<base> = sdpa, eager, flash_attention_2, ...) and then adds the branch. The frozen LLM's modules are not modified
and the queries are not recomputed.

Where the state lands: one path. Every LLM call of LayAlignModel (forward, generate, choice scoring) runs inside
`with fusion.active(state):`, and each fused attention call reads the state from that context variable. A keyword
argument cannot be the path: transformers' generate refuses keyword arguments the LLM's forward does not declare.
Gradient checkpointing recomputes a layer in the backward pass, after the block has exited; `recompute_context`
(given to torch's checkpoint as its context_fn) captures the state at the forward and restores it for the
recomputation, so the recomputed layer sees the same branch.
"""

from __future__ import annotations

import contextlib
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
_ACTIVE: ContextVar[FusionState | None] = ContextVar("layalign_active_state", default=None)


@dataclass
class FusionState:
    """The encoder side of the fusion branch for one batch: per fused layer, keys and gated values g_i * V_i with
    the LLM's key/value heads, (B, H_kv, T, d_h), in the fusion dtype (LayAlignConfig.fusion_dtype: the LLM's dtype
    by default); the encoder padding mask, additive (B, 1, 1, T) in the same dtype with 0 = attend and -inf =
    padding, or None. Build it with `FusionState.build`."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]  # already multiplied by the gates: see `build`
    mask: torch.Tensor | None
    slots: dict[int, int]  # LLM layer index -> position in keys/values
    _expanded: dict[int, FusionState] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, keys: list[torch.Tensor], values: list[torch.Tensor], gates: torch.Tensor,
              encoder_mask: torch.Tensor | None, slots: dict[int, int]) -> FusionState:
        """The state of one call from each fused layer's K_i, V_i (aligner.keys_values), the gates and the encoder
        attention mask (1 = token, 0 = padding; None or all ones: nothing to mask).

        The gate multiplies the values, not the branch's output: g * softmax(QK^T) V = softmax(QK^T) (g V), and V
        has T encoder positions where the output has every LLM position (3x fewer elements to scale in a training
        step here, and none per decoding step); a zero gate still gives an exactly zero branch. The gated values and
        the mask take the keys' dtype, the fusion dtype."""
        values = [(gate * v).to(v.dtype) for gate, v in zip(gates.unbind(0), values, strict=True)]
        mask = None  # no mask where nothing is padded: the attention kernels are faster without one
        if encoder_mask is not None and not bool(encoder_mask.all()):
            # additive (0 / -inf) rather than boolean: torch's CPU attention kernel runs 1.1-1.3x faster with it
            # (benchmarks/attention_mask.py); every row keeps at least one encoder token, so no row is all -inf
            padded = encoder_mask.to(gates.device)[:, None, None, :] == 0
            # (SDPA wants a float mask in the query's dtype, the fusion dtype)
            mask = torch.zeros(padded.shape, device=padded.device, dtype=keys[0].dtype).masked_fill(
                padded, float("-inf"))
        return cls(keys, values, mask, slots)

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
    """Make `state` the fusion state of every fused attention call inside the block (None: the bare LLM)."""
    token = _ACTIVE.set(state)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def recompute_context() -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
    """torch.utils.checkpoint's `context_fn`: nothing around the forward; around the backward's recomputation, the
    fusion state that was active at the forward."""
    return contextlib.nullcontext(), active(_ACTIVE.get())


def fusion_branch(module: nn.Module, query: torch.Tensor, state: FusionState, slot: int) -> torch.Tensor:
    """g_i * softmax(Q K_i^T * scaling) V_i over the encoder tokens; returns (B, q_len, H, d_h) in the state's dtype.
    The gate is already in the state's values (FusionState.build).

    Precision: the queries are cast to the state's dtype (the fusion dtype) and SDPA runs in it. With a float32
    state that is float32 throughout. With a bf16 / fp16 state the softmax still accumulates in float32, as the
    authors' release computes it (fp32 softmax, probabilities cast back, P V in bf16): the flash and
    memory-efficient CUDA kernels and torch's CPU flash kernel keep the scores, the running max/sum and the P V
    accumulator in float32, and the math fallback upcasts reduced-precision inputs to float32 unless
    torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(True) is set (off by default). We rely on that rather
    than upcasting here: an upcast would copy every layer's keys and values to float32 at every decoding step,
    which is the memory traffic a low-precision state exists to save.

    Grouped-query attention without repeating keys and values (`enable_gqa`): query head h reads key/value head
    h // G, the order of transformers' repeat_kv, and each key/value head is read once, not G times."""
    keys = state.keys[slot]
    attended = F.scaled_dot_product_attention(query.to(keys.dtype), keys, state.values[slot],
                                              attn_mask=state.mask, scale=module.scaling, enable_gqa=True)
    return attended.transpose(1, 2)


def _base_attention(name: str, module: nn.Module):
    if name == "eager":  # eager lives in each family's modeling file (Gemma adds soft-capping, for example)
        return sys.modules[type(module).__module__].eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS[name]


def _make_attention(base: str):
    def layalign_attention(module, query, key, value, attention_mask, **kwargs):
        output, weights = _base_attention(base, module)(module, query, key, value, attention_mask, **kwargs)
        state = _ACTIVE.get()
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
