"""Which encoder output is whose, without an engine: the model's pairing of new batch rows with encoder outputs
(model.py `_new_rows`, `_pair`, `_check_cross_rows`) on hand-made steps, where vLLM's two orders differ, a padded
tail looks like a new request, or the pairing cannot be made."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402

from layalign.integrations.vllm import model as served  # noqa: E402
from layalign.integrations.vllm.processing import source_key  # noqa: E402

PLACEHOLDER, BOS, VOCAB, WIDTH = 0, 1, 500, 4
Model = served.LayAlignForConditionalGeneration


def _output(source_ids: list[int], fill: float) -> torch.Tensor:
    """An encoder output as encode_source lays it out: T rows of (soft token) + the key's columns."""
    key = torch.tensor(source_key(source_ids, VOCAB))
    return torch.cat([torch.full((len(source_ids), WIDTH), fill), served._key_columns(key, torch.float32)], dim=-1)


def _row(source_ids: list[int], prompt: list[int]) -> list[int]:
    return [BOS, *source_key(source_ids, VOCAB), PLACEHOLDER, *prompt]


def _fake_model(monkeypatch, rows: list[list[int]], decode_rows: int = 0, padding: int = 0,
                encoder_lens: list[int] | None = None):
    """A step of `decode_rows` decoding requests (one token each), then the new requests' whole rows, then
    `padding` padded tokens (position 0, placeholder id); the attention metadata as vLLM's CPU backend builds it."""
    ids, positions, starts = [], [], [0]
    for i in range(decode_rows):
        ids.append(7)
        positions.append(40 + i)
        starts.append(len(ids))
    for row in rows:
        ids += row
        positions += range(len(row))
        starts.append(len(ids))
    real = len(ids)
    ids += [PLACEHOLDER] * padding
    positions += [0] * padding
    self_meta = SimpleNamespace(query_start_loc=torch.tensor(starts), num_actual_tokens=real)
    lens = encoder_lens if encoder_lens is not None else [0] * decode_rows + [row.index(PLACEHOLDER, 1) - 1
                                                                               for row in rows]
    cross_meta = SimpleNamespace(query_start_loc=torch.tensor(starts), num_actual_tokens=real,
                                 seq_lens=torch.tensor(lens), slot_mapping=torch.zeros(sum(lens[decode_rows:])))
    context = SimpleNamespace(attn_metadata={"self": self_meta, "cross": cross_meta})
    monkeypatch.setattr(served, "get_forward_context", lambda: context)
    attention = SimpleNamespace(attn=SimpleNamespace(layer_name="self"),
                                fusion_attn=SimpleNamespace(layer_name="cross"))
    fake = SimpleNamespace(settings=SimpleNamespace(placeholder_token_id=PLACEHOLDER, llm_layers=[0]),
                           model=SimpleNamespace(layers=[SimpleNamespace(self_attn=attention)]))
    return fake, torch.tensor(ids), torch.tensor(positions)


def test_outputs_in_another_order_than_the_rows_go_to_their_own_requests(monkeypatch):
    a, b, c = [11, 12, 13], [21, 22, 23, 24, 25], [31, 32, 33]  # a and c: one length, as a swap would need
    fake, ids, positions = _fake_model(monkeypatch, [_row(a, [5, 6]), _row(b, [5]), _row(c, [])], decode_rows=2)
    outputs = [_output(c, 3.0), _output(a, 1.0), _output(b, 2.0)]  # the scheduler's order, not the batch's
    rows = Model._new_rows(fake, positions)
    assert [row for row, _, _ in rows] == [2, 3, 4]  # the decoding rows are not new
    paired = Model._pair(fake, ids, rows, outputs)
    assert [float(output[0, 0]) for _, _, output in paired] == [1.0, 2.0, 3.0]
    Model._check_cross_rows(fake, paired)


def test_a_padded_tail_is_never_taken_for_a_request(monkeypatch):
    a = [11, 12]
    fake, ids, positions = _fake_model(monkeypatch, [_row(a, [5])], padding=6)
    rows = Model._new_rows(fake, positions)
    assert [(start, end) for _, start, end in rows] == [(0, 5)]
    assert len(Model._pair(fake, ids, rows, [_output(a, 1.0)])) == 1


def test_equal_sources_are_interchangeable_and_a_request_without_source_gets_nothing(monkeypatch):
    a = [11, 12]
    fake, ids, positions = _fake_model(monkeypatch, [_row(a, [5]), [BOS, 8, 9], _row(a, [6])],
                                       encoder_lens=[2, 0, 2])
    paired = Model._pair(fake, ids, Model._new_rows(fake, positions), [_output(a, 1.0), _output(a, 1.0)])
    assert [output is None for _, _, output in paired] == [False, True, False]
    Model._check_cross_rows(fake, paired)


def test_unpairable_steps_are_refused_not_swapped(monkeypatch):
    a, b = [11, 12], [21, 22]
    fake, ids, positions = _fake_model(monkeypatch, [_row(a, [5]), _row(a, [6])])
    rows = Model._new_rows(fake, positions)
    with pytest.raises(RuntimeError, match="one source key differ"):
        Model._pair(fake, ids, rows, [_output(a, 1.0), _output(a, 2.0)])
    with pytest.raises(RuntimeError, match="match no new request"):
        Model._pair(fake, ids, rows, [_output(a, 1.0), _output(a, 1.0), _output(b, 1.0)])
    # the cross-attention cache expects another length for a row than its paired output has
    fake, ids, positions = _fake_model(monkeypatch, [_row(a, [5])], encoder_lens=[3])
    paired = Model._pair(fake, ids, Model._new_rows(fake, positions), [_output(a, 1.0)])
    with pytest.raises(RuntimeError, match="expects 3 encoder tokens"):
        Model._check_cross_rows(fake, paired)


def test_the_key_survives_half_precision():
    key = torch.tensor([0, 255, 256, 49151, 151_935])
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        assert torch.equal(served._key_of(served._key_columns(key, dtype)), key)
