"""LayAlignModel: frozen encoder -> layer-wise aligner + input mapping -> frozen LLM with gated fusion attention.

Data flow of one call (method notes, steps 1-4):

    encoder(source)            -> hidden states h_0 ... h_L
    aligner(h_sel)             -> key/value inputs for every fused LLM layer -> K_i, V_i (projected once)
    mapping(h_L)               -> soft tokens in the LLM's embedding space
    LLM([bos][soft tokens][boundary][prompt][target])   with every fused layer also attending to K_i, V_i

MindMerger and LangBridge are the same model with fusion off (and, for LangBridge, a linear mapping and no
prompt); see LayAlignConfig.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from layalign.backbones.loading import (
    DTYPES,
    as_encoder,
    encoder_shape,
    freeze,
    llm_shape,
    load_encoder,
    load_llm,
    pad_token_id,
)
from layalign.model import fusion
from layalign.model.aligner import InputMapping, LayerwiseAligner
from layalign.model.config import ADAPTER_NAME, LayAlignConfig

IGNORE_INDEX = -100


@dataclass
class LayAlignOutput:
    """loss: mean cross-entropy over the target tokens (None without labels).
    logits: with labels, only the positions that predict the targets, (B, Y + 1, V), the last one predicting past
    the target; without labels, every position of the LLM input, (B, L, V)."""

    loss: torch.Tensor | None
    logits: torch.Tensor
    num_target_tokens: int = 0


@dataclass
class LLMInputs:
    """The assembled LLM input with padding moved to the left."""

    embeds: torch.Tensor  # (B, L, d)
    attention_mask: torch.Tensor  # (B, L) long
    position_ids: torch.Tensor  # (B, L)
    labels: torch.Tensor | None  # (B, L), IGNORE_INDEX outside the targets


def check_adapter_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str,
                          model: str, shape_hint: str) -> None:
    """Refuse adapter tensors that do not fit, before anything is copied: a name missing or unexpected, or a shape
    that differs. `model` says which model it is (in the message), `shape_hint` what a wrong shape suggests."""
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{source} does not fit this model ({model}): missing {missing}, unexpected {unexpected}")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ValueError(f"{source}: {name} has shape {tuple(tensor.shape)}, the model expects "
                             f"{tuple(expected[name].shape)} ({shape_hint})")


ADAPTER_NAMES = ("mapping", "boundary", "aligner", "gates")


def build_adapters(owner: nn.Module, config: LayAlignConfig, encoder_width: int, llm_width: int) -> None:
    """Give `owner` the trainable parts as LayAlignModel has them: `mapping`, `boundary`, `aligner` and `gates`
    (None where the variant has none), freshly initialised, in float32. The vLLM model builds them here too, so
    that the served model cannot fall behind this one."""
    owner.mapping = None if config.mapping == "none" else InputMapping(encoder_width, llm_width, config.mapping)
    owner.boundary = None if config.mapping == "none" else nn.Parameter(_boundary(config.boundary_init, llm_width))
    owner.aligner = owner.gates = None
    if config.fusion:
        owner.aligner = LayerwiseAligner(len(config.encoder_layers), len(config.llm_layers), encoder_width,
                                         llm_width, config.aligner_structure)
        owner.gates = nn.Parameter(torch.zeros(len(config.llm_layers)))


def load_adapters(own: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], source: str, model: str) -> None:
    """Copy an adapter file's tensors into the parameters `own` (by name), after check_adapter_tensors."""
    check_adapter_tensors(tensors, own, source, model, "different encoder or LLM?")
    with torch.no_grad():
        for name, tensor in tensors.items():
            own[name].copy_(tensor)


