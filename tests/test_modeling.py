"""The model's exact identities, on tiny random-weight models of every supported family."""


import pytest
import torch

from layalign import LayAlignConfig, LayAlignModel
from layalign.testing import randomize_adapters, tiny_encoder, tiny_llm, tiny_model
from model_inputs import SOURCES, assert_zero_gates_leave_the_llm_unchanged, batch, pick, without_labels

LLM_FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gemma3_text"]
ENCODER_FAMILIES = ["bert", "xlm-roberta", "t5", "mt5", "gemma3_text", "m2m_100"]
@pytest.mark.parametrize("family", LLM_FAMILIES)
def test_zero_gates_leave_the_llm_unchanged(family):
    assert_zero_gates_leave_the_llm_unchanged(tiny_model(llm_family=family))


@pytest.mark.parametrize("family", LLM_FAMILIES)
def test_fusion_changes_the_output_when_gates_open(family):
    model = tiny_model(llm_family=family)
    inputs = batch()
    closed = model(**inputs).loss
    randomize_adapters(model)
    assert not torch.allclose(model(**inputs).loss, closed)


@pytest.mark.parametrize("llm_family", ["llama", "gemma3_text"])
def test_padding_does_not_change_results_and_batch_equals_one_by_one(llm_family):
    model = tiny_model(llm_family=llm_family)
    randomize_adapters(model, scale=0.3)
    inputs = batch()
    with torch.no_grad():
        batched = model(**inputs)
        padded = model(**batch(pad_extra=5))
        assert torch.allclose(batched.loss, padded.loss, atol=1e-6, rtol=1e-5)
        for i in range(len(SOURCES)):
            alone = model(**pick(inputs, i))
            n = alone.logits.shape[1]
            row_logits = batched.logits[i, -n:]  # the targets are right-aligned in the batch
            assert torch.allclose(alone.logits[0], row_logits, atol=1e-5, rtol=1e-4)
            targets = pick(inputs, i)["labels"][0]
            loss_in_batch = torch.nn.functional.cross_entropy(row_logits[:-1], targets)
            assert torch.allclose(alone.loss, loss_in_batch, atol=1e-6, rtol=1e-5)

    gen_batched = model.generate(**without_labels(inputs), max_new_tokens=5, do_sample=False, min_new_tokens=5)
    gen_padded = model.generate(**without_labels(batch(pad_extra=5)), max_new_tokens=5, do_sample=False,
                                min_new_tokens=5)
    assert torch.equal(gen_batched, gen_padded)
    for i in range(len(SOURCES)):
        alone = without_labels(pick(inputs, i))
        assert torch.equal(model.generate(**alone, max_new_tokens=5, do_sample=False, min_new_tokens=5)[0],
                           gen_batched[i])


def test_without_the_encoder_mask_padding_leaks_in_as_in_the_authors_release():
    model = tiny_model(mask_encoder_padding=False)
    randomize_adapters(model)
    with torch.no_grad():
        assert not torch.allclose(model(**batch()).loss, model(**batch(pad_extra=5)).loss)


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_cached_generation_equals_stepwise_argmax_without_cache(family):
    model = tiny_model(llm_family=family)
    randomize_adapters(model, scale=0.3)
    inputs = without_labels(batch())
    steps, eos = 6, model.llm.config.eos_token_id
    generated = model.generate(**inputs, max_new_tokens=steps, do_sample=False, min_new_tokens=steps)
    so_far = torch.empty(len(SOURCES), 0, dtype=torch.long)
    with torch.no_grad():
        for _ in range(steps):
            logits = model(**inputs, labels=so_far if so_far.shape[1] else None).logits[:, -1]
            logits[:, eos] = -float("inf")  # what min_new_tokens does
            so_far = torch.cat([so_far, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(generated, so_far)


def test_beam_search_and_sampling_return_the_right_shapes():
    model = tiny_model()
    randomize_adapters(model, scale=0.3)
    inputs = without_labels(batch())
    beams = model.generate(**inputs, max_new_tokens=4, num_beams=3, num_return_sequences=2, min_new_tokens=4)
    assert beams.shape == (2 * len(SOURCES), 4)
    torch.manual_seed(0)
    sampled = model.generate(**inputs, max_new_tokens=4, do_sample=True, num_return_sequences=3, min_new_tokens=4)
    assert sampled.shape == (3 * len(SOURCES), 4)


def test_gradients_reach_exactly_the_adapters_and_frozen_weights_stay():
    model = tiny_model()
    randomize_adapters(model, scale=0.3)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"mapping.linear1.weight", "mapping.linear1.bias", "mapping.linear2.weight",
                         "mapping.linear2.bias", "boundary", "aligner.layer_mix.weight", "aligner.layer_mix.bias",
                         "aligner.proj.weight", "aligner.proj.bias", "gates"}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    model(**batch()).loss.backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, name
    optimizer.step()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            assert torch.equal(parameter, frozen[name]), name
    assert not model.encoder.training and not model.llm.training


def test_save_and_reload_give_the_same_outputs(tmp_path):
    model = tiny_model()
    randomize_adapters(model)
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"layalign_config.json", "adapter.safetensors"}
    reloaded = LayAlignModel.from_pretrained(tmp_path, encoder=tiny_encoder("bert"), llm=tiny_llm("llama", seed=1))
    inputs = batch()
    with torch.no_grad():
        assert torch.equal(model(**inputs).loss, reloaded(**inputs).loss)
    assert reloaded.config.encoder_layers == model.config.encoder_layers


