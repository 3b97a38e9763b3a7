"""`layalign inspect MODEL`: what a trained LayAlign model learned about layers, read straight from its files
(no model loading): the gate of every fused LLM layer, and which encoder layers feed each layer's key and value
inputs (the rows of the aligner's layer mix). Draws one PNG: key and value heatmaps plus the gates.

What moved: training stores the gates and the layer mix as they were when a stage started (`fusion_init.json`,
written by `layalign.training.loop`). Against that record, `movement` says how far the weights went from their
initialisation; a row's strongest encoder layers are read only where the row moved beyond the initialisation's
own spread (a row still inside its random draw lists noise). `write_diagnostics` puts this beside the branch's
measured contribution (the same model evaluated with every gate at zero, `layalign.evaluation.divergence`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from layalign.model.config import ADAPTER_NAME, CONFIG_NAME
from layalign.model.fusion_weights import (  # the record training writes; re-exported here
    FUSION_INIT,
    FusionWeights,
    InspectError,
    read_fusion_init,
)

GATES = "gates"
LAYER_MIX = "aligner.layer_mix.weight"
DEFAULT_PNG = "inspect.png"
TOP_K = 3  # encoder layers listed per key/value row; the heatmap shows them all


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


def _stacked_mix(weights: FusionWeights) -> np.ndarray:
    """Key rows then value rows, (2F, L_sel), float64 for the statistics."""
    return np.concatenate([weights.key_mix, weights.value_mix]).astype(np.float64)


def _check_same_layout(init: FusionWeights, final: FusionWeights) -> None:
    if (init.llm_layers, init.encoder_layers) != (final.llm_layers, final.encoder_layers):
        raise InspectError(f"the init record is of another model: llm_layers {init.llm_layers} and encoder_layers "
                           f"{init.encoder_layers} there, {final.llm_layers} and {final.encoder_layers} here")
    if (init.key_mix is None) != (final.key_mix is None):
        raise InspectError("one of the init record and the model has a layer mix, the other not")


def row_changes(init: FusionWeights, final: FusionWeights) -> dict[tuple[int, str], float]:
    """(LLM layer, "key" | "value") -> the row's root-mean-square change from its initialisation."""
    _check_same_layout(init, final)
    if final.key_mix is None:
        return {}
    change = np.sqrt(np.mean((_stacked_mix(final) - _stacked_mix(init)) ** 2, axis=1))
    n = len(final.llm_layers)
    return {(layer, kind): float(change[offset + i]) for offset, kind in ((0, "key"), (n, "value"))
            for i, layer in enumerate(final.llm_layers)}


def moved_rows(init: FusionWeights, final: FusionWeights) -> dict[tuple[int, str], float]:
    """The rows that moved beyond their initialisation spread, with their RMS change.

    "Moved": the row's root-mean-square change from its own initial values exceeds the initialisation spread (the
    standard deviation of every initial layer-mix weight). Why: the initial weights are random draws of that
    spread, so a row changed by less is still mostly its draw, and which encoder layers weigh most in it says more
    about the seed than about training; a row changed by more carries a pattern at least as large as the noise it
    started from."""
    spread = float(np.std(_stacked_mix(init))) if init.key_mix is not None else 0.0
    return {row: change for row, change in row_changes(init, final).items() if change > spread}


def movement(init: FusionWeights, final: FusionWeights) -> dict[str, Any]:
    """How far the fusion weights went from their initialisation: {"gates": {"init", "final"}, "layer_mix":
    {"init_spread", "final_spread", "init_bound", "within_init_bound", "moved_rows"}} ("layer_mix" is None for a
    model without one). Spread: the standard deviation of all layer-mix weights (key and value rows). Init bound:
    the largest |initial weight| (nn.Linear draws them uniformly within 1/sqrt(encoder layers)); within_init_bound:
    the share of final weights with |w| at most that bound. moved_rows: see `moved_rows`, sorted by layer."""
    _check_same_layout(init, final)
    gates = {"init": [float(g) for g in init.gates], "final": [float(g) for g in final.gates]}
    if final.key_mix is None:
        return {"gates": gates, "layer_mix": None}
    start, end = _stacked_mix(init), _stacked_mix(final)
    bound = float(np.abs(start).max())
    moved = moved_rows(init, final)
    order = sorted(moved, key=lambda row: (row[0], row[1] != "key"))
    return {"gates": gates, "layer_mix": {
        "init_spread": float(np.std(start)), "final_spread": float(np.std(end)), "init_bound": bound,
        "within_init_bound": float(np.mean(np.abs(end) <= bound)),
        "moved_rows": [{"llm_layer": layer, "input": kind, "rms_change": moved[(layer, kind)]}
                       for layer, kind in order]}}


