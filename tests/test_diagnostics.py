"""Diagnostics of the fusion: a stage stores its fusion weights as they start (and a rebuild without training gives
the same record), `evaluate --zero-gates` removes exactly the branch's contribution, the KL and movement maths,
`write_diagnostics`, and `inspect` listing top encoder layers only for rows that moved."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from layalign.cli import main
from layalign.evaluation.divergence import answer_distribution, compare_choice_runs, kl_divergence
from layalign.inspection import (
    FUSION_INIT,
    FusionWeights,
    InspectError,
    describe,
    find_fusion_init,
    moved_rows,
    movement,
    read_fusion_init,
    write_diagnostics,
)
from layalign.model import fusion
from layalign.model.config import LayAlignConfig
from layalign.model.modeling import LayAlignModel
from layalign.systems import choice_logprobs, load_system
from layalign.testing import randomize_adapters
from layalign.training import train
from layalign.training.loop import initial_fusion_weights
from training_helpers import DATA, XNLI, adapters, recipe, save_tiny_pair

CHOICES = ("entailment", "neutral", "contradiction")


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    return save_tiny_pair(tmp_path_factory.mktemp("tiny"))


# ------------------------------------------------------------------ fusion_init.json


def test_a_stage_stores_its_initial_fusion_weights_and_a_rebuild_reproduces_them(pair, tmp_path):
    config = recipe(pair, tmp_path / "run", max_steps=4, seed=3, dev_size=8)
    out = train(config)
    stored = json.loads((out / FUSION_INIT).read_text())
    # the rebuild draws what setup drew (seed, then the model; the readers have their own generators)
    assert initial_fusion_weights(config).as_record() == stored
    assert stored["gates"] == [0.0] * len(stored["llm_layers"])
    # before the first step, not after: the trained layer mix differs from the record (it gets no gradient while
    # the gates are still zero, so it changes from the second step on)
    mix = adapters(out / "final")["aligner.layer_mix.weight"].numpy()
    assert not np.array_equal(mix[0::2], np.asarray(stored["key_mix"], dtype=np.float32))
    # another seed draws another initialisation
    other = initial_fusion_weights(recipe(pair, tmp_path / "other", seed=4)).as_record()
    assert other["key_mix"] != stored["key_mix"]


def test_a_later_stage_records_the_weights_it_starts_from(pair, tmp_path):
    first = train(recipe(pair, tmp_path / "s1", max_steps=2, seed=1))
    second = train(recipe(pair, tmp_path / "s2", stage="task", model={}, init_from=str(first), train_data=[XNLI],
                          max_steps=1, seed=1))
    record = read_fusion_init(second)
    trained = adapters(first / "final")
    assert np.array_equal(record.gates, trained["gates"].numpy())
    assert np.array_equal(record.value_mix, trained["aligner.layer_mix.weight"].numpy()[1::2])
    # inspect measures movement from the random initialisation: the first stage's record, through init_from
    assert find_fusion_init(second / "final") == first / FUSION_INIT
    assert find_fusion_init(first / "final") == first / FUSION_INIT
    (first / FUSION_INIT).unlink()
    assert find_fusion_init(second / "final") is None  # the chain is broken: no reference, rather than a wrong one


def test_a_model_without_gates_stores_no_fusion_init(pair, tmp_path):
    out = train(recipe(pair, tmp_path / "mm", model={**pair, "variant": "mindmerger"}, max_steps=1))
    assert not (out / FUSION_INIT).exists()


# ------------------------------------------------------------------ evaluate --zero-gates


def saved_model(pair, path, variant="layalign"):
    model = LayAlignModel(LayAlignConfig(**pair, variant=variant))
    randomize_adapters(model, scale=0.5, seed=7)
    model.save_pretrained(path)
    return path


def run_cli(model_dir, out, *extra):
    return main(["evaluate", "--model", str(model_dir), "--benchmark", "xnli", "--data", str(DATA / "xnli" / "dev"),
                 "--langs", "en", "sw", "--limit", "3", "--batch-size", "2", "--scoring", "choices", "--device",
                 "cpu", "--out", str(out), *extra])


def test_zero_gates_removes_exactly_the_branch(pair, tmp_path):
    model_dir = saved_model(pair, tmp_path / "m")
    zeroed = load_system(str(model_dir), device="cpu", zero_gates=True)
    assert zeroed.zero_gates and torch.count_nonzero(zeroed.model.gates) == 0
    sources, prompts = ["a premise", "another, longer premise"], ["Label:", "Label: "]
    scores = zeroed.score_choices(sources, prompts, list(CHOICES))
    # the same prefix with no fusion state at all: the bare LLM reading the mapped encoder output
    batch = zeroed.processor(sources, prompts)
    inputs, _ = zeroed.model.prompt_inputs(**batch)
    prefix = {"inputs_embeds": inputs.embeds, "attention_mask": inputs.attention_mask,
              "position_ids": inputs.position_ids}
    with torch.no_grad(), fusion.active(None):
        bare = choice_logprobs(zeroed.model.llm, prefix, [zeroed.processor._llm_ids(c) for c in CHOICES])
    assert scores == bare
    with_gates = load_system(str(model_dir), device="cpu")
    assert not with_gates.zero_gates and with_gates.score_choices(sources, prompts, list(CHOICES)) != scores


def test_evaluate_zero_gates_is_recorded_and_not_mixed_with_a_gated_run(pair, tmp_path, capsys):
    model_dir = saved_model(pair, tmp_path / "m")
    assert run_cli(model_dir, tmp_path / "zero", "--zero-gates") == 0
    assert json.loads((tmp_path / "zero" / "run.json").read_text())["zero_gates"] is True
    assert run_cli(model_dir, tmp_path / "with") == 0
    assert json.loads((tmp_path / "with" / "run.json").read_text())["zero_gates"] is False
    capsys.readouterr()
    assert run_cli(model_dir, tmp_path / "zero") == 2  # resuming the zero-gates folder with the gates: refused
    assert "zero_gates: True there, False now" in capsys.readouterr().err
    result = compare_choice_runs(tmp_path / "with", tmp_path / "zero")
    assert result["rows"] == 6 and result["scoring"] == "choices" and result["mean_kl"] > 0


def test_zero_gates_on_a_model_without_gates_is_a_one_line_error(pair, tmp_path, capsys):
    model_dir = saved_model(pair, tmp_path / "mm", variant="mindmerger")
    assert run_cli(model_dir, tmp_path / "out", "--zero-gates") == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # (the lines before it: the backbones' loading bars)
    assert last.startswith("layalign evaluate: error: --zero-gates needs a model with fusion gates;")
    assert run_cli(f"llm:{pair['llm']}", tmp_path / "out2", "--zero-gates") == 2


# ------------------------------------------------------------------ KL and the comparison of two choice runs


def test_kl_divergence_of_answer_distributions():
    p = {"a": math.log(0.5), "b": math.log(0.5)}
    q = {"a": math.log(0.25) - 3.0, "b": math.log(0.75) - 3.0}  # a shift changes nothing: softmax over the choices
    assert answer_distribution(q) == pytest.approx({"a": 0.25, "b": 0.75}, abs=1e-15)
    assert kl_divergence(p, q) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-15)
    assert kl_divergence(q, q) == 0.0
    assert kl_divergence(p, q) != pytest.approx(kl_divergence(q, p))  # not symmetric: the order is KL(with || zero)
    with pytest.raises(ValueError, match="different choices"):
        kl_divergence(p, {"a": 0.0, "c": 0.0})


def write_run(path, rows, scoring="choices"):
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"benchmark": "xnli", "scoring": scoring}))
    (path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(i, logprobs, gold="neutral"):
    output = max(logprobs, key=logprobs.get)
    return {"id": f"x-{i}", "lang": "en", "output": output, "correct": output == gold, "gold": gold,
            "choice_logprobs": logprobs}


def test_compare_choice_runs(tmp_path):
    sure = {"entailment": -3.0, "neutral": -0.1, "contradiction": -3.0}
    flat = {"entailment": -1.0, "neutral": -1.5, "contradiction": -1.2}
    a = write_run(tmp_path / "a", [row(0, sure), row(1, sure), row(2, flat), row(3, flat), row(4, sure)])
    b = write_run(tmp_path / "b", [row(3, flat), row(2, flat), row(1, flat), row(0, sure)])  # order is free
    result = compare_choice_runs(a, b)  # over b's 4 rows: a's row 4 has no partner
    assert result == {"scoring": "choices", "rows": 4, "accuracy_with_gates": 50.0, "accuracy_zero_gates": 25.0,
                      "accuracy_diff": 25.0, "mean_kl": pytest.approx(kl_divergence(sure, flat) / 4, abs=1e-15),
                      "changed": 1}


def test_compare_choice_runs_refuses_what_it_cannot_compare(tmp_path):
    sure = {"entailment": -3.0, "neutral": -0.1, "contradiction": -3.0}
    a = write_run(tmp_path / "a", [row(0, sure), row(1, sure)])
    with pytest.raises(ValueError, match="holds 1 examples that .* does not .e.g. en x-2"):
        compare_choice_runs(a, write_run(tmp_path / "b", [row(0, sure), row(2, sure)]))
    with pytest.raises(ValueError, match="holds no predictions"):
        compare_choice_runs(a, write_run(tmp_path / "empty", []))
    with pytest.raises(ValueError, match="scored by 'generate'"):
        compare_choice_runs(a, write_run(tmp_path / "g", [row(0, sure), row(1, sure)], scoring="generate"))
    bare = {k: v for k, v in row(1, sure).items() if k != "choice_logprobs"}
    with pytest.raises(ValueError, match="predictions.jsonl: row 2 has no choice_logprobs"):
        compare_choice_runs(a, write_run(tmp_path / "c", [row(0, sure), bare]))


# ------------------------------------------------------------------ movement, describe, write_diagnostics


def weights(gates, key_mix, value_mix):
    return FusionWeights([0, 1], [0, 3, 6], np.asarray(gates, np.float32), np.asarray(key_mix, np.float32),
                         np.asarray(value_mix, np.float32))


# init: every weight +-0.5 (spread 0.5, bound 0.5); final: layer 1's key row moved by 0.75 RMS (> 0.5), layer 0's
# value row by 0.25 (within the noise), the rest unchanged
INIT = weights([0.0, 0.0], [[0.5, -0.5, 0.5], [-0.5, 0.5, -0.5]], [[0.5, 0.5, -0.5], [-0.5, -0.5, 0.5]])
FINAL = weights([0.125, -0.25], [[0.5, -0.5, 0.5], [0.25, 1.25, -1.25]], [[0.75, 0.75, -0.25], [-0.5, -0.5, 0.5]])


def test_movement_against_the_initialisation():
    assert moved_rows(INIT, FINAL) == {(1, "key"): 0.75}
    result = movement(INIT, FINAL)
    assert result["gates"] == {"init": [0.0, 0.0], "final": [0.125, -0.25]}
    final = np.asarray(FINAL.key_mix.tolist() + FINAL.value_mix.tolist(), dtype=np.float64)
    assert result["layer_mix"] == {"init_spread": 0.5, "final_spread": float(np.std(final)), "init_bound": 0.5,
                                   "within_init_bound": 8 / 12,  # 1.25, -1.25 and both 0.75 are outside
                                   "moved_rows": [{"llm_layer": 1, "input": "key", "rms_change": 0.75}]}
    with pytest.raises(InspectError, match="another model"):
        movement(FusionWeights([0, 2], [0, 3, 6], INIT.gates, INIT.key_mix, INIT.value_mix), FINAL)


def test_describe_lists_top_layers_only_for_rows_that_moved():
    text = describe(FINAL, init=INIT).splitlines()
    assert text[2] == ("layer mix: spread 0.500 at init, now 0.688; 67 % of weights within the init bound 0.500; "
                       "1 of 4 rows moved")
    assert text[3] == "LLM layer   0  gate +0.1250 (init +0.0000)  key: within init noise  value: within init noise"
    assert text[4] == ("LLM layer   1  gate -0.2500 (init +0.0000)  key <- enc 3 (+1.250), enc 6 (-1.250), "
                       "enc 0 (+0.250)  value: within init noise")
    unknown = describe(FINAL)
    assert "no fusion_init.json" in unknown and "<-" not in unknown


def test_write_diagnostics(tmp_path):
    from test_inspect import write_model  # a model directory with the usual 4 fused layers and 5 encoder layers

    model_dir = write_model(tmp_path / "model")
    final = read_model_weights(model_dir)
    init = FusionWeights(final.llm_layers, final.encoder_layers, np.zeros(4, np.float32),
                         np.full((4, 5), 0.1, np.float32), np.full((4, 5), -0.1, np.float32))
    (tmp_path / FUSION_INIT).write_text(json.dumps(init.as_record()))
    sure = {"entailment": -3.0, "neutral": -0.1, "contradiction": -3.0}
    flat = {"entailment": -1.0, "neutral": -1.5, "contradiction": -1.2}
    a, b = write_run(tmp_path / "a", [row(0, sure)]), write_run(tmp_path / "b", [row(0, flat)])
    out = tmp_path / "d" / "diagnostics.json"
    written = write_diagnostics(model_dir, tmp_path / FUSION_INIT, a, b, out)
    assert json.loads(out.read_text()) == written
    assert written["gates"] == {"init": [0.0] * 4, "final": [0.5, -0.25, 0.0, 0.125]}
    assert written["layer_mix"] == movement(init, final)["layer_mix"]
    assert written["zero_gates"] == compare_choice_runs(a, b)
    partial = write_diagnostics(model_dir, None, None, b, out)
    assert partial == {"gates": {"init": None, "final": [0.5, -0.25, 0.0, 0.125]}, "layer_mix": None,
                       "zero_gates": None}
    assert write_diagnostics(None, None, None, None, out) == {"gates": None, "layer_mix": None, "zero_gates": None}


def read_model_weights(model_dir):
    from layalign.inspection import load_fusion_weights

    return load_fusion_weights(model_dir)


def test_inspect_cli_reads_the_stage_record_or_init(tmp_path, capsys):
    from test_inspect import write_model

    stage = tmp_path / "stage"
    model_dir = write_model(stage / "best")
    final = read_model_weights(model_dir)
    # layer 2's key row is the only one far from this init (RMS change 4 / sqrt(5) = 1.79, init spread 0.81):
    # every other row equals it
    key, value = final.key_mix.copy(), final.value_mix.copy()
    key[2, 2] = -3.0
    init = FusionWeights(final.llm_layers, final.encoder_layers, np.zeros(4, np.float32), key, value)
    (stage / FUSION_INIT).write_text(json.dumps(init.as_record()))
    assert main(["inspect", str(model_dir), "--out", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "LLM layer   2  gate +0.0000 (init +0.0000)  key <- enc 4 (+1.000)" in out
    assert out.count("<-") == 1 and f"initial weights from {stage / FUSION_INIT}" in out
    (tmp_path / "bad.json").write_text("{\n  oops")
    assert main(["inspect", str(model_dir), "--init", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: line 2 is not valid JSON" in capsys.readouterr().err
