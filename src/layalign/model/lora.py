"""The "LLM only, fine-tuned" baseline: the bare LLM with LoRA adapters (peft), trained on the same task data, steps
and schedule as the fused systems. The prompted bare LLM (`llm:REF`) stays the zero-training row.

    layalign train --config configs/reproduction/llm-lora.yaml
    layalign evaluate --model runs/reproduction/llm-lora-s0/task/final --benchmark xnli --scoring choices

The LLM reads `[bos][prompt][target + eos]`, the prompt being the task template around the original-language query
(the `prompt` the fused systems' task stage already gets), assembled by LayAlignModel.build_inputs with no encoder
part: the same left padding, positions and target-only loss. The processor's encoder fields are ignored (its encoder
tokenizer is a stand-in giving one token per example). A model directory holds `layalign_config.json` (variant
"llm-lora") and peft's own `adapter_config.json` + `adapter_model.safetensors`, so `PeftModel.from_pretrained` reads
it too.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from layalign.backbones.loading import load_llm
from layalign.model.config import CONFIG_NAME, DTYPES, LayAlignConfig, known_keys, read_config_file, write_config_file
from layalign.model.modeling import LayAlignModel, LayAlignOutput, check_adapter_tensors, llm_output

LORA_VARIANT = "llm-lora"
PEFT_CONFIG_NAME = "adapter_config.json"
PEFT_ADAPTER_NAME = "adapter_model.safetensors"
INSTALL_HINT = 'pip install "layalign[lora]"'


def require_peft():
    """peft, or an ImportError saying how to install it (an optional extra: only this baseline needs it)."""
    try:
        import peft
    except ImportError as err:
        raise ImportError(f"the {LORA_VARIANT} baseline needs peft, which is not installed: {INSTALL_HINT}") from err
    return peft


@dataclass
class LoRAConfig:
    """The bare LLM plus LoRA. Defaults: rank 8, alpha 16 (scale alpha / rank = 2), dropout 0.05 on the attention
    projections q/k/v/o: the common LoRA setting for instruction tuning (the LoRA paper adapts attention weights
    only; r=8 with alpha=2r is peft's and most recipes' starting point), and, with q/k/v/o, the same LLM weights the
    fusion branch acts through, at a comparable trainable size (SmolLM2-135M: 0.9M LoRA parameters against
    LayAlign's 1.6M adapters with multilingual-e5-small).

    llm: model reference (hub id, local directory, GGUF file or catalogue name).
    dtype: dtype of the frozen LLM; the LoRA weights stay in float32 (peft's autocast_adapter_dtype).
    bos_token_id: None takes it from the LLM's config.
    """

    llm: str = "smollm2-135m-instruct"
    variant: str = LORA_VARIANT
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    dtype: str = "float32"
    bos_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant != LORA_VARIANT:
            raise ValueError(f"LoRAConfig is the {LORA_VARIANT!r} variant, not {self.variant!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of {list(DTYPES)}")
        if int(self.rank) < 1 or not 0 <= float(self.dropout) < 1 or not self.target_modules:
            raise ValueError("LoRA needs rank >= 1, 0 <= dropout < 1 and at least one target module")
        self.target_modules = list(self.target_modules)

    @property
    def use_prompt(self) -> bool:
        """Always: the prompt is all the LLM reads (the training loop's Batcher asks)."""
        return True

    def peft_config(self):
        return require_peft().LoraConfig(r=int(self.rank), lora_alpha=int(self.alpha), lora_dropout=float(self.dropout),
                                         target_modules=self.target_modules, bias="none", task_type="CAUSAL_LM")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoRAConfig:
        """Keys of LayAlignConfig that mean nothing without an encoder (encoder, mapping, fusion...) are dropped, so
        that a fused system's recipe runs with `model.variant=llm-lora`; other unknown keys are errors."""
        encoder_side = {f.name for f in fields(LayAlignConfig)} - {f.name for f in fields(cls)}
        return cls(**known_keys(cls, data, f"{LORA_VARIANT} keys", ignored=encoder_side))

    def save(self, directory: str | Path) -> Path:
        return write_config_file(directory, self.to_dict())

    @classmethod
    def load(cls, directory: str | Path) -> LoRAConfig:
        return cls.from_dict(read_config_file(Path(directory)))


def is_lora_directory(directory: str | Path) -> bool:
    """Whether `directory` holds an llm-lora model (its layalign_config.json says so)."""
    path = Path(directory) / CONFIG_NAME
    return path.is_file() and read_config_file(Path(directory)).get("variant") == LORA_VARIANT


class _NoEncoderTokenizer:
    """Stands in for the encoder tokenizer so that LayAlignProcessor works unchanged: one token per source, which
    LLMLoRAModel ignores (and no source is ever counted as truncated)."""

    pad_token_id = sep_token_id = eos_token_id = None

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [0]}


class LLMLoRAModel(nn.Module):
    """The bare LLM with LoRA adapters, behind the interface the training loop uses from LayAlignModel: forward on
    a processor batch, save_pretrained / from_pretrained, trainable_state_dict / load_adapter_state_dict,
    gradient_checkpointing_enable. `self.llm` is the peft model."""

    adapter_file = PEFT_ADAPTER_NAME  # what a checkpoint's trainable tensors are saved as

    def __init__(self, config: LoRAConfig, llm: nn.Module | None = None, llm_tokenizer=None):
        super().__init__()
        peft = require_peft()
        self.config = config
        self.llm_tokenizer = llm_tokenizer
        self.encoder_tokenizer = _NoEncoderTokenizer()
        if llm is None:
            llm, self.llm_tokenizer = load_llm(config.llm, config.dtype)
        # B starts at zero (peft's init): before the first step the model computes exactly what the bare LLM does
        with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing: not ours
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            self.llm = peft.get_peft_model(llm, config.peft_config())
        self.mapping = None  # read by LayAlignModel.build_inputs: no encoder part in the LLM input
        bos = config.bos_token_id if config.bos_token_id is not None else self.llm.config.bos_token_id
        if bos is None:
            raise ValueError("the LLM's config has no bos_token_id; set bos_token_id in the model settings")
        self.bos_token_id = int(bos)
        self.train(self.training)  # the frozen LLM in eval mode, the new LoRA dropout following this module

    # ---------------------------------------------------------------- parameters

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """peft's names, without the adapter name (as in adapter_model.safetensors)."""
        from peft.utils import get_peft_model_state_dict

        return {k: v.detach() for k, v in get_peft_model_state_dict(self.llm).items()}

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train(self, mode: bool = True) -> LLMLoRAModel:
        """The frozen LLM stays in eval mode; only the LoRA dropout follows `mode`."""
        super().train(mode)
        self.llm.eval()
        for name, module in self.llm.named_modules():
            if name.endswith("lora_dropout"):
                module.train(mode)
        base = self.llm.get_base_model()
        flag = ("is_activation_checkpointing" if hasattr(type(base), "is_activation_checkpointing")
                else "is_gradient_checkpointing")
        if getattr(base, flag, False):
            # transformers checkpoints a decoder layer only while that layer is in training mode (as LayAlignModel)
            from transformers.modeling_layers import GradientCheckpointingLayer

            for module in base.modules():
                if isinstance(module, GradientCheckpointingLayer):
                    module.training = mode
        return self

    def gradient_checkpointing_enable(self) -> None:
        """Non-reentrant: the gradient reaches the LoRA weights although the layer inputs need none."""
        base, kwargs = self.llm.get_base_model(), {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):  # the name in later 5.x releases
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        self.train(self.training)

    # ---------------------------------------------------------------- the forward path

    def forward(self, encoder_input_ids: torch.Tensor | None = None, encoder_attention_mask: torch.Tensor | None = None,
                prompt_input_ids: torch.Tensor | None = None, prompt_attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, labels_attention_mask: torch.Tensor | None = None,
                **kwargs) -> LayAlignOutput:
        """The encoder fields are ignored: the LLM reads [bos][prompt][target + eos]; loss on the target only."""
        if prompt_input_ids is None:
            raise ValueError(f"the {LORA_VARIANT} baseline reads the LLM prompt only, and this batch has none (the "
                             "translation stage gives none: train it in the task stage)")
        # with no mapping, LayAlignModel.build_inputs assembles exactly [bos][prompt][target], padding moved left and
        # labels IGNORE_INDEX outside the target; its first argument only gives the batch size here
        inputs = LayAlignModel.build_inputs(self, prompt_input_ids, prompt_attention_mask, prompt_input_ids,
                                            prompt_attention_mask, labels, labels_attention_mask)
        return llm_output(self.llm, inputs, labels, **kwargs)

    def merged_llm(self) -> nn.Module:
        """A plain transformers LLM with the LoRA update merged into its weights, for inference (the peft wrapping
        is gone: this model can no longer be trained)."""
        return self.llm.merge_and_unload()

    # ---------------------------------------------------------------- saving and loading

    def save_pretrained(self, directory: str | Path) -> Path:
        """layalign_config.json, and peft's adapter_config.json + adapter_model.safetensors (LoRA weights only)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory)
        self.llm.peft_config["default"].save_pretrained(str(directory))
        tensors = {k: v.contiguous().cpu() for k, v in self.trainable_state_dict().items()}
        save_file(tensors, directory / PEFT_ADAPTER_NAME, metadata={"format": "pt"})
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, llm: nn.Module | None = None, llm_tokenizer=None,
                        **config_overrides) -> LLMLoRAModel:
        directory = Path(directory)
        # read like a recipe's model settings: encoder-side overrides (encoder_dropout...) are dropped
        config = LoRAConfig.from_dict(read_config_file(directory) | config_overrides)
        if not (directory / PEFT_ADAPTER_NAME).is_file():
            raise FileNotFoundError(f"{directory} has no {PEFT_ADAPTER_NAME}")
        model = cls(config, llm=llm, llm_tokenizer=llm_tokenizer)
        model.load_adapter_state_dict(load_file(directory / PEFT_ADAPTER_NAME), source=str(directory))
        return model

    def load_adapter_state_dict(self, tensors: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Copy LoRA weights (peft's names) into this model's, in place (an optimiser keeps its parameters)."""
        from peft.utils import set_peft_model_state_dict

        check_adapter_tensors(tensors, self.trainable_state_dict(), source,
                              f"LoRA rank {self.config.rank} on {self.config.target_modules}", "another LLM or rank?")
        with torch.no_grad():
            set_peft_model_state_dict(self.llm, tensors)


__all__ = ["INSTALL_HINT", "LORA_VARIANT", "LLMLoRAModel", "LoRAConfig", "is_lora_directory", "require_peft"]
