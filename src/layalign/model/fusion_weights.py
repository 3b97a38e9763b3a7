"""The fusion weights of a LayAlign model as a small record: the gate of every fused LLM layer and the rows of the
aligner's layer mix. Training writes the record a stage starts from (`fusion_init.json`, before its first optimiser
step); `layalign.inspection` reads it to say how far the weights moved. It sits beside the model, below training and
inspection, so that both can use it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FUSION_INIT = "fusion_init.json"  # in a stage's output folder: the fusion weights before its first optimiser step


class InspectError(ValueError):
    """The directory cannot be inspected; the message says why and what is there."""


@dataclass
class FusionWeights:
    llm_layers: list[int]
    encoder_layers: list[int]
    gates: np.ndarray  # (F,)
    key_mix: np.ndarray | None  # (F, L_sel): row i = weights over encoder layers for LLM layer i's key input
    value_mix: np.ndarray | None  # (F, L_sel)

    def as_record(self) -> dict[str, Any]:
        """The weights as JSON-ready lists (float32 values as Python floats: the round trip is exact)."""
        def rows(mix: np.ndarray | None) -> list[list[float]] | None:
            return None if mix is None else [[float(x) for x in row] for row in mix]

        return {"llm_layers": list(self.llm_layers), "encoder_layers": list(self.encoder_layers),
                "gates": [float(g) for g in self.gates], "key_mix": rows(self.key_mix),
                "value_mix": rows(self.value_mix)}

    @classmethod
    def from_record(cls, record: dict[str, Any], source: str = "record") -> FusionWeights:
        """The inverse of `as_record`; InspectError (naming `source`) for a record of the wrong shape."""
        try:
            llm_layers, encoder_layers = list(record["llm_layers"]), list(record["encoder_layers"])
            gates = np.asarray(record["gates"], dtype=np.float32)
            key_mix, value_mix = (None if record.get(k) is None else np.asarray(record[k], dtype=np.float32)
                                  for k in ("key_mix", "value_mix"))
        except (KeyError, TypeError, ValueError) as err:
            raise InspectError(f"{source}: not a fusion record ({type(err).__name__}: {err})") from None
        expected = (len(llm_layers), len(encoder_layers))
        if gates.shape != expected[:1] or any(m is not None and m.shape != expected for m in (key_mix, value_mix)):
            raise InspectError(f"{source}: gates and layer-mix rows do not match {expected[0]} llm_layers x "
                               f"{expected[1]} encoder_layers")
        return cls(llm_layers, encoder_layers, gates, key_mix, value_mix)


def fusion_weights_of(model: Any) -> FusionWeights | None:
    """The gates and layer mix of a LayAlignModel in memory, as they are now; None for a model without gates."""
    gates = getattr(model, "gates", None)
    if gates is None:
        return None
    mix = model.aligner.layer_mix.weight.detach().float().cpu().numpy()
    return FusionWeights(list(model.config.llm_layers), list(model.config.encoder_layers),
                         gates.detach().float().cpu().numpy(), mix[0::2], mix[1::2])


def write_fusion_init(model: Any, out_dir: str | Path) -> Path | None:
    """`out_dir/fusion_init.json` from the model's fusion weights now (a stage calls it before its first step);
    nothing for a model without gates."""
    weights = fusion_weights_of(model)
    if weights is None:
        return None
    path = Path(out_dir) / FUSION_INIT
    path.write_text(json.dumps(weights.as_record()) + "\n", encoding="utf-8")
    return path


def read_fusion_init(path: str | Path) -> FusionWeights:
    """A `fusion_init.json` (or a folder holding one); InspectError if absent or malformed."""
    path = Path(path)
    if path.is_dir():
        path = path / FUSION_INIT
    if not path.is_file():
        raise InspectError(f"{path}: no such file (a stage writes {FUSION_INIT} in its output folder)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InspectError(f"{path}: line {err.lineno} is not valid JSON ({err.msg})") from None
    return FusionWeights.from_record(record, str(path))
