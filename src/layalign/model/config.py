"""LayAlignConfig: which encoder and LLM, which variant, and the switches behind the paper's ablations."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


def known_keys(cls: type, data: dict[str, Any], what: str, ignored: set[str] = frozenset()) -> dict[str, Any]:
    """`data` without the `ignored` keys, after checking that every other key is a field of the dataclass `cls`:
    a typo in a recipe or a config file is an error naming the known keys, never a silently unused setting."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known - set(ignored))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {sorted(known)}")
    return {k: v for k, v in data.items() if k in known}

# the two files of a trained model directory
CONFIG_NAME = "layalign_config.json"
ADAPTER_NAME = "adapter.safetensors"

# What each variant means when a switch is left unset (None). LayAlign = MindMerger + layer-wise fusion;
# LangBridge (as its release runs it) = one linear map, a randomly initialised end vector, the encoder reading the
# templated instruction and the LLM no prompt, no fusion.
VARIANTS: dict[str, dict[str, Any]] = {
    "layalign": {"mapping": "mlp", "use_prompt": True, "fusion": True},
    "mindmerger": {"mapping": "mlp", "use_prompt": True, "fusion": False},
    "langbridge": {"mapping": "linear", "use_prompt": False, "fusion": False, "boundary_init": "normal",
                   "encoder_reads_prompt": True},
}
# the value of a switch that a variant does not set
SWITCH_DEFAULTS: dict[str, Any] = {"boundary_init": "zeros", "encoder_reads_prompt": False}
# what a model directory saved before a switch existed ran with (LayAlignConfig.load)
LEGACY_SWITCHES: dict[str, Any] = {"boundary_init": "zeros", "encoder_reads_prompt": False}
BOUNDARY_INITS = ("zeros", "normal")
MAPPINGS = ("mlp", "linear", "none")
ALIGNER_STRUCTURES = ("linear", "mlp")
DTYPES = ("float32", "bfloat16", "float16")  # names; backbones.loading maps them to torch dtypes


@dataclass
class LayAlignConfig:
    """Everything needed to rebuild a LayAlign model around its frozen encoder and LLM.

    encoder / llm: model references (hub id, local directory, GGUF file or catalogue name).
    variant: "layalign", "mindmerger" or "langbridge"; fills `mapping`, `use_prompt` and `fusion` (LangBridge also
        `boundary_init` and `encoder_reads_prompt`) when unset.
    mapping: the input mapping in front of the prompt: "mlp" (paper), "linear" (LangBridge) or "none".
    use_prompt: feed the LLM the task prompt after the mapped encoder states ("augmentation").
    fusion: layer-wise aligner + gated fusion attention in the LLM layers.
    encoder_layers: encoder hidden-state indices the aligner mixes (0 = embedding output; -1 = the final state, as
        Python counts from the end). Default: the authors' choice, every state but the final one.
    llm_layers: LLM decoder layers that receive the fusion branch. Default: all.
    aligner_structure: "linear" (layer mix -> ReLU -> projection) or "mlp" (an extra ReLU + linear).
    boundary_init: the boundary (end) vector after the mapped states at construction: "zeros" (MindMerger, LayAlign)
        or "normal" (LangBridge's enc_eos, torch.randn).
    encoder_reads_prompt: the encoder reads the task-templated prompt instead of the bare source where an example has
        one (LangBridge); LayAlignProcessor.from_model applies it in training and evaluation alike.
    encoder_dropout: keep the frozen encoder in training mode while the model trains, so that its dropout acts on
        the states feeding the mapping and the aligner, as all three releases do (it still gets no gradients);
        False keeps it in eval mode.
    mask_encoder_padding: mask padded encoder positions in the fusion attention (False = the authors' behaviour).
    dtype: dtype of the frozen encoder and LLM; the adapters stay in float32 for stable optimisation.
    fusion_dtype: dtype of the fusion state (every fused layer's keys and gated values) and of the branch's
        attention: "auto" = the LLM's dtype, as the authors' release computes it (bf16 keys/values with a bf16
        LLM; float32 with a float32 one), or "float32" / "bfloat16" / "float16". The softmax accumulates in
        float32 in every case (fusion.fusion_branch).
    bos_token_id: the LLM's bos id; None takes it from the LLM's config.
    """

    encoder: str = "multilingual-e5-small"
    llm: str = "smollm2-135m-instruct"
    variant: str = "layalign"
    mapping: str | None = None
    use_prompt: bool | None = None
    fusion: bool | None = None
    encoder_layers: list[int] | None = None
    llm_layers: list[int] | None = None
    boundary_init: str | None = None
    encoder_reads_prompt: bool | None = None
    encoder_dropout: bool = False
    aligner_structure: str = "linear"
    mask_encoder_padding: bool = True
    dtype: str = "float32"
    fusion_dtype: str = "auto"
    bos_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {sorted(VARIANTS)}")
        for name, value in VARIANTS[self.variant].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name, value in SWITCH_DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        _check_choice("mapping", self.mapping, MAPPINGS)
        _check_choice("boundary_init", self.boundary_init, BOUNDARY_INITS)
        _check_choice("aligner_structure", self.aligner_structure, ALIGNER_STRUCTURES)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("fusion_dtype", self.fusion_dtype, ("auto", *DTYPES))
        if self.mapping == "none" and not self.fusion:
            raise ValueError("with mapping='none' and fusion off the encoder would not reach the LLM at all")
        for name in ("encoder_layers", "llm_layers"):
            value = getattr(self, name)
            if value is not None:
                if not value:
                    raise ValueError(f"{name} is empty; leave it unset for the default")
                setattr(self, name, [int(i) for i in value])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayAlignConfig:
        return cls(**known_keys(cls, data, "LayAlignConfig keys"))

    def save(self, directory: str | Path) -> Path:
        return write_config_file(directory, self.to_dict())

    @classmethod
    def load(cls, directory: str | Path) -> LayAlignConfig:
        # a directory saved before a switch existed ran without it, whatever its variant's default is now
        return cls.from_dict({**LEGACY_SWITCHES, **read_config_file(directory)})


def write_config_file(directory: str | Path, data: dict[str, Any]) -> Path:
    """A model directory's CONFIG_NAME, as indented JSON (every kind of model: LayAlign and the LoRA baseline)."""
    path = Path(directory) / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def read_config_file(directory: str | Path) -> dict[str, Any]:
    """The settings in a model directory's CONFIG_NAME; a clear error if it is missing or not JSON."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a LayAlign model directory: {CONFIG_NAME} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {list(choices)}")
