"""Faster choice scoring gives the scores of one-by-one scoring: the choices' later tokens in one row per prompt
(block-diagonal mask) and the cache copied per choice both equal each prompt + choice scored alone in a pass of its
own, through padding (prompts of different lengths), truncation (prompts cut to the limit) and choices of one to
several tokens; evaluation in longest-first order writes the same predictions as in file order."""

import json

import pytest
import torch

from layalign.evaluation import evaluate
from layalign.model.choices import _window_matters, choice_logprobs
from layalign.testing import randomize_adapters, tiny_model
from model_inputs import TOK

SOURCES = ["Bata wa Janet hutaga mayai 16 kila siku.", "珍妮特的鸭子每天下 16 颗蛋。", "Hallo",
           "Une phrase un peu plus longue que les autres, pour que le lot ait du remplissage."]
PROMPTS = [f"Text: {s}\nTopic:" for s in SOURCES]
CHOICES = ["science/technology", "travel", "x", "geography", "yz"]  # 1 to 18 byte tokens


def one_by_one(llm, prefix_ids: list[int], choice: list[int]) -> tuple[float, bool]:
    """log P(choice | prefix) and whether it is greedy, from one uncached pass over prefix + choice."""
    ids = torch.tensor([prefix_ids + choice])
    with torch.no_grad():
        logp = torch.log_softmax(llm(ids).logits[0].float(), dim=-1)
    steps = range(len(prefix_ids) - 1, len(prefix_ids) + len(choice) - 1)
    total = sum(logp[s, t].item() for s, t in zip(steps, choice, strict=True))
    return total, all(logp[s].argmax().item() == t for s, t in zip(steps, choice, strict=True))


def left_padded(rows: list[list[int]], pad: int = 0) -> dict[str, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(1) - 1).clamp(min=0)}


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3_text"])
@pytest.mark.parametrize("limit", [None, 30])  # 30: the longer prompts are cut (their end kept), the shortest not
def test_both_layouts_equal_one_by_one_scoring_through_padding_and_truncation(family, limit):
    model = tiny_model(llm_family=family)
    llm = model.llm.eval()
    bos = llm.config.bos_token_id
    prompts = [[bos] + TOK(p, add_special_tokens=False).input_ids[-(limit or 10_000):] for p in PROMPTS]
    choices = [TOK(c, add_special_tokens=False).input_ids for c in CHOICES]
    assert len({len(p) for p in prompts}) > 1 and {len(c) for c in choices} >= {1, 2, 18}
    expected = [[one_by_one(llm, p, c) for c in choices] for p in prompts]
    # one row per prompt cannot honour a window shorter than the sequence (gemma3's tiny window is 8): "auto" avoids it
    windowed = _window_matters(llm, max(map(len, prompts)) + sum(len(c) - 1 for c in choices))
    assert windowed == (family == "gemma3_text")
    for layout in ("per_choice", "auto") if windowed else ("one_row", "per_choice", "auto"):
        with torch.no_grad():
            got = choice_logprobs(llm, left_padded(prompts), choices, greedy=True, layout=layout)
        torch.testing.assert_close(torch.tensor([[s for s, _ in row] for row in got]),
                                   torch.tensor([[s for s, _ in row] for row in expected]), rtol=1e-5, atol=1e-4)
        assert [[g for _, g in row] for row in got] == [[g for _, g in row] for row in expected], layout
        assert [max(range(len(row)), key=lambda j, row=row: row[j][0]) for row in got] == \
            [max(range(len(row)), key=lambda j, row=row: row[j][0]) for row in expected]


def test_a_sliding_window_shorter_than_the_sequence_picks_the_per_choice_layout():
    model = tiny_model(llm_family="gemma3_text")  # sliding_window=8 in the tiny config
    assert _window_matters(model.llm, 9) and not _window_matters(model.llm, 8)
    assert not _window_matters(tiny_model(llm_family="llama").llm, 10_000)


def test_an_unknown_layout_is_refused():
    model = tiny_model()
    with pytest.raises(ValueError, match="unknown layout 'rows'.*auto, one_row, per_choice"):
        choice_logprobs(model.llm, left_padded([[1, 2]]), [[3]], layout="rows")


def test_longest_first_evaluation_writes_the_predictions_of_file_order(tmp_path):
    """A fused system (adapters non-zero) through `evaluate`: sorted batches give every row the same answer and the
    same log-probabilities as file-order batches; only the order of rows within a language changes."""
    from layalign.data.examples import EvalExample
    from layalign.systems import LayAlignSystem

    model = tiny_model()
    randomize_adapters(model)
    system = LayAlignSystem(model, "tiny")
    examples = {lang: [EvalExample(id=f"{lang}-{i}", lang=lang, source=s, gold="travel", prompt=p)
                       for i, (s, p) in enumerate(zip(SOURCES, PROMPTS, strict=True))] for lang in ("swh_Latn", "x")}
    rows = {}
    for sort in (False, True):
        evaluate(system, "sib200", examples, tmp_path / str(sort), batch_size=3, scoring="choices", progress=False,
                 sort_by_length=sort)
        written = (tmp_path / str(sort) / "predictions.jsonl").read_text(encoding="utf-8")
        rows[sort] = [json.loads(line) for line in written.splitlines()]
    assert [r["id"] for r in rows[False]] != [r["id"] for r in rows[True]]  # the order really changed
    assert [r["lang"] for r in rows[True]] == [r["lang"] for r in rows[False]]  # languages stay in their order
    by_id = {r["id"]: r for r in rows[True]}
    for row in rows[False]:
        other = by_id[row["id"]]
        assert other["answer"] == row["answer"]
        assert other["choice_logprobs"] == pytest.approx(row["choice_logprobs"], abs=2e-4)
