"""The export of a trained directory for vLLM and the `layalign serve` command line: no vLLM needed (main suite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from layalign.cli import main
from layalign.integrations.vllm import ARCHITECTURE
from layalign.integrations.vllm.export import export
from layalign.integrations.vllm.serving import serve_command
from layalign.model.config import ADAPTER_NAME, LayAlignConfig

pytestmark = pytest.mark.real  # reads the default LLM's config.json from the model cache


def _trained_dir(tmp_path, **overrides):
    config = LayAlignConfig(encoder_layers=list(range(12)), llm_layers=list(range(30)), **overrides)
    config.extra["shapes"] = {"encoder_layers": 12, "encoder_width": 384, "llm_layers": 30, "llm_width": 576}
    config.save(tmp_path)
    save_file({"gates": torch.zeros(30)}, tmp_path / ADAPTER_NAME)
    return tmp_path


def test_export_writes_a_config_vllm_loads_and_links_the_llm(tmp_path):
    out = export(_trained_dir(tmp_path / "model"), tmp_path / "vllm", prompt_template="Q: {query}\nA:")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [ARCHITECTURE] and config["is_encoder_decoder"] is True
    assert config["model_type"] == "llama" and config["decoder_start_token_id"] == config["bos_token_id"]
    block = config["layalign"]
    assert block["config"]["llm_layers"] == list(range(30)) and block["prompt_template"] == "Q: {query}\nA:"
    assert (out / ADAPTER_NAME).is_file() and not (out / ADAPTER_NAME).is_symlink()
    assert (out / "model.safetensors").is_symlink() and (out / "tokenizer.json").is_symlink()


def test_export_in_place_keeps_the_trained_files(tmp_path):
    model = _trained_dir(tmp_path)
    before = (model / ADAPTER_NAME).read_bytes()
    assert export(model, model) == model
    assert (model / "config.json").is_file() and (model / ADAPTER_NAME).read_bytes() == before
    assert LayAlignConfig.load(model).llm_layers == list(range(30))


def test_export_of_a_shipped_model_by_name_writes_outside_the_package(tmp_path, monkeypatch):
    from layalign.pretrained import shipped_models

    name = "layalign-xnli-e5-smollm2"
    monkeypatch.chdir(tmp_path)
    out = export(name)
    assert out == Path(f"{name}-vllm") and (tmp_path / out / ADAPTER_NAME).is_file()
    assert not (shipped_models()[name] / "vllm").exists()
    assert json.loads((out / "config.json").read_text())["layalign"]["trained_dir"] == str(shipped_models()[name])


def test_export_refuses_a_fusion_dtype_vllm_cannot_keep(tmp_path):
    with pytest.raises(NotImplementedError, match="fusion_dtype"):
        export(_trained_dir(tmp_path, fusion_dtype="bfloat16"))


def test_serve_dry_run_prints_the_server_command(tmp_path, capsys):
    model = _trained_dir(tmp_path / "model")
    code = main(["serve", str(model), "--python", "python", "--dry-run", "--vllm-args", "--port 8001"])
    assert code in (0, 1)  # 1: this interpreter has no vLLM (the main environment), reported in one line
    err = capsys.readouterr().err
    if code == 0:
        assert err.strip() == " ".join(serve_command(model / "vllm", "float32", "python", ["--port", "8001"]))
    else:
        assert "cannot import vllm" in err


@pytest.mark.parametrize(("model_type", "extra", "cause"), [
    ("qwen3", {}, "q_norm / k_norm"),
    ("gemma3_text", {}, "sliding-window and global"),
    ("phi3", {}, "no vLLM decoder layer"),
    ("qwen2", {"use_sliding_window": True}, "sliding-window attention in some layers"),
])
def test_export_refuses_unserved_decoders_naming_the_reason(tmp_path, model_type, extra, cause):
    llm = tmp_path / "llm"
    llm.mkdir()
    (llm / "config.json").write_text(json.dumps({"model_type": model_type, "bos_token_id": 1, **extra}))
    with pytest.raises(NotImplementedError, match=cause):
        export(_trained_dir(tmp_path / "model", llm=str(llm)))


def test_export_refuses_mapping_none(tmp_path):
    with pytest.raises(NotImplementedError, match="mapping 'none' is not served"):
        export(_trained_dir(tmp_path, mapping="none"))