class LayAlignModel(nn.Module):
    def __init__(self, config: LayAlignConfig, encoder: nn.Module | None = None, llm: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.encoder_tokenizer = self.llm_tokenizer = None
        if encoder is None:
            encoder, self.encoder_tokenizer = load_encoder(config.encoder, config.dtype)
        if llm is None:
            llm, self.llm_tokenizer = load_llm(config.llm, config.dtype)
        self.encoder = freeze(as_encoder(encoder))
        self.llm = freeze(llm)
        enc, dec = encoder_shape(self.encoder.config), llm_shape(self.llm.config)
        self._check_saved_shapes(enc, dec)
        config.encoder_layers = _resolve_layers(config.encoder_layers, range(enc.num_layers), enc.num_layers + 1,
                                                "encoder_layers", "encoder hidden states")
        config.llm_layers = _resolve_layers(config.llm_layers, range(dec.num_layers), dec.num_layers,
                                            "llm_layers", "LLM layers")
        config.extra["shapes"] = {"encoder_layers": enc.num_layers, "encoder_width": enc.width,
                                  "llm_layers": dec.num_layers, "llm_width": dec.width}
        self.num_kv_heads = dec.num_kv_heads

        build_adapters(self, config, enc.width, dec.width)
        if config.fusion:
            fusion.attach(self.llm)
        self.slots = {layer: slot for slot, layer in enumerate(config.llm_layers)}

        bos = config.bos_token_id if config.bos_token_id is not None else self.llm.config.bos_token_id
        if bos is None:
            raise ValueError("the LLM's config has no bos_token_id; set LayAlignConfig.bos_token_id")
        self.bos_token_id = int(bos)
        # the adapters live on the LLM's device, in float32 for stable optimisation
        self.adapters().to(self.llm.device)

    # ---------------------------------------------------------------- parameters

    def adapters(self) -> nn.ModuleDict:
        """A view of the trainable modules (for .to() and optimisers)."""
        view = nn.ModuleDict({name: getattr(self, name) for name in ("mapping", "aligner") if getattr(self, name)})
        for name in ("boundary", "gates"):
            if getattr(self, name) is not None:
                view.register_parameter(name, getattr(self, name))
        return view

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train(self, mode: bool = True) -> LayAlignModel:
        """Frozen parts stay in eval mode (no dropout): only the adapters train. With `encoder_dropout` the encoder
        follows `mode` (its dropout acts while training, as in the releases; it is still frozen)."""
        super().train(mode)
        self.encoder.train(mode and self.config.encoder_dropout)
        self.llm.eval()
        # later 5.x releases renamed is_gradient_checkpointing (deprecated) to is_activation_checkpointing
        flag = ("is_activation_checkpointing" if hasattr(type(self.llm), "is_activation_checkpointing")
                else "is_gradient_checkpointing")
        if getattr(self.llm, flag, False):
            # transformers checkpoints a decoder layer only while that layer is in training mode; flip just the
            # layer containers, so that dropout and every other submodule stay in eval mode
            from transformers.modeling_layers import GradientCheckpointingLayer

            for module in self.llm.modules():
                if isinstance(module, GradientCheckpointingLayer):
                    module.training = mode
                    recompute = getattr(getattr(module, "_gradient_checkpointing_func", None), "keywords", {})
                    if mode and self.config.fusion and recompute.get("context_fn") is not fusion.recompute_context:
                        # checkpointing enabled on the LLM directly would recompute its layers without the
                        # fusion branch, silently giving wrong gradients
                        raise ValueError("enable gradient checkpointing with model.gradient_checkpointing_enable(), "
                                         "not on the LLM itself: the fusion state must be restored when recomputing")
        return self

    def gradient_checkpointing_enable(self) -> None:
        """Recompute the frozen LLM's layer activations in the backward pass instead of storing them. Non-reentrant:
        the gradient flows through the layers into the adapters although no LLM weight requires one; the fusion
        state of the forward is restored around the recomputation (fusion.recompute_context)."""
        kwargs = {"use_reentrant": False, "context_fn": fusion.recompute_context}
        if hasattr(self.llm, "activation_checkpointing_enable"):  # the name in later 5.x releases
            self.llm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        self.train(self.training)

    # ---------------------------------------------------------------- the forward path

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the frozen encoder; returns the states the aligner mixes and the final (normalised) output."""
        if input_ids.numel() == 0 or not bool(attention_mask.sum(dim=1).all()):
            raise ValueError("every example needs at least one encoder token (empty source text?)")
        with torch.no_grad():
            out = self.encoder(input_ids=input_ids.to(self.encoder.device),
                               attention_mask=attention_mask.to(self.encoder.device), output_hidden_states=True)
        return [out.hidden_states[i] for i in self.config.encoder_layers], out.last_hidden_state

    def fusion_dtype(self) -> torch.dtype:
        """The dtype of the fusion state and branch (LayAlignConfig.fusion_dtype): "auto" = the LLM's dtype, read at
        each call (so a model moved to another dtype follows)."""
        name = self.config.fusion_dtype
        return self.llm.dtype if name == "auto" else DTYPES[name]

    def fusion_state(self, encoder_states: list[torch.Tensor], attention_mask: torch.Tensor) -> fusion.FusionState:
        """Every fused layer's keys and values (the aligner) and the gates, computed once for the whole call."""
        layers = self.llm.get_decoder().layers
        attentions = [layers[layer].self_attn for layer in self.config.llm_layers]
        keys, values = self.aligner.keys_values([s.to(self.gates.device) for s in encoder_states], attentions,
                                                self.num_kv_heads, self.fusion_dtype())
        mask = attention_mask if self.config.mask_encoder_padding else None
        return fusion.FusionState.build(keys, values, self.gates, mask, self.slots)

    def build_inputs(self, encoder_final: torch.Tensor, encoder_attention_mask: torch.Tensor,
                     prompt_input_ids: torch.Tensor | None = None, prompt_attention_mask: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None,
                     labels_attention_mask: torch.Tensor | None = None) -> LLMInputs:
        """[bos] [mapped encoder states] [boundary] [prompt] [target], padding moved to the left."""
        embed = self.llm.get_input_embeddings()
        device, dtype = embed.weight.device, embed.weight.dtype
        batch = encoder_final.shape[0]

        def ones(n: int) -> torch.Tensor:
            return torch.ones(batch, n, dtype=torch.long, device=device)

        bos = torch.full((batch, 1), self.bos_token_id, dtype=torch.long, device=device)
        parts, masks = [embed(bos)], [ones(1)]
        if self.mapping is not None:
            mapped = self.mapping(encoder_final.to(device=device, dtype=self.boundary.dtype))
            parts += [mapped.to(dtype), self.boundary.expand(batch, -1, -1).to(dtype)]
            masks += [encoder_attention_mask.to(device=device, dtype=torch.long), ones(1)]
        if prompt_input_ids is not None and self.config.use_prompt:
            prompt_mask = _mask_or_ones(prompt_input_ids, prompt_attention_mask)
            parts.append(embed(prompt_input_ids.to(device)))
            masks.append(prompt_mask.to(device))
        if labels is not None:
            labels = labels.to(device)
            label_mask = _mask_or_ones(labels, labels_attention_mask).to(device)
            parts.append(embed(labels.masked_fill(label_mask == 0, 0)))
            masks.append(label_mask)

        embeds, mask = torch.cat(parts, dim=1), torch.cat(masks, dim=1)
        targets = None
        if labels is not None:
            prefix = torch.full((batch, mask.shape[1] - labels.shape[1]), IGNORE_INDEX, device=device)
            targets = torch.cat([prefix, labels.masked_fill(label_mask == 0, IGNORE_INDEX)], dim=1)
        # a stable sort on the mask moves padding to the left and keeps the order of real tokens
        order = torch.sort(mask, dim=1, stable=True).indices
        embeds = embeds.gather(1, order[..., None].expand_as(embeds))
        mask = mask.gather(1, order)
        if targets is not None:
            targets = targets.gather(1, order)
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        return LLMInputs(embeds, mask, position_ids, targets)

    def forward(self, encoder_input_ids: torch.Tensor, encoder_attention_mask: torch.Tensor,
                prompt_input_ids: torch.Tensor | None = None, prompt_attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, labels_attention_mask: torch.Tensor | None = None,
                **kwargs) -> LayAlignOutput:
        states, final = self.encode(encoder_input_ids, encoder_attention_mask)
        inputs = self.build_inputs(final, encoder_attention_mask, prompt_input_ids, prompt_attention_mask,
                                   labels, labels_attention_mask)
        state = self.fusion_state(states, encoder_attention_mask) if self.config.fusion else None
        with fusion.active(state):  # every fused attention layer of this call reads its K/V and gate from `state`
            return llm_output(self.llm, inputs, labels, **kwargs)

    def prompt_inputs(self, encoder_input_ids: torch.Tensor, encoder_attention_mask: torch.Tensor,
                      prompt_input_ids: torch.Tensor | None = None, prompt_attention_mask: torch.Tensor | None = None,
                      ) -> tuple[LLMInputs, fusion.FusionState | None]:
        """What the LLM continues from, without a target: its assembled input and the fusion state (None without
        fusion), to be used inside `fusion.active(state)`; shared by generate and choice scoring."""
        states, final = self.encode(encoder_input_ids, encoder_attention_mask)
        inputs = self.build_inputs(final, encoder_attention_mask, prompt_input_ids, prompt_attention_mask)
        state = self.fusion_state(states, encoder_attention_mask) if self.config.fusion else None
        return inputs, state

    @torch.no_grad()
    def generate(self, encoder_input_ids: torch.Tensor, encoder_attention_mask: torch.Tensor,
                 prompt_input_ids: torch.Tensor | None = None, prompt_attention_mask: torch.Tensor | None = None,
                 **generation_kwargs) -> torch.Tensor:
        """Batched generation through transformers' generate (greedy, sampling, beam search, ...). Returns only the
        new tokens, (B * num_return_sequences, new_len). The encoder, aligner and key/value projections run once."""
        inputs, state = self.prompt_inputs(encoder_input_ids, encoder_attention_mask, prompt_input_ids,
                                           prompt_attention_mask)
        if generation_kwargs.get("pad_token_id") is None:
            generation_kwargs["pad_token_id"] = pad_token_id(self.llm, self.llm_tokenizer)
        with fusion.active(state):  # every fused attention layer of every decoding step reads `state`
            return self.llm.generate(inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask,
                                     **generation_kwargs)

    # ---------------------------------------------------------------- saving and loading

    def save_pretrained(self, directory: str | Path) -> Path:
        """A JSON config naming the encoder and LLM, and the trainable tensors only, in safetensors."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory)
        tensors = {k: v.contiguous().cpu() for k, v in self.trainable_state_dict().items()}
        save_file(tensors, directory / ADAPTER_NAME, metadata={"format": "pt", "library": "layalign"})
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, encoder: nn.Module | None = None, llm: nn.Module | None = None,
                        **config_overrides) -> LayAlignModel:
        """A trained directory, or the name of a model shipped with the package (`layalign models list`)."""
        from layalign.pretrained import locate

        directory = Path(locate(directory))
        config = LayAlignConfig.load(directory)
        for key, value in config_overrides.items():
            setattr(config, key, value)
        if not (directory / ADAPTER_NAME).is_file():
            raise FileNotFoundError(f"{directory} has no {ADAPTER_NAME}")
        model = cls(config, encoder=encoder, llm=llm)
        model.load_adapter_state_dict(load_file(directory / ADAPTER_NAME), source=str(directory / ADAPTER_NAME))
        return model

    def load_adapter_state_dict(self, tensors: dict[str, torch.Tensor], source: str = "state dict") -> None:
        own = {name: p for name, p in self.named_parameters() if p.requires_grad}
        load_adapters(own, tensors, source, f"variant {self.config.variant!r}")

    def _check_saved_shapes(self, enc, dec) -> None:
        saved = self.config.extra.get("shapes")
        if not saved:
            return
        found = {"encoder_layers": enc.num_layers, "encoder_width": enc.width,
                 "llm_layers": dec.num_layers, "llm_width": dec.width}
        diffs = [f"{k}: adapter {saved[k]}, loaded model {found[k]}" for k in found if saved.get(k) != found[k]]
        if diffs:
            raise ValueError("the adapters were trained for other models than the ones loaded "
                             f"(encoder {self.config.encoder!r}, LLM {self.config.llm!r}): " + "; ".join(diffs))

    # ---------------------------------------------------------------- the authors' checkpoint layout

    _AUTHORS_NAMES = {
        "mapping.mlp.linear1.": "mapping.linear1.",
        "mapping.mlp.linear2.": "mapping.linear2.",
        "encoder_aligner.projector.fc1.": "aligner.layer_mix.",
        "encoder_aligner.projector.fc2.": "aligner.proj.",
        "encoder_aligner.projector.fc3.": "aligner.proj2.",
    }
    _AUTHORS_GATE = re.compile(r"layers\.(\d+)\.self_attn\.adaption_gate$")

    def load_authors_state_dict(self, state_dict: dict[str, torch.Tensor] | str | Path) -> None:
        """Import the trainable tensors of the authors' released checkpoint (a whole-wrapper state dict; only the
        key suffixes matter). A path is read with torch.load(weights_only=True) or safetensors."""
        if isinstance(state_dict, (str, Path)):
            path = str(state_dict)
            state_dict = load_file(path) if path.endswith(".safetensors") else torch.load(
                path, map_location="cpu", weights_only=True)
        ours: dict[str, torch.Tensor] = {}
        gates: dict[int, torch.Tensor] = {}
        for key, tensor in state_dict.items():
            if key.endswith("mapping.end_boundary"):
                ours["boundary"] = tensor.reshape(1, 1, -1)
            elif match := self._AUTHORS_GATE.search(key):
                gates[int(match.group(1))] = tensor.reshape(())
            else:
                for theirs, mine in self._AUTHORS_NAMES.items():
                    if theirs in key:
                        ours[mine + key.split(theirs)[1]] = tensor
        if self.gates is not None:
            absent = [i for i in self.config.llm_layers if i not in gates]
            if absent:
                raise ValueError(f"the authors' state dict has no adaption_gate for LLM layers {absent}")
            ours["gates"] = torch.stack([gates[i] for i in self.config.llm_layers])
        self.load_adapter_state_dict(ours, source="the authors' state dict")

    def to_authors_state_dict(self) -> dict[str, torch.Tensor]:
        """The inverse of load_authors_state_dict, in the authors' naming."""
        inverse = {mine: theirs for theirs, mine in self._AUTHORS_NAMES.items()}
        out = {}
        for name, tensor in self.trainable_state_dict().items():
            if name == "boundary":
                out["mapping.end_boundary"] = tensor.clone()
            elif name == "gates":
                for slot, layer in enumerate(self.config.llm_layers):
                    out[f"model.model.layers.{layer}.self_attn.adaption_gate"] = tensor[slot : slot + 1].clone()
            else:
                prefix = next(p for p in inverse if name.startswith(p))
                out[inverse[prefix] + name[len(prefix):]] = tensor.clone()
        return out


