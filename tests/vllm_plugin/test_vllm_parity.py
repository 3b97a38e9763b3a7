"""vLLM (the layalign plugin) against LayAlignModel.generate on the real default pair: greedy, token for token.

The adapters are randomised here and the gates set well away from zero, so a fresh clone runs it (the pair comes
from the model cache) and the fusion branch matters; the trained directory's report is docs/results/vllm-parity.md.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
from parity import CASES, close_llm, compare, make_llm, randomised, reference_greedy, vllm_greedy  # noqa: E402

from layalign import LayAlignModel  # noqa: E402
from layalign.integrations.vllm.export import export  # noqa: E402

pytestmark = [pytest.mark.real, pytest.mark.slow]


def _check(model: LayAlignModel, directory, cases, plain_cases=(), on_ready=None, also=None, renderer=True
           ) -> list:
    """vLLM on `cases` (explicit source + prompt) and on `plain_cases` (the text alone, through the renderer, which
    LayAlignModel gets as source and prompt) against the reference, within float ties."""
    ref_tokens, ref_scores = reference_greedy(model, [*cases, *plain_cases])
    llm = make_llm(export(directory, directory / "vllm"), renderer=renderer)
    if on_ready is not None:
        on_ready()
    try:
        tokens, logprobs = vllm_greedy(llm, cases)
        if plain_cases:
            more = vllm_greedy(llm, plain_cases, plain=True)
            tokens, logprobs = tokens + more[0], logprobs + more[1]
        if also is not None:
            also(llm, tokens)
    finally:
        close_llm(llm)
    results = compare([*cases, *plain_cases], tokens, logprobs, ref_tokens, ref_scores)
    bad = [r for r in results if not r.within_tolerance]
    assert not bad, "vLLM differs from LayAlignModel.generate beyond float ties:\n" + "\n".join(map(str, bad))
    return results[:len(cases)]


def test_layalign_greedy_outputs_equal_generate_token_for_token(tmp_path, monkeypatch):
    from layalign.integrations.vllm.model import LayAlignForConditionalGeneration

    # the encoder side (encoder, mapping, every layer's K/V) runs once per request, not per decoding step: count it
    # (the engine runs in this process: VLLM_ENABLE_V1_MULTIPROCESSING=0)
    encoded: list[int] = []
    original = LayAlignForConditionalGeneration.encode_source
    monkeypatch.setattr(LayAlignForConditionalGeneration, "encode_source",
                        lambda self, ids: encoded.append(ids.numel()) or original(self, ids))
    model = randomised("layalign", tmp_path)
    # and the OpenAI-API path: a bare text is the source and (template "{query}") the LLM prompt
    plain = [(lang, source, source) for lang, source, _ in CASES[::4]]
    counted: list[int] = []
    results = _check(model, tmp_path, CASES, plain, on_ready=encoded.clear,  # (start-up profiling runs it too)
                     also=lambda llm, tokens: counted.append(len(encoded)))
    assert counted == [len(CASES) + len(plain)]
    assert max(len(r.vllm) for r in results) > 1  # ... while requests decoded several steps
    assert len(results) >= 16 and len({r.lang for r in results}) >= 8
    # the fusion branch is exercised: without it the reference says something else for most requests
    with torch.no_grad():
        model.gates.zero_()
    without, _ = reference_greedy(model, CASES[:4])
    assert sum(w != r.reference for w, r in zip(without, results[:4])) >= 2


@pytest.mark.parametrize("variant", ["mindmerger", "langbridge"])
def test_soft_token_variants_equal_generate(tmp_path, variant):
    model = randomised(variant, tmp_path, seed=1)
    # LangBridge's encoder reads the (templated) instruction and its LLM gets no prompt: the source is all there is
    cases = [(lang, source, "" if variant == "langbridge" else prompt) for lang, source, prompt in CASES[::3]]

    def beside_a_request_without_source(llm, tokens):
        # vLLM's default renderer lets a prompt without a source through (it gets no encoder); the request next to
        # it in the batch must keep its own soft tokens
        from vllm import SamplingParams

        _, source, prompt = cases[0]
        outputs = llm.generate([{"prompt": "Hello there"}, {"prompt": prompt, "multi_modal_data": {"source": source}}],
                               SamplingParams(temperature=0.0, max_tokens=len(tokens[0])), use_tqdm=False)
        assert list(outputs[1].outputs[0].token_ids) == tokens[0]

    _check(model, tmp_path, cases, also=beside_a_request_without_source, renderer=False)


def _tiny_llm_dir(directory, family: str):
    """A small random decoder of `family` saved as a transformers directory, with the default LLM's tokenizer (the
    real qwen2.5-coder-0.5b / a Mistral 7B would cost minutes per test on two CPU cores; the layer code is the same)."""
    from transformers import AutoTokenizer

    from layalign.backbones.loading import resolve
    from layalign.model.config import LayAlignConfig as Config
    from layalign.testing import tiny_llm

    tokenizer = AutoTokenizer.from_pretrained(resolve(Config().llm))
    llm = tiny_llm(family, hidden=256, layers=4, heads=4, kv_heads=2, vocab=len(tokenizer), seed=5,
                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    llm.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_qwen2_and_mistral_decoders_equal_generate(tmp_path, family):
    import json

    llm_dir = _tiny_llm_dir(tmp_path / "llm", family)
    model = randomised("layalign", tmp_path / "model", seed=4, llm=str(llm_dir))
    if family == "qwen2":  # the family's own layout: biases on q, k and v
        assert model.llm.model.layers[0].self_attn.k_proj.bias is not None
    results = _check(model, tmp_path / "model", CASES[::2])
    config = json.loads((tmp_path / "model" / "vllm" / "config.json").read_text())
    assert config["model_type"] == family
    assert max(len(r.vllm) for r in results) > 1
    with torch.no_grad():  # the fusion branch is exercised
        model.gates.zero_()
    without, _ = reference_greedy(model, CASES[::2][:4])
    assert sum(w != r.reference for w, r in zip(without, results[:4])) >= 1
