"""The attention-time fusion branch: its formula head by head, and the one path by which the state reaches it."""

import pytest
import torch

from layalign.testing import tiny_model


@pytest.mark.parametrize("q_len", [3, 1])  # 1: a decoding step, which takes the matmul path
@pytest.mark.parametrize("with_mask", [True, False])
def test_fusion_branch_is_the_formula_head_by_head(q_len, with_mask):
    """g * softmax(Q_h K_j^T * scaling) V_j for every query head h, j = the key/value head h reads under grouped-query
    attention (h // G, transformers' repeat_kv order), padded encoder positions masked out."""
    from types import SimpleNamespace

    from layalign.model.fusion import FusionState, fusion_branch

    torch.manual_seed(0)
    batch, heads, kv_heads, length, dim = 2, 6, 2, 5, 8
    # laid out as transformers makes queries: (B, q_len, H, d_h) transposed
    query = torch.randn(batch, q_len, heads, dim).transpose(1, 2)
    keys, values = torch.randn(batch, kv_heads, length, dim), torch.randn(batch, kv_heads, length, dim)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, int(not with_mask), int(not with_mask)]], dtype=torch.bool)
    gate = 0.7
    additive = torch.zeros(batch, 1, 1, length).masked_fill(~mask[:, None, None, :], float("-inf"))
    state = FusionState([keys], [gate * values], additive if with_mask else None, {0: 0})  # holds gated values
    got = fusion_branch(SimpleNamespace(scaling=dim ** -0.5), query, state, 0)  # (B, q_len, H, d_h)
    for b in range(batch):
        for h in range(heads):
            j = h // (heads // kv_heads)
            scores = (query[b, h] @ keys[b, j].T) * dim ** -0.5
            scores = scores.masked_fill(~mask[b], float("-inf"))
            expected = 0.7 * torch.softmax(scores, dim=-1) @ values[b, j]
            torch.testing.assert_close(got[b, :, h], expected, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_recomputes_layers_with_the_same_fusion_state():
    """The backward pass recomputes each checkpointed layer after the forward's `fusion.active` block has exited;
    the state is restored for it (fusion.recompute_context), so the gradients equal those without checkpointing."""
    from layalign.model import fusion
    from layalign.model.processing import LayAlignProcessor

    torch.manual_seed(0)
    model = tiny_model("layalign")
    for p in model.parameters():
        if p.requires_grad:
            p.data.normal_(0, 0.3)
    batch = LayAlignProcessor.from_model(model)(["Habari ya asubuhi", "Bonjour"], ["Q: ?", None],
                                                ["Good morning", "Hello"])

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model.train()
        model(**batch).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    calls = {"n": 0}
    model.llm.model.layers[0].mlp.up_proj.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    plain = grads()
    assert calls["n"] == 1
    model.gradient_checkpointing_enable()  # what train() calls with gradient_checkpointing: true
    checkpointed = grads()
    assert calls["n"] == 3  # checkpointed: the layer ran again during the backward pass
    assert not model.llm.model.layers[0].self_attn.training  # but dropout & co. stayed in eval mode
    assert fusion._ACTIVE.get() is None  # no state outlives its call
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], rtol=1e-5, atol=1e-7)


def test_checkpointing_enabled_on_the_llm_itself_is_refused():
    """Enabled on the LLM directly, the recomputation would run without the fusion branch: wrong gradients."""
    model = tiny_model("layalign")
    model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    with pytest.raises(ValueError, match="gradient_checkpointing_enable"):
        model.train()
