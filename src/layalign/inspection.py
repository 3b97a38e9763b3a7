"""`layalign inspect MODEL`: what a trained LayAlign model learned about layers, read straight from its files
(no model loading): the gate of every fused LLM layer, and which encoder layers feed each layer's key and value
inputs (the rows of the aligner's layer mix). Draws one PNG: key and value heatmaps plus the gates."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from layalign.model.config import ADAPTER_NAME, CONFIG_NAME

GATES = "gates"
LAYER_MIX = "aligner.layer_mix.weight"
DEFAULT_PNG = "inspect.png"
TOP_K = 3  # encoder layers listed per key/value row; the heatmap shows them all


class InspectError(ValueError):
    """The directory cannot be inspected; the message says why and what is there."""


@dataclass
class FusionWeights:
    llm_layers: list[int]
    encoder_layers: list[int]
    gates: np.ndarray  # (F,)
    key_mix: np.ndarray | None  # (F, L_sel): row i = weights over encoder layers for LLM layer i's key input
    value_mix: np.ndarray | None  # (F, L_sel)


def load_fusion_weights(model_dir: str | Path) -> FusionWeights:
    """Read gates and layer mix from `model_dir` (or a shipped model's name); InspectError for a non-LayAlign
    directory or one without fusion."""
    from layalign.pretrained import locate

    model_dir = Path(locate(model_dir))
    config_path, adapter_path = model_dir / CONFIG_NAME, model_dir / ADAPTER_NAME
    if not config_path.is_file() or not adapter_path.is_file():
        missing = [p.name for p in (config_path, adapter_path) if not p.is_file()]
        raise InspectError(f"{model_dir} is not a LayAlign model directory (missing {', '.join(missing)})")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    tensors = _read_tensors(adapter_path, [GATES, LAYER_MIX])

    llm_layers = list(config.get("llm_layers") or [])
    encoder_layers = list(config.get("encoder_layers") or [])
    if config.get("fusion") is False or not llm_layers or GATES not in tensors:
        raise InspectError(f"{model_dir} has no layer-wise fusion (no gates or layer mix to show)\n"
                           + describe_directory(config, adapter_path))

    gates = tensors[GATES].reshape(-1)
    if gates.shape[0] != len(llm_layers):
        raise InspectError(f"{ADAPTER_NAME}: {gates.shape[0]} gates but {len(llm_layers)} llm_layers in the config")
    key_mix = value_mix = None
    if LAYER_MIX in tensors:
        mix = tensors[LAYER_MIX]
        expected = (2 * len(llm_layers), len(encoder_layers))
        if mix.shape != expected:
            raise InspectError(f"{LAYER_MIX} has shape {mix.shape}, expected {expected} "
                               "(2 x llm_layers, encoder_layers)")
        key_mix, value_mix = mix[0::2], mix[1::2]  # rows alternate: layer0-key, layer0-value, layer1-key, ...
    return FusionWeights(llm_layers, encoder_layers, gates, key_mix, value_mix)


def _read_tensors(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Only the named tensors, as float32 numpy (bf16 has no numpy dtype, hence the torch detour)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        available = set(f.keys())
        return {n: f.get_tensor(n).float().numpy() for n in names if n in available}


def describe_directory(config: dict, adapter_path: Path) -> str:
    """What a model directory holds: the config's main switches and every adapter tensor with its shape."""
    from safetensors import safe_open

    keys = ("variant", "mapping", "fusion", "use_prompt", "encoder", "llm", "encoder_layers", "llm_layers")
    lines = ["config:"] + [f"  {k}: {config[k]}" for k in keys if k in config]
    with safe_open(str(adapter_path), framework="pt") as f:
        lines.append(f"{adapter_path.name}:")
        lines += [f"  {name}: {tuple(f.get_slice(name).get_shape())}" for name in sorted(f.keys())]
    return "\n".join(lines)


def describe(weights: FusionWeights, top_k: int = TOP_K) -> str:
    """A text report: one line per fused LLM layer with its gate and its strongest key/value encoder layers."""
    lines = [f"{len(weights.llm_layers)} fused LLM layers; encoder layers mixed: {weights.encoder_layers}",
             f"gate: the scalar g_i scaling the fusion branch (0 = the bare LLM); "
             f"key/value: the {min(top_k, len(weights.encoder_layers))} encoder layers with the largest "
             "|layer-mix weight|"]
    for row, (layer, gate) in enumerate(zip(weights.llm_layers, weights.gates, strict=True)):
        line = f"LLM layer {layer:>3}  gate {gate:+.4f}"
        if weights.key_mix is not None:
            line += f"  key <- {_top(weights.key_mix[row], weights.encoder_layers, top_k)}"
            line += f"  value <- {_top(weights.value_mix[row], weights.encoder_layers, top_k)}"
        lines.append(line)
    if weights.key_mix is None:
        lines.append(f"(no {LAYER_MIX} in the adapter: gates only)")
    return "\n".join(lines)


def _top(row: np.ndarray, encoder_layers: list[int], k: int) -> str:
    order = np.argsort(-np.abs(row), kind="stable")[:k]
    return ", ".join(f"enc {encoder_layers[j]} ({row[j]:+.3f})" for j in order)


def plot(weights: FusionWeights, path: str | Path) -> Path:
    """Key heatmap | value heatmap | gate bars, one row per fused LLM layer (x = encoder layer)."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no GUI backend, no pyplot state

    n = len(weights.llm_layers)
    has_mix = weights.key_mix is not None
    fig = Figure(figsize=(12 if has_mix else 4, max(3.0, 0.22 * n + 1.5)), layout="constrained")
    axes = fig.subplots(1, 3 if has_mix else 1, sharey=True, squeeze=False,
                        gridspec_kw={"width_ratios": [3, 3, 1.2] if has_mix else [1]})[0]
    if has_mix:
        limit = float(max(np.abs(weights.key_mix).max(), np.abs(weights.value_mix).max(), 1e-8))
        for ax, mix, title in ((axes[0], weights.key_mix, "key inputs"), (axes[1], weights.value_mix,
                                                                            "value inputs")):
            image = ax.imshow(mix, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
            ax.set_title(f"layer mix: {title}")
            ax.set_xlabel("encoder layer")
            ticks = _thin(len(weights.encoder_layers), most=12)
            ax.set_xticks(ticks, [str(weights.encoder_layers[t]) for t in ticks])
        fig.colorbar(image, ax=axes[:2], shrink=0.8, label="weight")
    gate_ax = axes[-1]
    gate_ax.barh(range(n), weights.gates, color=["tab:red" if g < 0 else "tab:blue" for g in weights.gates])
    gate_ax.axvline(0, color="grey", linewidth=0.8)
    gate_ax.set_title("gates")
    gate_ax.set_xlabel("g")
    ticks = _thin(n)
    axes[0].set_yticks(ticks, [str(weights.llm_layers[t]) for t in ticks])
    axes[0].set_ylabel("LLM layer")
    axes[0].set_ylim(n - 0.5, -0.5)  # first layer on top, rows aligned with the heatmaps
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _thin(count: int, most: int = 24) -> list[int]:
    """Tick positions: all of them, or every k-th when there are many."""
    step = max(1, -(-count // most))
    return list(range(0, count, step))


def cli_inspect(args: Any) -> int:
    """`layalign inspect MODEL [--out PNG]`: print gates and layer-mix summary, write the PNG."""
    try:
        weights = load_fusion_weights(args.model)
    except InspectError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(describe(weights))
    from layalign.pretrained import locate

    shipped = locate(args.model) != str(args.model)  # its folder is inside the installed package: write here instead
    default = Path(f"{args.model}-{DEFAULT_PNG}") if shipped else Path(args.model) / DEFAULT_PNG
    out = Path(args.out) if args.out else default
    if out.is_dir():
        out = out / DEFAULT_PNG
    print(f"\nwrote {plot(weights, out)}")
    return 0
