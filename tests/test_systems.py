"""The text-in / text-out systems that evaluation and the command line use."""

import pytest
import torch

from layalign.testing import randomize_adapters, tiny_model
from model_inputs import PROMPTS, SOURCES, TOK


def test_choice_scores_are_the_stepwise_log_likelihood_and_batching_does_not_change_them():
    """LayAlignSystem.score_choices and LLMOnlySystem.score_choices: the sum of log P(token | everything before) over
    each choice, equal to next-token probabilities taken one step at a time without any cache; scored together,
    prompts of different lengths give what each gives alone."""
    from layalign.systems import LayAlignSystem, LLMOnlySystem

    torch.manual_seed(0)
    model = tiny_model(llm_family="qwen2")
    randomize_adapters(model)
    system = LayAlignSystem(model, "tiny")
    bare = LLMOnlySystem(model.llm, TOK, "bare")
    choices = ["entailment", "no", "x"]
    for scorer in (system, bare):
        together = scorer.score_choices(SOURCES, PROMPTS, choices)
        alone = [scorer.score_choices([s], [p], choices)[0] for s, p in zip(SOURCES, PROMPTS, strict=True)]
        torch.testing.assert_close(torch.tensor(together), torch.tensor(alone), rtol=1e-5, atol=1e-4)
    # step by step with the byte tokenizer: prompt + the choice's first k bytes, then the next byte's probability
    bos = torch.tensor([[model.llm.config.bos_token_id]])
    for source, prompt, got, got_bare in zip(SOURCES, PROMPTS, system.score_choices(SOURCES, PROMPTS, choices),
                                             bare.score_choices(SOURCES, PROMPTS, choices), strict=True):
        enc = TOK([source], return_tensors="pt")
        for j, choice in enumerate(choices):
            expected = {"tiny": 0.0, "bare": 0.0}
            tokens = TOK(choice, add_special_tokens=False).input_ids
            for k, token in enumerate(tokens):
                p = TOK([prompt + TOK.decode(tokens[:k])], return_tensors="pt", add_special_tokens=False)
                with torch.no_grad():
                    logits = model(enc.input_ids, enc.attention_mask, p.input_ids, p.attention_mask).logits[0, -1]
                    bare_logits = model.llm(torch.cat([bos, p.input_ids], dim=1)).logits[0, -1]
                expected["tiny"] += torch.log_softmax(logits, -1)[token].item()
                expected["bare"] += torch.log_softmax(bare_logits, -1)[token].item()
            assert got[j] == pytest.approx(expected["tiny"], abs=1e-4)
            assert got_bare[j] == pytest.approx(expected["bare"], abs=1e-4)
