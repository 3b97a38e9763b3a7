"""LayAlignConfig.fusion_dtype: the dtype of the fusion state (keys, gated values, mask) and of the branch.

"auto" follows the LLM (bf16 keys/values with a bf16 LLM, as the authors' release computes); an explicit dtype
overrides it. With a float32 LLM, "auto" is float32: today's exact behaviour (test_modeling's identities)."""


import pytest
import torch

from layalign import LayAlignConfig, LayAlignModel
from layalign.testing import byte_tokenizer, randomize_adapters, tiny_encoder, tiny_llm
from model_inputs import assert_zero_gates_leave_the_llm_unchanged, batch, without_labels

# |loss(bf16 state) - loss(float32 state)| on the tiny models with randomize_adapters(scale=0.3), seeds 0-5:
# measured 3e-6 .. 3e-5 on a loss of about 5.65 (bf16 keeps 8 bits of mantissa: a relative rounding of up to 2^-9 per
# key / value / query element); bound at 1e-3
BF16_LOSS_TOLERANCE = 1e-3


def bf16_model(fusion_dtype: str = "auto", llm_family: str = "llama") -> LayAlignModel:
    config = LayAlignConfig(encoder="tiny-bert", llm=f"tiny-{llm_family}", dtype="bfloat16", fusion_dtype=fusion_dtype)
    model = LayAlignModel(config, encoder=tiny_encoder("bert").to(torch.bfloat16),
                          llm=tiny_llm(llm_family, seed=1).to(torch.bfloat16))
    model.encoder_tokenizer = model.llm_tokenizer = byte_tokenizer()
    return model


def fp32_model(fusion_dtype: str = "auto") -> LayAlignModel:
    config = LayAlignConfig(encoder="tiny-bert", llm="tiny-llama", fusion_dtype=fusion_dtype)
    model = LayAlignModel(config, encoder=tiny_encoder("bert"), llm=tiny_llm("llama", seed=1))
    model.encoder_tokenizer = model.llm_tokenizer = byte_tokenizer()
    return model


def state_of(model: LayAlignModel):
    inputs = batch()
    states, _ = model.encode(inputs["encoder_input_ids"], inputs["encoder_attention_mask"])
    return model.fusion_state(states, inputs["encoder_attention_mask"])


@pytest.mark.parametrize(("make", "fusion_dtype", "expected"), [
    (bf16_model, "auto", torch.bfloat16),
    (bf16_model, "float32", torch.float32),
    (fp32_model, "auto", torch.float32),
    (fp32_model, "bfloat16", torch.bfloat16),
    (fp32_model, "float16", torch.float16),
])
def test_fusion_state_takes_the_fusion_dtype(make, fusion_dtype, expected):
    model = make(fusion_dtype)
    randomize_adapters(model, scale=0.3)
    with torch.no_grad():
        state = state_of(model)
    assert model.fusion_dtype() == expected
    assert {t.dtype for t in state.keys + state.values} == {expected}
    assert state.mask is not None and state.mask.dtype == expected  # batch() pads its encoder side
    # the branch's result is added to the LLM's attention output in the LLM's dtype
    with torch.no_grad():
        logits = model(**without_labels(batch())).logits
    assert logits.dtype == model.llm.dtype and bool(torch.isfinite(logits).all())


def test_unknown_fusion_dtype_is_refused():
    with pytest.raises(ValueError, match="fusion_dtype"):
        LayAlignConfig(fusion_dtype="float64")


@pytest.mark.parametrize("llm_family", ["llama", "qwen3"])
def test_zero_gates_leave_a_bf16_llm_unchanged_exactly(llm_family):
    ours = assert_zero_gates_leave_the_llm_unchanged(bf16_model(llm_family=llm_family))
    assert ours.dtype == torch.bfloat16


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bf16_state_changes_the_loss_by_little(seed):
    """A float32 LLM with the fusion state in bf16 vs float32, same adapters: the loss moves by rounding only."""
    losses = {}
    for name in ("float32", "bfloat16"):
        model = fp32_model(name)
        randomize_adapters(model, scale=0.3, seed=seed)
        with torch.no_grad():
            losses[name] = float(model(**batch()).loss)
    assert losses["float32"] != losses["bfloat16"]  # the branch really ran in another dtype
    assert abs(losses["float32"] - losses["bfloat16"]) < BF16_LOSS_TOLERANCE, losses


def test_bf16_state_trains_the_float32_adapters():
    """Gradients flow through the cast into the float32 adapters (and stay float32 there)."""
    model = fp32_model("bfloat16")
    randomize_adapters(model, scale=0.3)
    model.train()
    model(**batch()).loss.backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.dtype == torch.float32, name
            assert bool(torch.isfinite(parameter.grad).all()), name
    assert float(model.aligner.proj.weight.grad.abs().sum()) > 0
