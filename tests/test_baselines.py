"""The baselines as their releases run them: LangBridge's random end vector and its encoder reading the templated
prompt (training and evaluation alike, kept through save/load), the frozen encoder's dropout while training, and
each example's language reaching the processor in training."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from layalign.data import TrainExample
from layalign.data.prompts import math_prompt
from layalign.model.config import CONFIG_NAME, LayAlignConfig
from layalign.model.modeling import LayAlignModel
from layalign.model.processing import LayAlignProcessor
from layalign.systems import load_system
from layalign.testing import byte_tokenizer, tiny_encoder, tiny_llm, tiny_model
from layalign.training import Batcher
from test_processing_languages import nllb_tokenizer
from training_helpers import save_tiny_pair

QUESTION = "How many apples?"


def test_langbridge_end_vector_is_random_normal_the_others_zero():
    torch.manual_seed(0)
    boundary = tiny_model("langbridge").boundary.detach().flatten()
    # 64 draws of N(0, 1): mean near 0, standard deviation near 1 (LangBridge's enc_eos = torch.randn(out_dim))
    assert abs(float(boundary.mean())) < 0.5 and 0.7 < float(boundary.std()) < 1.3
    for variant in ("layalign", "mindmerger"):
        assert torch.count_nonzero(tiny_model(variant).boundary) == 0
    # the switch, not the variant, decides
    assert torch.count_nonzero(tiny_model("langbridge", boundary_init="zeros").boundary) == 0
    assert torch.count_nonzero(tiny_model("mindmerger", boundary_init="normal").boundary) > 0
    with pytest.raises(ValueError, match="boundary_init"):
        LayAlignConfig(boundary_init="ones")


def test_variant_switch_defaults():
    langbridge, layalign = LayAlignConfig(variant="langbridge"), LayAlignConfig()
    assert (langbridge.boundary_init, langbridge.encoder_reads_prompt, langbridge.use_prompt) == ("normal", True, False)
    assert (layalign.boundary_init, layalign.encoder_reads_prompt, layalign.encoder_dropout) == ("zeros", False, False)
    assert LayAlignConfig(variant="mindmerger").encoder_reads_prompt is False


def test_langbridge_encoder_reads_the_templated_prompt_and_the_llm_none():
    model = tiny_model("langbridge")
    prompt = math_prompt(QUESTION)
    batch = LayAlignProcessor.from_model(model)([QUESTION], [prompt], ["4"])
    assert batch["encoder_input_ids"][0].tolist() == model.encoder_tokenizer(prompt)["input_ids"]
    assert "prompt_input_ids" not in batch
    # the LLM input: [bos] [one soft token per encoder token] [end vector] [target + eos], nothing else
    inputs = model.build_inputs(torch.zeros(1, batch["encoder_input_ids"].shape[1], 48),
                                batch["encoder_attention_mask"], labels=batch["labels"])
    assert int(inputs.attention_mask.sum()) == 1 + batch["encoder_input_ids"].shape[1] + 1 + batch["labels"].shape[1]
    # MindMerger: the encoder reads the bare query, the LLM the prompt
    other = LayAlignProcessor.from_model(tiny_model("mindmerger"))([QUESTION], [prompt], ["4"])
    assert other["encoder_input_ids"][0].tolist() == model.encoder_tokenizer(QUESTION)["input_ids"]
    assert other["prompt_input_ids"].shape[1] == len(model.llm_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    # no prompt (translation pairs): the source
    plain = LayAlignProcessor.from_model(model)([QUESTION], None, ["4"])
    assert plain["encoder_input_ids"][0].tolist() == model.encoder_tokenizer(QUESTION)["input_ids"]


def test_langbridge_training_batches_give_the_encoder_the_prompt():
    model = tiny_model("langbridge")
    processor = LayAlignProcessor.from_model(model)
    example = TrainExample(source=QUESTION, target="4", prompt=math_prompt(QUESTION), lang="en")
    batch = Batcher(processor, "task", model.config.use_prompt)([example])
    assert batch["encoder_input_ids"][0].tolist() == model.encoder_tokenizer(example.prompt)["input_ids"]
    assert "prompt_input_ids" not in batch
    # the translation stage has no prompt: the encoder reads the pair's source
    pair = Batcher(processor, "translation", model.config.use_prompt)([example])
    assert pair["encoder_input_ids"][0].tolist() == model.encoder_tokenizer(QUESTION)["input_ids"]


def test_saved_langbridge_keeps_its_switches_and_end_vector(tmp_path):
    torch.manual_seed(3)
    model = tiny_model("langbridge", encoder_dropout=True)
    model.save_pretrained(tmp_path / "lb")
    saved = json.loads((tmp_path / "lb" / CONFIG_NAME).read_text())
    assert (saved["boundary_init"], saved["encoder_reads_prompt"], saved["encoder_dropout"]) == ("normal", True, True)
    loaded = LayAlignModel.from_pretrained(tmp_path / "lb", encoder=tiny_encoder("bert"), llm=tiny_llm("llama", seed=1))
    loaded.encoder_tokenizer = loaded.llm_tokenizer = byte_tokenizer()
    assert torch.equal(loaded.boundary, model.boundary)
    assert loaded.config.encoder_reads_prompt and loaded.config.encoder_dropout
    batch = LayAlignProcessor.from_model(loaded)([QUESTION], [math_prompt(QUESTION)])
    assert batch["encoder_input_ids"][0].tolist() == byte_tokenizer()(math_prompt(QUESTION))["input_ids"]


def test_a_directory_saved_before_the_switches_keeps_its_behaviour(tmp_path):
    LayAlignConfig(variant="langbridge").save(tmp_path)
    data = json.loads((tmp_path / CONFIG_NAME).read_text())
    for key in ("boundary_init", "encoder_reads_prompt", "encoder_dropout"):
        del data[key]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(data))
    # a LangBridge trained before encoder_reads_prompt existed read the bare source
    old = LayAlignConfig.load(tmp_path)
    assert (old.encoder_reads_prompt, old.boundary_init, old.encoder_dropout) == (False, "zeros", False)


def test_evaluating_a_langbridge_directory_feeds_the_encoder_the_prompt(tmp_path):
    pair = save_tiny_pair(tmp_path / "pair")
    LayAlignModel(LayAlignConfig(**pair, variant="langbridge")).save_pretrained(tmp_path / "lb")
    system = load_system(str(tmp_path / "lb"), device="cpu")  # what `layalign evaluate --model` loads
    assert system.processor.encoder_reads_prompt and not system.processor.use_prompt
    batch = system.processor([QUESTION], [math_prompt(QUESTION)])
    assert batch["encoder_input_ids"][0].tolist() == byte_tokenizer()(math_prompt(QUESTION))["input_ids"]
    assert "prompt_input_ids" not in batch


def with_encoder_dropout(model: LayAlignModel, p: float = 0.3) -> LayAlignModel:
    # the tiny encoders are built without dropout; the real ones have 0.1
    for module in model.encoder.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
    return model


def losses(model: LayAlignModel, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return model(**batch).loss.detach(), model(**batch).loss.detach()


@pytest.mark.parametrize("variant", ["layalign", "langbridge"])
def test_encoder_dropout_acts_only_while_training(variant):
    torch.manual_seed(0)
    model = with_encoder_dropout(tiny_model(variant, encoder_dropout=True))
    batch = LayAlignProcessor.from_model(model)(["habari ya dunia", "hello"], None, ["hello world", "hi"])
    model.train()
    assert model.encoder.training and not model.llm.training
    first, second = losses(model, batch)
    assert not torch.equal(first, second)  # the states feeding the mapping (and the aligner) differ per call
    loss = model(**batch).loss
    loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())  # still frozen
    assert all(p.grad is not None for p in model.mapping.parameters())
    model.eval()
    assert not model.encoder.training
    first, second = losses(model, batch)
    assert torch.equal(first, second)


def test_without_encoder_dropout_training_forwards_are_equal():
    torch.manual_seed(0)
    model = with_encoder_dropout(tiny_model("layalign"))
    batch = LayAlignProcessor.from_model(model)(["habari ya dunia"], None, ["hello world"])
    model.train()
    assert not model.encoder.training
    first, second = losses(model, batch)
    assert torch.equal(first, second)


class Recording(LayAlignProcessor):
    """A processor that remembers the languages of its latest call."""

    def __call__(self, *args, langs=None, **kwargs):
        self.langs = langs
        return super().__call__(*args, langs=langs, **kwargs)


def test_training_batches_pass_each_examples_language():
    examples = [TrainExample("habari", "hello", lang="sw"), TrainExample("hallo", "hello", lang="de")]
    processor = Recording(byte_tokenizer(), byte_tokenizer())
    Batcher(processor, "translation", True)(examples)
    assert processor.langs == ["sw", "de"]
    # an NLLB encoder tags every source with its own language
    batch = Batcher(LayAlignProcessor(nllb_tokenizer(), byte_tokenizer()), "translation", True)(examples)
    tags = nllb_tokenizer().convert_ids_to_tokens(batch["encoder_input_ids"][:, 0].tolist())
    assert tags == ["swh_Latn", "deu_Latn"]
    # an example of unknown language ("xx", TrainExample's default) is harmless for an encoder without tags...
    unknown = [TrainExample("habari", "hello")]
    assert Batcher(LayAlignProcessor(byte_tokenizer(), byte_tokenizer()), "translation", True)(unknown)
    # ...and an error for one with tags, where a wrong tag would pass silently
    with pytest.raises(ValueError, match="xx"):
        Batcher(LayAlignProcessor(nllb_tokenizer(), byte_tokenizer()), "translation", True)(unknown)
