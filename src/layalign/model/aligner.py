"""The trainable adapters: the input mapping in front of the prompt and the layer-wise aligner.

Layer-wise aligner (method notes, step 2): stack the selected encoder states to (B, L_sel, T, d_e), mix them over
the layer axis with one linear map L_sel -> 2F (F fused LLM layers; rows ordered layer0-key, layer0-value,
layer1-key, ...), apply ReLU, then project each mixed state d_e -> d with one shared linear ("linear" structure;
"mlp" adds ReLU and a second d -> d linear).

The aligner owns everything from the encoder states to each fused layer's keys and values: it also runs the
layer's own frozen k_proj / v_proj on its output (`keys_values`), once per call. What happens at attention time,
the gated branch itself, is fusion.py's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHUNK_BYTES = 16 * 2**20


class InputMapping(nn.Module):
    """Maps the encoder's final states into the LLM's embedding space.

    "mlp" (MindMerger / LayAlign): Linear(d_e -> 2 d_e), ReLU, Linear(2 d_e -> d).
    "linear" (LangBridge): Linear(d_e -> d).
    """

    def __init__(self, encoder_dim: int, llm_dim: int, kind: str = "mlp"):
        super().__init__()
        self.kind = kind
        if kind == "mlp":
            self.linear1 = nn.Linear(encoder_dim, 2 * encoder_dim)
            self.linear2 = nn.Linear(2 * encoder_dim, llm_dim)
        elif kind == "linear":
            self.linear = nn.Linear(encoder_dim, llm_dim)
        else:
            raise ValueError(f"unknown input mapping {kind!r}")

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if self.kind == "mlp":
            return self.linear2(torch.relu(self.linear1(states)))
        return self.linear(states)


class LayerwiseAligner(nn.Module):
    """Turns every selected encoder layer into one key input and one value input per fused LLM layer."""

    def __init__(self, num_encoder_states: int, num_fused_layers: int, encoder_dim: int, llm_dim: int,
                 structure: str = "linear"):
        super().__init__()
        self.num_fused_layers = num_fused_layers
        self.layer_mix = nn.Linear(num_encoder_states, 2 * num_fused_layers)
        self.proj = nn.Linear(encoder_dim, llm_dim)
        self.proj2 = nn.Linear(llm_dim, llm_dim) if structure == "mlp" else None

    def stack(self, encoder_states: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
        """L_sel tensors of shape (B, T, d_e) -> one (L_sel, B, T, d_e) tensor in the aligner's dtype."""
        return torch.stack([s.to(self.layer_mix.weight.dtype) for s in encoder_states])

    def mix(self, stacked: torch.Tensor, layers: slice = slice(None)) -> torch.Tensor:
        """ReLU(layer_mix) of the stacked states for the fused layers `layers` (all by default), as (2g, B, T, d_e):
        for the j-th of them, index 2j is (before `project`) its key input and 2j + 1 its value input."""
        rows = slice(None if layers.start is None else 2 * layers.start,
                     None if layers.stop is None else 2 * layers.stop)
        weight, bias = self.layer_mix.weight[rows], self.layer_mix.bias[rows]
        # one matmul over the layer axis that writes (2g, B, T, d_e) directly: no permuted copy before `project`;
        # the ReLU in place, since addmm keeps no reference to its output for the backward
        mixed = torch.addmm(bias[:, None], weight, stacked.flatten(1))
        return torch.relu_(mixed).view(-1, *stacked.shape[1:])

    def project(self, mixed: torch.Tensor) -> torch.Tensor:
        """The shared projection d_e -> d of mixed states (any leading shape)."""
        out = self.proj(mixed)
        if self.proj2 is not None:
            out = self.proj2(torch.relu(out))
        return out

    def forward(self, encoder_states: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
        """Returns (2F, B, T, d): for fused layer f, index 2f is its key input and 2f + 1 its value input."""
        return self.project(self.mix(self.stack(encoder_states)))

    def keys_values(self, encoder_states: list[torch.Tensor], attentions: list[nn.Module], num_kv_heads: int,
                    dtype: torch.dtype = torch.float32) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """K_f, V_f of every fused layer f (the attention modules `attentions`, in fused-layer order), in `dtype`
        (the fusion dtype, LayAlignConfig.fusion_dtype), (B, H_kv, T, d_h) each: mixed, projected and passed through
        the layer's own frozen k_proj / v_proj a few fused layers at a time, so that every (2g, B, T, d_e) mix stays
        small (see layers_per_chunk)."""
        stacked = self.stack(encoder_states)
        keys, values = [], []
        group = layers_per_chunk(stacked[0])
        for start in range(0, len(attentions), group):
            part = slice(start, start + group)
            k, v = project_encoder_side(attentions[part], self, self.mix(stacked, part), num_kv_heads, dtype=dtype)
            keys += k
            values += v
        return keys, values


def layers_per_chunk(state: torch.Tensor) -> int:
    """How many fused layers to mix and project at a time, given one encoder state (B, T, d_e): as many as keep a
    chunk's (2g, B, T, d_e) mix within CHUNK_BYTES. On the CPU, glibc serves allocations above 32 MB by a fresh
    mmap every time, whose pages fault in on first touch; the whole mix of a training batch (93 MB for the default
    pair at batch 8, with its ReLU gradient and its stacked gradient as large) paid that at every step, and the
    page faults slowed the LLM's own element-wise work besides. Chunks stay in the reused heap."""
    return max(1, CHUNK_BYTES // (2 * state.numel() * state.element_size()))


def project_encoder_side(attentions: list[nn.Module], aligner: LayerwiseAligner, mixed: torch.Tensor,
                         num_kv_heads: int, fold: bool | None = None, dtype: torch.dtype = torch.float32
                         ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """K_f = k_proj_f(project(m_2f)), V_f = v_proj_f(project(m_2f+1)) for every fused layer f, with the layer's own
    frozen projections and, where the family has them, its key/value norms (Qwen3, Gemma 3). No rotary embedding:
    encoder tokens have no position in the prompt. `mixed` is the aligner's (2F, B, T, d_e) mix. Returned in
    `dtype` (the fusion dtype), (B, H_kv, T, d_h) per layer: grouped-query heads are not repeated (see
    fusion.fusion_branch). The projections themselves run in the frozen layer's dtype (or, folded, the aligner's);
    only their results are cast.

    With the "linear" aligner both maps are linear, so they fold into one, (W_k W_p) m + (W_k b_p + b_k), whenever
    that is fewer FLOPs: for training batches (many encoder tokens, small models) it skips the (2F, B, T, d)
    intermediate; for one question in front of a wide LLM, the weight product would cost more than it saves.
    `fold`: None chooses by that FLOP count; True / False force it (tests compare the two)."""
    batch, length, enc_dim = mixed.shape[1:]
    llm_dim = attentions[0].k_proj.in_features
    kv_dim = attentions[0].k_proj.out_features
    tokens = batch * length
    if aligner.proj2 is not None:
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
        keys.append(k.to(dtype))
        values.append(v.to(dtype))
    return keys, values