def llm_output(llm: nn.Module, inputs: LLMInputs, labels: torch.Tensor | None, **kwargs) -> LayAlignOutput:
    """The LLM on an assembled input, and the mean cross-entropy over the target tokens when there are labels
    (`labels` as given to forward: only its width is used, the targets are in `inputs.labels`)."""
    # the targets are the right end of every row, so the LLM head only runs on the last Y + 1 positions
    keep = 0 if labels is None else labels.shape[1] + 1
    out = llm(inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask, position_ids=inputs.position_ids,
              logits_to_keep=keep, use_cache=False, **kwargs)
    if labels is None:
        return LayAlignOutput(None, out.logits)
    targets = inputs.labels[:, -labels.shape[1]:]
    count = int((targets != IGNORE_INDEX).sum())
    if count == 0:
        raise ValueError("the batch has no target tokens (all labels masked or empty)")
    loss = F.cross_entropy(out.logits[:, :-1].float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
    return LayAlignOutput(loss, out.logits, count)


def _resolve_layers(chosen, default, limit: int, name: str, what: str) -> list[int]:
    """The chosen indices (a negative one counts from the end, as in Python: -1 is the last), checked."""
    layers = list(default) if chosen is None else [i + limit if -limit <= i < 0 else i for i in chosen]
    bad = [i for i in layers if not 0 <= i < limit]
    if bad:
        raise ValueError(f"{name} {bad} out of range: the model has {limit} {what} (0 .. {limit - 1})")
    if len(set(layers)) != len(layers):
        raise ValueError(f"{name} has repeated indices: {layers}")
    return layers


def _boundary(init: str, width: int) -> torch.Tensor:
    """The boundary vector at construction: zeros (MindMerger, LayAlign) or N(0, 1) (LangBridge's enc_eos)."""
    return torch.randn(1, 1, width) if init == "normal" else torch.zeros(1, 1, width)


def _mask_or_ones(ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(ids, dtype=torch.long) if mask is None else mask.to(torch.long)


__all__ = ["ADAPTER_NAMES", "DTYPES", "LayAlignModel", "LayAlignOutput", "build_adapters", "check_adapter_tensors",
           "load_adapters"]