def describe(weights: FusionWeights, top_k: int = TOP_K, init: FusionWeights | None = None) -> str:
    """A text report: one line per fused LLM layer with its gate (and its initial value, given `init`), and its
    strongest key/value encoder layers, listed only for rows that moved beyond their initialisation spread
    (`moved_rows`; without `init` nothing is known to have moved, so none are listed)."""
    k = min(top_k, len(weights.encoder_layers))
    moved = moved_rows(init, weights) if init is not None else {}
    lines = [f"{len(weights.llm_layers)} fused LLM layers; encoder layers mixed: {weights.encoder_layers}",
             f"gate: the scalar g_i scaling the fusion branch (0 = the bare LLM); key/value: the {k} encoder layers "
             "with the largest |layer-mix weight|, for rows that moved beyond their initialisation spread only"]
    if weights.key_mix is not None and init is None:
        lines.append(f"(no {FUSION_INIT}: the initial weights are unknown, so no row is known to have moved and no "
                     "top layers are listed; pass --init)")
    elif weights.key_mix is not None:
        change = movement(init, weights)["layer_mix"]
        lines.append(f"layer mix: spread {change['init_spread']:.3f} at init, now {change['final_spread']:.3f}; "
                     f"{100 * change['within_init_bound']:.0f} % of weights within the init bound "
                     f"{change['init_bound']:.3f}; {len(moved)} of {2 * len(weights.llm_layers)} rows moved")
    for row, (layer, gate) in enumerate(zip(weights.llm_layers, weights.gates, strict=True)):
        line = f"LLM layer {layer:>3}  gate {gate:+.4f}"
        if init is not None:
            line += f" (init {init.gates[row]:+.4f})"
        if weights.key_mix is not None:
            for kind, mix in (("key", weights.key_mix), ("value", weights.value_mix)):
                if (layer, kind) in moved:
                    line += f"  {kind} <- {_top(mix[row], weights.encoder_layers, top_k)}"
                elif init is not None:
                    line += f"  {kind}: within init noise"
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


def find_fusion_init(model_dir: str | Path) -> Path | None:
    """The `fusion_init.json` of the random initialisation behind `model_dir`: that of the stage that wrote it (its
    best/ or final/ sits in the stage's folder), or, for a stage that started from an earlier one (`init_from` in
    its train_config.yaml, read as training read it: relative to the working directory), that earlier stage's, back
    to the first. The first stage's start is the reference because later stages start from trained values, whose
    spread is not the initialisation's noise. None where the chain breaks."""
    import yaml

    folder = Path(model_dir)
    for _ in range(8):  # stages in a chain; more means a loop of init_from
        stage = next((d for d in (folder, folder.parent) if (d / FUSION_INIT).is_file()), None)
        if stage is None:
            return None
        config = stage / "train_config.yaml"
        init_from = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("init_from") \
            if config.is_file() else None
        if not init_from:
            return stage / FUSION_INIT
        folder = Path(init_from)
    return None


def cli_inspect(args: Any) -> int:
    """`layalign inspect MODEL [--init JSON] [--out PNG]`: print gates and layer-mix summary, write the PNG."""
    from layalign.pretrained import locate

    try:
        weights = load_fusion_weights(args.model)
        init_path = getattr(args, "init", None) or find_fusion_init(locate(args.model))
        init = read_fusion_init(init_path) if init_path else None
        print(describe(weights, init=init))
    except InspectError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if init_path:
        print(f"(initial weights from {init_path})")
    from layalign.pretrained import locate

    shipped = locate(args.model) != str(args.model)  # its folder is inside the installed package: write here instead
    default = Path(f"{args.model}-{DEFAULT_PNG}") if shipped else Path(args.model) / DEFAULT_PNG
    out = Path(args.out) if args.out else default
    if out.is_dir():
        out = out / DEFAULT_PNG
    print(f"\nwrote {plot(weights, out)}")
    return 0


def write_diagnostics(model_dir: str | Path | None, init_json: str | Path | None,
                      with_gates_dir: str | Path | None, zero_gates_dir: str | Path | None,
                      out_json: str | Path) -> dict[str, Any]:
    """The fusion's diagnostics in one JSON file: {"gates", "layer_mix"} (`movement` of the model in `model_dir`
    against `init_json`) and "zero_gates" (`layalign.evaluation.divergence.compare_choice_runs` of the evaluation
    folders with and without the gates). A part whose arguments are None is null (the gates part keeps whichever
    of init and final is known). Returns what it wrote."""
    final = load_fusion_weights(model_dir) if model_dir is not None else None
    init = read_fusion_init(init_json) if init_json is not None else None
    if final is not None and init is not None:
        result = movement(init, final)
    else:
        known = {"init": init, "final": final}
        result = {"gates": None if final is None and init is None else
                  {k: None if w is None else [float(g) for g in w.gates] for k, w in known.items()},
                  "layer_mix": None}
    result["zero_gates"] = None
    if with_gates_dir is not None and zero_gates_dir is not None:
        from layalign.evaluation.divergence import compare_choice_runs

        result["zero_gates"] = compare_choice_runs(with_gates_dir, zero_gates_dir)
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result
