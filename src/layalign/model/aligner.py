"""The trainable adapters: the input mapping in front of the prompt and the layer-wise aligner.

Layer-wise aligner (method notes, step 2): stack the selected encoder states to (B, L_sel, T, d_e), mix them over
the layer axis with one linear map L_sel -> 2F (F fused LLM layers; rows ordered layer0-key, layer0-value,
layer1-key, ...), apply ReLU, then project each mixed state d_e -> d with one shared linear ("linear" structure;
"mlp" adds ReLU and a second d -> d linear).
"""

from __future__ import annotations

import torch
from torch import nn


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
