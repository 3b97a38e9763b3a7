"""A trained LayAlign directory -> a directory vLLM loads (`vllm serve OUT`, `vllm.LLM(OUT)`).

A trained directory holds only layalign_config.json and adapter.safetensors; vLLM wants a config.json naming an
architecture, a checkpoint and a tokenizer. The export writes

    config.json           the LLM's own config + architectures ["LayAlignForConditionalGeneration"],
                          is_encoder_decoder (vLLM's cross-attention cache and encoder step) and a `layalign`
                          block: the LayAlignConfig, bos and the placeholder token id
    adapter.safetensors   a copy of the trained tensors (a few MB)
    the LLM's checkpoint and tokenizer files, as symbolic links into the model cache (never copies)

The encoder is not part of it: the model loads it by its reference (layalign.backbones), as LayAlignModel does.
No weights are converted, so the export takes well under a second.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from layalign.backbones.loading import resolve
from layalign.integrations.vllm import ARCHITECTURE
from layalign.model.config import ADAPTER_NAME, CONFIG_NAME, LayAlignConfig
from layalign.pretrained import locate

# decoder families served: vLLM's own decoder layer of each, with the fusion branch added (model.py, FAMILIES)
SERVED_FAMILIES = ("llama", "mistral", "qwen2")
# the families this library trains with that are not served, and why
REFUSED_FAMILIES = {
    "qwen3": "its attention normalises q and k per head before rotary (q_norm / k_norm), which the fusion branch "
             "would have to follow; not built or parity-tested",
    "gemma3_text": "its layers alternate sliding-window and global attention, normalise q and k, and its embeddings "
                   "are scaled by sqrt(hidden size), none of which the served decoder follows yet; not built or "
                   "parity-tested",
}
_NOT_LINKED = {"config.json", "layalign_entry.json", CONFIG_NAME, ADAPTER_NAME}


def refuse_unserved(llm_config: dict, config: LayAlignConfig) -> None:
    """Raise NotImplementedError, naming the reason, for what the plugin does not serve (the export and the vLLM
    model both ask): a decoder family outside SERVED_FAMILIES, sliding-window layers, mapping "none"."""
    family = llm_config.get("model_type")
    if family not in SERVED_FAMILIES:
        why = REFUSED_FAMILIES.get(family, "no vLLM decoder layer for it in the plugin")
        raise NotImplementedError(f"the vLLM plugin serves {', '.join(SERVED_FAMILIES)} decoders; {config.llm} is "
                                  f"{family!r}: {why}")
    if "sliding_attention" in (llm_config.get("layer_types") or []) or llm_config.get("use_sliding_window"):
        raise NotImplementedError(f"{config.llm} uses sliding-window attention in some layers; vLLM's {family} layer "
                                  "as the plugin builds it attends to the whole sequence")
    if config.mapping == "none":
        raise NotImplementedError("mapping 'none' is not served: without soft tokens a request's decoder prompt "
                                  "carries no key to pair it with its own encoder output (model.py)")


def export(model_dir: str | Path, out: str | Path | None = None, prompt_template: str | None = None) -> Path:
    """Write the vLLM directory for `model_dir` (default: `model_dir`/vllm; `out=model_dir` writes it in place, so
    that `vllm serve model_dir` works on the trained directory itself) and return its path. `model_dir` may be the
    name of a model shipped with the package; its default output is then `<name>-vllm` in the working directory
    (the package's folder is not written to). `prompt_template` ("{query}" by default) is what the OpenAI-API
    renderer puts around a request's text (serving.py)."""
    name, model_dir = str(model_dir), Path(locate(model_dir))
    default_out = Path(f"{name}-vllm") if str(model_dir) != name else model_dir / "vllm"
    config = LayAlignConfig.load(model_dir)
    if not (model_dir / ADAPTER_NAME).is_file():
        raise FileNotFoundError(f"{model_dir} has no {ADAPTER_NAME}")
    if not config.extra.get("shapes") or config.encoder_layers is None or config.llm_layers is None:
        raise ValueError(f"{model_dir} was saved without its resolved layers and shapes; load and save it again "
                         "with LayAlignModel (from_pretrained / save_pretrained)")
    llm_dir = Path(resolve(config.llm))
    llm_config = json.loads((llm_dir / "config.json").read_text(encoding="utf-8"))
    refuse_unserved(llm_config, config)
    if config.fusion_dtype not in ("auto", config.dtype):
        raise NotImplementedError("vLLM keeps the fusion K/V in its KV cache, in the model's dtype: fusion_dtype "
                                  f"{config.fusion_dtype!r} differs from dtype {config.dtype!r}")
    bos = config.bos_token_id if config.bos_token_id is not None else llm_config.get("bos_token_id")
    if bos is None:
        raise ValueError("the LLM's config has no bos_token_id; set LayAlignConfig.bos_token_id")
    placeholder = llm_config.get("pad_token_id")
    placeholder = 0 if placeholder is None else int(placeholder)  # any id in the vocabulary: it is replaced

    out = Path(out) if out is not None else default_out
    out.mkdir(parents=True, exist_ok=True)
    vllm_config = {
        **llm_config,
        "architectures": [ARCHITECTURE],
        "is_encoder_decoder": True,
        "decoder_start_token_id": int(bos),
        "dtype": config.dtype,
        "layalign": {"config": config.to_dict(), "bos_token_id": int(bos), "placeholder_token_id": placeholder,
                     "prompt_template": prompt_template or "{query}", "trained_dir": str(model_dir.resolve())},
    }
    (out / "config.json").write_text(json.dumps(vllm_config, indent=2) + "\n", encoding="utf-8")
    if (out / ADAPTER_NAME).resolve() != (model_dir / ADAPTER_NAME).resolve():  # out = model_dir: in place
        shutil.copyfile(model_dir / ADAPTER_NAME, out / ADAPTER_NAME)
    for source in sorted(llm_dir.iterdir()):
        if source.name in _NOT_LINKED or not source.is_file():
            continue
        link = out / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source.resolve())
    return out
