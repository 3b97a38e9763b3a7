"""The "LLM only, fine-tuned" baseline (model.variant=llm-lora): with LoRA's B at zero it is the bare LLM exactly;
it learns; it saves and loads (also through peft itself); `layalign train` and `layalign evaluate` run it; a killed
run resumes exactly; without peft the error says how to install it. Tiny random models, real data."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from layalign.cli import main as cli
from layalign.model.lora import PEFT_ADAPTER_NAME, LLMLoRAModel, LoRAConfig
from layalign.model.processing import LayAlignProcessor
from layalign.testing import tiny_llm
from layalign.training import TrainConfig, load_model, train
from model_inputs import PROMPTS, SOURCES, TARGETS, TOK
from training_helpers import DATA, XNLI, log, recipe, save_tiny_pair


def lora_model(**settings) -> LLMLoRAModel:
    return LLMLoRAModel(LoRAConfig(llm="tiny", **settings), llm=tiny_llm("llama"), llm_tokenizer=TOK)


def processor(model: LLMLoRAModel) -> LayAlignProcessor:
    return LayAlignProcessor.from_model(model)


def randomize_b(model: LLMLoRAModel, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))


def lora_recipe(pair: dict[str, str], out, **settings) -> TrainConfig:
    """The task stage on XNLI for the tiny LLM; the encoder key stays in `model`, as when a fused system's recipe
    is run with model.variant=llm-lora."""
    base = dict(stage="task", model={**pair, "variant": "llm-lora"}, train_data=[XNLI], max_prompt_length=96,
                max_target_length=8)
    return recipe(pair, out, **{**base, **settings})


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    return save_tiny_pair(tmp_path_factory.mktemp("tiny"))


def test_with_b_at_zero_it_is_the_bare_llm_exactly():
    bare = tiny_llm("llama")
    model = lora_model().train()  # LoRA dropout active: it multiplies into B = 0 all the same
    assert model.num_trainable_parameters() > 0
    assert all("lora_" in name for name, p in model.named_parameters() if p.requires_grad)
    bos = bare.config.bos_token_id
    for prompt, target in zip(PROMPTS, TARGETS, strict=True):
        batch = processor(model)([prompt], [prompt], [target])
        ids = torch.cat([torch.tensor([[bos]]), batch["prompt_input_ids"], batch["labels"]], dim=1)
        targets = batch["labels"][0]
        with torch.no_grad():
            # without labels: the logits over [bos][prompt]; with labels: the loss on the target tokens
            prompt_only = bare(ids[:, : -len(targets)]).logits
            got = model(**{k: v for k, v in batch.items() if not k.startswith("labels")}).logits
            expected = bare(ids, logits_to_keep=len(targets) + 1).logits
            loss = model(**batch).loss
        assert torch.equal(got, prompt_only)
        assert torch.equal(loss, torch.nn.functional.cross_entropy(expected[0, :-1], targets))


def test_a_few_steps_lower_the_loss():
    model = lora_model().train()
    batch = processor(model)(SOURCES, PROMPTS, TARGETS)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(8):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.3


def test_prompts_of_different_lengths_batch_like_alone():
    model = lora_model().eval()  # no LoRA dropout
    randomize_b(model)
    make = processor(model)
    with torch.no_grad():
        together = model(**make(SOURCES, PROMPTS, TARGETS))
        alone = [model(**make([s], [p], [t])) for s, p, t in zip(SOURCES, PROMPTS, TARGETS, strict=True)]
    expected = sum(float(o.loss) * o.num_target_tokens for o in alone) / sum(o.num_target_tokens for o in alone)
    assert float(together.loss) == pytest.approx(expected, abs=1e-5)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # peft reads the old name
def test_save_then_load_gives_the_same_outputs_also_through_peft(tmp_path):
    from peft import PeftModel

    model = lora_model(rank=4, alpha=8).eval()
    randomize_b(model)
    batch = processor(model)(SOURCES, PROMPTS, TARGETS)
    with torch.no_grad():
        before = model(**batch).logits
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "layalign_config.json").read_text())
    assert config["variant"] == "llm-lora" and config["rank"] == 4
    assert {"adapter_config.json", PEFT_ADAPTER_NAME} <= {p.name for p in tmp_path.iterdir()}
    loaded = LLMLoRAModel.from_pretrained(tmp_path, llm=tiny_llm("llama"), llm_tokenizer=TOK).eval()
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, before)
        merged = loaded.merged_llm()  # what evaluation runs
        through_peft = PeftModel.from_pretrained(tiny_llm("llama"), str(tmp_path))
        ids = torch.tensor([[1, *TOK("Premise: x\nLabel:", add_special_tokens=False).input_ids]])
        torch.testing.assert_close(merged(ids).logits, through_peft(input_ids=ids).logits, rtol=0, atol=1e-5)
    saved = load_file(tmp_path / PEFT_ADAPTER_NAME)
    with pytest.raises(ValueError, match="has shape"):
        lora_model(rank=2).load_adapter_state_dict(saved)
    with pytest.raises(ValueError, match="does not fit"):
        lora_model(target_modules=["q_proj"]).load_adapter_state_dict(saved)


def test_it_needs_the_llm_prompt():
    model = lora_model()
    batch = processor(model)(SOURCES, None, TARGETS)  # the translation stage gives no prompt
    with pytest.raises(ValueError, match="task stage"):
        model(**batch)


def test_gradient_checkpointing_gives_the_same_gradients():
    def grads(checkpointing: bool) -> dict[str, torch.Tensor]:
        model = lora_model(dropout=0.0)
        randomize_b(model)
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.train()
        model(**processor(model)(SOURCES, PROMPTS, TARGETS)).loss.backward()
        return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    plain, checkpointed = grads(False), grads(True)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7)


def test_train_and_evaluate_from_the_cli(pair, tmp_path):
    from layalign.systems import LLMOnlySystem, load_system

    stage = tmp_path / "xnli-task-lora.yaml"
    stage.write_text(yaml.safe_dump(lora_recipe(pair, tmp_path / "run", dev_size=8).to_dict()))
    assert cli(["train", "--config", str(stage), "max_steps=4", "learning_rate=0.005"]) == 0
    final = tmp_path / "run" / "final"
    assert json.loads((final / "layalign_config.json").read_text())["extra"]["lengths"]["max_prompt_length"] == 96
    assert len([r for r in log(tmp_path / "run") if "loss" in r]) == 4
    trained = load_file(final / PEFT_ADAPTER_NAME)
    assert any("lora_B" in k and bool(v.abs().sum()) for k, v in trained.items())  # it moved off the bare LLM

    system = load_system(str(final), device="cpu")
    assert isinstance(system, LLMOnlySystem) and system.max_prompt_length == 96
    scores = system.score_choices(["x"], ["Premise: a\nHypothesis: b\nLabel:"], ["entailment", "neutral"])
    assert len(scores[0]) == 2 and all(s < 0 for s in scores[0])
    assert isinstance(system.generate(["x"], ["Premise: a\nHypothesis: b\nLabel:"], max_new_tokens=3)[0], str)
    out = tmp_path / "eval"
    assert cli(["evaluate", "--model", str(final), "--benchmark", "xnli", "--scoring", "choices", "--langs", "en",
                "sw", "--limit", "3", "--data", str(DATA / "xnli"), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["system"].startswith("LLM only + LoRA")
    assert sum(1 for _ in (out / "predictions.jsonl").open()) == 6

    # the next stage may start from it (init_from), and a fused model cannot silently stand in for it
    following = lora_recipe(pair, tmp_path / "next", init_from=str(tmp_path / "run"),
                            model={**pair, "variant": "llm-lora", "encoder_dropout": True})  # encoder-side: dropped
    assert isinstance(load_model(following), LLMLoRAModel)
    fused = tmp_path / "fused"
    fused.mkdir()
    (fused / "layalign_config.json").write_text(json.dumps({"variant": "layalign"}))
    with pytest.raises(ValueError, match="not an llm-lora model"):
        load_model(lora_recipe(pair, tmp_path / "next", init_from=str(fused)))


def test_zero_b_system_scores_like_the_bare_llm(pair, tmp_path):
    from layalign.systems import load_system

    fresh = LLMLoRAModel(LoRAConfig(llm=pair["llm"]))
    fresh.save_pretrained(tmp_path / "zero")
    prompts = ["Premise: a\nHypothesis: b\nLabel:", "Premise: long premise\nHypothesis: c\nLabel:"]
    choices = ["entailment", "neutral", "contradiction"]
    tuned, bare = load_system(str(tmp_path / "zero"), device="cpu"), load_system(f"llm:{pair['llm']}", device="cpu")
    assert tuned.score_choices(["x", "y"], prompts, choices) == bare.score_choices(["x", "y"], prompts, choices)


def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(pair, tmp_path):
    settings = dict(max_steps=8, gradient_accumulation_steps=2, learning_rate=5e-3)
    whole = train(lora_recipe(pair, tmp_path / "whole", **settings))

    def kill_at_step_6(step: int) -> None:
        if step == 6:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train(lora_recipe(pair, tmp_path / "killed", save_every=4, **settings), on_step=kill_at_step_6)
    resumed = train(lora_recipe(pair, tmp_path / "killed", save_every=4, **settings), resume=True)
    a, b = load_file(whole / "final" / PEFT_ADAPTER_NAME), load_file(resumed / "final" / PEFT_ADAPTER_NAME)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    assert [r["step"] for r in log(resumed)] == list(range(1, 9))
    assert [r["loss"] for r in log(resumed)] == pytest.approx([r["loss"] for r in log(whole)], abs=1e-5)


def test_without_peft_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "layalign\[lora\]"'):
        lora_model()
