"""Texts to tensors, and the text-in text-out systems used by evaluation and the CLI."""

import pytest
import torch

from layalign.model.processing import LayAlignProcessor
from layalign.systems import LayAlignSystem, LLMOnlySystem
from layalign.testing import byte_tokenizer, randomize_adapters, tiny_model


def processor(**lengths):
    return LayAlignProcessor(byte_tokenizer(), byte_tokenizer(), **lengths)


def test_targets_end_in_eos_and_prompts_are_optional():
    batch = processor()(["abc", "de"], None, ["xy", "z"])
    assert set(batch) == {"encoder_input_ids", "encoder_attention_mask", "labels", "labels_attention_mask"}
    eos = byte_tokenizer().eos_token_id
    assert batch["labels"][0].tolist()[-1] == eos  # "xy" + eos: 3 tokens, no padding
    assert batch["labels"][1].tolist()[:2] == [byte_tokenizer()("z", add_special_tokens=False)["input_ids"][0], eos]
    assert batch["labels_attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_over_long_texts_are_truncated_with_a_warning():
    with pytest.warns(UserWarning, match="1 of 2 source texts are longer than 5 tokens"):
        batch = processor(max_source_length=5)(["a" * 20, "b"], ["p" * 30, "q"])
    assert batch["encoder_input_ids"].shape[1] == 5
    with pytest.warns(UserWarning, match="prompt texts"):
        batch = processor(max_prompt_length=4)(["a", "b"], ["0123456789", "q"])
    # prompts keep their end, where the template's answer cue is
    assert byte_tokenizer().decode(batch["prompt_input_ids"][0]) == "6789"


def test_empty_texts_are_refused():
    with pytest.raises(ValueError, match="source text 1 is empty"):
        processor()(["fine", "  "])
    with pytest.raises(ValueError, match="target text 0 is empty"):
        processor()(["fine"], None, [""])
    with pytest.raises(ValueError, match="2 prompts for 1 sources"):
        processor()(["fine"], ["a", "b"])


def test_batched_text_generation_equals_one_by_one():
    model = tiny_model()
    randomize_adapters(model, scale=0.3)
    system = LayAlignSystem(model, name="tiny")
    sources = ["Bata wa Janet hutaga mayai 16.", "鸭子", "Hallo Welt"]
    prompts = ["Q: eggs?", None, "Say hi"]
    together = system.generate(sources, prompts, max_new_tokens=5, min_new_tokens=5)
    alone = [system.generate([s], [p], max_new_tokens=5, min_new_tokens=5)[0] for s, p in zip(sources, prompts)]
    assert together == alone
    assert all(isinstance(t, str) for t in together)


def test_llm_only_reads_the_prompt_and_batches_like_one_by_one():
    model = tiny_model()
    system = LLMOnlySystem(model.llm, byte_tokenizer(), name="bare")
    sources, prompts = ["ignored when a prompt is given", "read as is"], ["Question: 2+2?", None]
    together = system.generate(sources, prompts, max_new_tokens=4, min_new_tokens=4)
    alone = [system.generate([s], [p], max_new_tokens=4, min_new_tokens=4)[0] for s, p in zip(sources, prompts)]
    assert together == alone
    reference = model.llm.generate(input_ids=torch.tensor([[1] + byte_tokenizer()("read as is",
                                   add_special_tokens=False)["input_ids"]]), max_new_tokens=4, min_new_tokens=4,
                                   do_sample=False, pad_token_id=0)
    assert together[1] == byte_tokenizer().decode(reference[0, -4:], skip_special_tokens=True).strip()
