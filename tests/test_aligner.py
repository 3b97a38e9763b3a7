"""The layer-wise aligner: from encoder states to every fused layer's keys and values."""

import pytest
import torch

from layalign.testing import randomize_adapters, tiny_model
from model_inputs import batch


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_folded_and_unfolded_key_value_projections_agree_with_the_formula(family):
    """K_f = k_proj_f(proj(m_2f)), V_f = v_proj_f(proj(m_2f+1)) (+ the family's key/value norms), whether the aligner
    projection is folded into k_proj / v_proj or applied first; gradients reach the aligner the same way."""
    from layalign.model import aligner

    torch.manual_seed(0)
    model = tiny_model(llm_family=family)
    randomize_adapters(model)
    model.to(torch.float64)  # the two orders of the same products differ by float32 rounding only
    inputs = batch()
    states, _ = model.encode(inputs["encoder_input_ids"], inputs["encoder_attention_mask"])
    kv_inputs = model.aligner(states)  # (2F, B, T, d)
    layers = model.llm.get_decoder().layers
    attentions = [layers[i].self_attn for i in model.config.llm_layers]
    results, grads = {}, {}
    for fold in (False, True):
        model.aligner.zero_grad()
        mixed = model.aligner.mix(model.aligner.stack(states))
        assert mixed.dtype == torch.float64
        keys, values = aligner.project_encoder_side(attentions, model.aligner, mixed, model.num_kv_heads, fold=fold)
        sum(k.square().sum() + v.sum() for k, v in zip(keys, values)).backward()
        results[fold] = keys, values
        grads[fold] = [p.grad.clone() for p in model.aligner.parameters()]
    batch_size, length = kv_inputs.shape[1:3]
    for f, attention in enumerate(attentions):
        k = attention.k_proj(kv_inputs[2 * f]).view(batch_size, length, model.num_kv_heads, -1).transpose(1, 2)
        v = attention.v_proj(kv_inputs[2 * f + 1]).view(batch_size, length, model.num_kv_heads, -1).transpose(1, 2)
        if getattr(attention, "k_norm", None) is not None:
            k = attention.k_norm(k)
        for fold in (False, True):
            torch.testing.assert_close(results[fold][0][f], k.float(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(results[fold][1][f], v.float(), rtol=1e-5, atol=1e-6)
    for unfolded, folded in zip(grads[False], grads[True]):
        torch.testing.assert_close(folded, unfolded, rtol=1e-9, atol=1e-9)


def test_fusion_state_in_chunks_of_layers_equals_all_layers_at_once(monkeypatch):
    """fusion_state mixes and projects a few fused layers at a time (aligner.layers_per_chunk); one layer per chunk
    gives the same keys, values and adapter gradients as every layer in one chunk."""
    from layalign.model import aligner

    torch.manual_seed(0)
    model = tiny_model()
    randomize_adapters(model)
    inputs = batch()
    states, _ = model.encode(inputs["encoder_input_ids"], inputs["encoder_attention_mask"])
    results, grads = {}, {}
    for chunk_bytes in (1, 2**40):
        monkeypatch.setattr(aligner, "CHUNK_BYTES", chunk_bytes)
        assert aligner.layers_per_chunk(states[0]) == (1 if chunk_bytes == 1 else 2**40 // (2 * states[0].nbytes))
        model.zero_grad()
        state = model.fusion_state(states, inputs["encoder_attention_mask"])
        assert len(state.keys) == len(state.values) == len(model.config.llm_layers)
        sum(k.square().sum() + v.sum() for k, v in zip(state.keys, state.values)).backward()
        results[chunk_bytes] = state
        grads[chunk_bytes] = [p.grad.clone() for p in model.adapters().parameters() if p.grad is not None]
    small, large = results[1], results[2**40]
    for a, b in zip(small.keys + small.values, large.keys + large.values, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert len(grads[1]) == len(grads[2**40]) > 0
    for a, b in zip(grads[1], grads[2**40], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
