"""`layalign inspect` on a fake model directory written with safetensors."""

import json

import pytest
import torch
from safetensors.torch import save_file

from layalign.cli import main
from layalign.inspection import load_fusion_weights

LLM_LAYERS = [0, 1, 2, 3]
ENCODER_LAYERS = [0, 2, 4, 6, 8]


def write_model(path, fusion=True, mix_shape=None, dtype=torch.float32):
    path.mkdir(parents=True, exist_ok=True)
    config = {"variant": "layalign" if fusion else "mindmerger", "fusion": fusion,
              "encoder_layers": ENCODER_LAYERS if fusion else None, "llm_layers": LLM_LAYERS if fusion else None}
    (path / "layalign_config.json").write_text(json.dumps(config), encoding="utf-8")
    tensors = {"mapping.mlp.linear1.weight": torch.zeros(8, 4), "boundary": torch.zeros(1, 1, 4)}
    if fusion:
        f, l_sel = len(LLM_LAYERS), len(ENCODER_LAYERS)
        tensors["gates"] = torch.tensor([0.5, -0.25, 0.0, 0.125], dtype=dtype)
        mix = torch.zeros(mix_shape or (2 * f, l_sel))
        if mix_shape is None:
            for i in range(f):
                mix[2 * i, i] = 1.0  # layer i's key mostly from encoder column i
                mix[2 * i + 1, l_sel - 1] = -2.0  # every value mostly from the last column, negatively
        tensors["aligner.layer_mix.weight"] = mix.to(dtype)
        tensors["aligner.layer_mix.bias"] = torch.zeros(2 * f)
    save_file(tensors, path / "adapter.safetensors")
    return path


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inspect_prints_gates_and_writes_png(tmp_path, capsys, dtype):
    model = write_model(tmp_path / "model", dtype=dtype)
    assert main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    assert "LLM layer   0  gate +0.5000" in out
    assert "LLM layer   1  gate -0.2500" in out
    assert "LLM layer   3  gate +0.1250" in out
    # no fusion_init.json beside it: nothing is known to have moved, so no top encoder layers are read
    assert "LLM layer   2  gate +0.0000\n" in out and "<-" not in out and "no fusion_init.json" in out
    png = model / "inspect.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_inspect_key_value_rows_are_interleaved(tmp_path):
    weights = load_fusion_weights(write_model(tmp_path / "m"))
    assert weights.key_mix.shape == weights.value_mix.shape == (4, 5)
    assert weights.key_mix[1, 1] == 1.0 and weights.value_mix[1, 4] == -2.0 and weights.key_mix[1, 4] == 0.0


def test_inspect_out_path(tmp_path):
    model = write_model(tmp_path / "model")
    assert main(["inspect", str(model), "--out", str(tmp_path / "plots" / "mix.png")]) == 0
    assert (tmp_path / "plots" / "mix.png").is_file()
    (tmp_path / "dir").mkdir()
    assert main(["inspect", str(model), "--out", str(tmp_path / "dir")]) == 0
    assert (tmp_path / "dir" / "inspect.png").is_file()


def test_not_a_layalign_directory(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a LayAlign model directory" in err and "layalign_config.json" in err


def test_model_without_fusion_says_what_is_there(tmp_path, capsys):
    model = write_model(tmp_path / "mm", fusion=False)
    assert main(["inspect", str(model)]) == 2
    err = capsys.readouterr().err
    assert "no layer-wise fusion" in err
    assert "variant: mindmerger" in err and "mapping.mlp.linear1.weight: (8, 4)" in err
    assert not (model / "inspect.png").exists()


def test_layer_mix_of_the_wrong_shape(tmp_path, capsys):
    model = write_model(tmp_path / "bad", mix_shape=(4, 5))
    assert main(["inspect", str(model)]) == 2
    assert "expected (8, 5)" in capsys.readouterr().err