def test_authors_state_dict_round_trip():
    model = tiny_model(aligner_structure="mlp")
    randomize_adapters(model)
    exported = model.to_authors_state_dict()
    assert "mapping.mlp.linear1.weight" in exported and "encoder_aligner.projector.fc3.bias" in exported
    assert exported["encoder_aligner.projector.fc1.weight"].shape == (2 * 3, 2)  # (2N, L_sel)
    assert exported["model.model.layers.2.self_attn.adaption_gate"].shape == (1,)
    fresh = tiny_model(aligner_structure="mlp")
    fresh.load_authors_state_dict(exported)
    inputs = batch()
    with torch.no_grad():
        assert torch.equal(model(**inputs).loss, fresh(**inputs).loss)


def test_authors_checkpoint_file_is_read_without_pickle(tmp_path):
    model = tiny_model()
    randomize_adapters(model)
    path = tmp_path / "pytorch_model.bin"
    torch.save(model.to_authors_state_dict(), path)
    fresh = tiny_model()
    fresh.load_authors_state_dict(path)
    assert torch.equal(fresh.gates, model.gates)


def test_mismatched_models_are_refused(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="llm_width: adapter 64, loaded model 96"):
        LayAlignModel.from_pretrained(tmp_path, encoder=tiny_encoder("bert"), llm=tiny_llm("llama", hidden=96))
    with pytest.raises(ValueError, match="llm_layers: adapter 3, loaded model 4"):
        LayAlignModel.from_pretrained(tmp_path, encoder=tiny_encoder("bert"), llm=tiny_llm("llama", layers=4))
    other = tiny_model(variant="mindmerger")
    with pytest.raises(ValueError, match="unexpected"):
        other.load_adapter_state_dict(model.trainable_state_dict())


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_every_encoder_family_feeds_the_llm(family):
    model = LayAlignModel(LayAlignConfig(encoder=family, llm="tiny"), encoder=tiny_encoder(family),
                          llm=tiny_llm("llama"))
    randomize_adapters(model, scale=0.3)
    inputs = batch()
    loss = model(**inputs).loss
    assert torch.isfinite(loss)
    loss.backward()
    assert model.aligner.layer_mix.weight.grad.abs().sum() > 0
    # the default fuses the embedding output and every block but the last
    assert model.config.encoder_layers == [0, 1]


def test_variants_are_settings_of_one_model():
    mind = tiny_model(variant="mindmerger")
    assert mind.aligner is None and mind.gates is None and mind.mapping.kind == "mlp"
    bridge = tiny_model(variant="langbridge")
    assert bridge.mapping.kind == "linear" and not bridge.config.use_prompt
    inputs = batch()
    with torch.no_grad():  # LangBridge ignores the LLM prompt
        assert torch.equal(bridge(**inputs).loss, bridge(**{k: v for k, v in inputs.items()
                                                            if not k.startswith("prompt")}).loss)
    fusion_only = tiny_model(mapping="none", llm_layers=[0, 2], encoder_layers=[1])
    assert fusion_only.mapping is None and fusion_only.gates.shape == (2,)
    assert torch.isfinite(fusion_only(**inputs).loss)


def test_bad_configurations_and_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="llm_layers \\[7\\] out of range"):
        tiny_model(llm_layers=[0, 7])
    with pytest.raises(ValueError, match="encoder_layers \\[3\\] out of range"):
        tiny_model(encoder_layers=[3])
    assert tiny_model(encoder_layers=[-1]).config.encoder_layers == [2]  # from the end: the final state
    with pytest.raises(ValueError, match="encoder_layers \\[-4\\] out of range"):
        tiny_model(encoder_layers=[-4])
    with pytest.raises(ValueError, match="unknown variant"):
        LayAlignConfig(variant="layalign2")
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=4))
    with pytest.raises(ValueError, match="unsupported LLM family 'gpt2'.*llama, mistral"):
        LayAlignModel(LayAlignConfig(), encoder=tiny_encoder(), llm=gpt2)
    model = tiny_model()
    inputs = batch()
    inputs["encoder_attention_mask"][1] = 0
    with pytest.raises(ValueError, match="at least one encoder token"):
        model(**inputs)


def test_trainable_parameter_count_of_the_paper_setup_on_meta_device():
    from transformers import LlamaConfig, LlamaForCausalLM, MT5Config, MT5EncoderModel

    with torch.device("meta"):
        encoder = MT5EncoderModel(MT5Config(d_model=2048, d_kv=64, d_ff=5120, num_layers=24, num_heads=32,
                                            vocab_size=250112))
        llm = LlamaForCausalLM(LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                           num_attention_heads=32, num_key_value_heads=32, vocab_size=32000))
    model = LayAlignModel(LayAlignConfig(encoder="google/mt5-xl", llm="meta-math/MetaMath-7B-V1.0"), encoder, llm)
    mapping = sum(p.numel() for p in model.mapping.parameters())
    aligner = sum(p.numel() for p in model.aligner.parameters())
    assert mapping == 2048 * 4096 + 4096 + 4096 * 4096 + 4096  # about 25.2M
    assert aligner == 24 * 64 + 64 + 2048 * 4096 + 4096  # about 8.4M
    assert round(mapping / 1e6, 1) == 25.2 and round(aligner / 1e6, 1) == 8.4
    assert model.gates.numel() == 32
    assert model.num_trainable_parameters() == mapping + aligner + 32 + 4096  # + the boundary vector
