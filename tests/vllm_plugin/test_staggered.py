"""Continuous batching under memory pressure: requests with sources of different lengths arrive in bursts while
others decode, through the engine's own add_request / step loop, into a KV cache too small for all of them, so that
the scheduler preempts requests and recomputes them later. Every greedy output must equal that request's own
LayAlignModel.generate, token for token (within float ties, as parity.py), and the engine must keep running.

The first case is issue 26's: the shipped trained model (nonzero gates), 45 XNLI and short requests of 300 new tokens
each (ignore_eos), 38 blocks, max_model_len 512, which once died with "a new request's placeholders do not match".
MindMerger and LangBridge directories (randomised adapters on the default pair) run the same loop with mixed
max_tokens and fewer new tokens (CPU time), in a smaller cache so that they are preempted too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
from parity import CASES, close_llm, compare, reference_greedy, xnli_cases  # noqa: E402

from layalign import LayAlignConfig, LayAlignModel  # noqa: E402
from layalign.integrations.vllm.export import export  # noqa: E402
from layalign.testing import randomize_adapters  # noqa: E402

pytestmark = [pytest.mark.real, pytest.mark.slow]
XNLI_DEV = Path("../shared/data/xnli/dev")  # relative to the repository root, as the tasks' default data paths
SHIPPED = "layalign-xnli-e5-smollm2"
BURST, EVERY = 5, 8  # 5 requests arrive every 8 engine steps


def _requests(count: int) -> list[tuple[str, str, str]]:
    """XNLI dev rows (long sources: premise and hypothesis) and short sentences, alternating."""
    long = xnli_cases(XNLI_DEV, per_lang=3)
    mixed = [case for pair in zip(long, CASES) for case in pair] + long[len(CASES):] + CASES[len(long):]
    assert len(mixed) >= count
    return mixed[:count]


def _run_staggered(vllm_dir: Path, cases, max_tokens: list[int], blocks: int, monkeypatch) -> dict:
    """Drive the engine step by step with arrivals in bursts; returns the outputs by request, the preemptions the
    scheduler made and the sources the model encoded (a recomputed request is encoded again)."""
    from vllm import LLM, SamplingParams
    from vllm.v1.core.sched.scheduler import Scheduler

    from layalign.integrations.vllm.model import LayAlignForConditionalGeneration

    preempted: list[str] = []
    original_preempt = Scheduler._preempt_request
    monkeypatch.setattr(Scheduler, "_preempt_request",
                        lambda self, request, *a, **k: preempted.append(request.request_id)
                        or original_preempt(self, request, *a, **k))
    encoded: list[int] = []
    original_encode = LayAlignForConditionalGeneration.encode_source
    monkeypatch.setattr(LayAlignForConditionalGeneration, "encode_source",
                        lambda self, ids: encoded.append(ids.numel()) or original_encode(self, ids))

    llm = LLM(str(vllm_dir), dtype="float32", max_model_len=512, enforce_eager=True, seed=0,
              num_gpu_blocks_override=blocks)
    encoded.clear()  # (start-up profiling encodes a dummy source)
    engine = llm.llm_engine
    outputs: dict[int, object] = {}
    try:
        waiting = list(range(len(cases)))
        step = 0
        most_running = 0
        while waiting or engine.has_unfinished_requests():
            while waiting and waiting[0] // BURST * EVERY <= step:
                i = waiting.pop(0)
                _, source, prompt = cases[i]
                params = SamplingParams(temperature=0.0, max_tokens=max_tokens[i], ignore_eos=True, logprobs=2)
                engine.add_request(str(i), {"prompt": prompt, "multi_modal_data": {"source": source}}, params)
            for out in engine.step():
                if out.finished:
                    outputs[int(out.request_id)] = out.outputs[0]
            most_running = max(most_running, engine.get_num_unfinished_requests())
            step += 1
    finally:
        close_llm(llm)
    return {"outputs": outputs, "preempted": preempted, "encoded": list(encoded), "steps": step,
            "most_running": most_running}


def _check(model: LayAlignModel, vllm_dir: Path, cases, max_tokens: list[int], blocks: int, monkeypatch) -> dict:
    run = _run_staggered(vllm_dir, cases, max_tokens, blocks, monkeypatch)
    outputs = run["outputs"]
    assert sorted(outputs) == list(range(len(cases)))  # the engine never died, every request finished
    tokens = [list(outputs[i].token_ids) for i in range(len(cases))]
    assert [len(t) for t in tokens] == max_tokens
    # preemption and recompute happened: the scheduler preempted running requests, and those were encoded again
    assert len(run["preempted"]) >= 1 and len(run["encoded"]) > len(cases)
    ref_tokens, ref_scores = reference_greedy(model, cases, max_tokens, ignore_eos=True)
    results = compare(cases, tokens, [list(outputs[i].logprobs) for i in range(len(cases))], ref_tokens, ref_scores)
    bad = [r for r in results if not r.within_tolerance]
    assert not bad, "vLLM differs from LayAlignModel.generate beyond float ties:\n" + "\n".join(map(str, bad))
    run["identical"] = sum(r.identical for r in results)
    print(f"{len(cases)} requests, {run['steps']} engine steps, at most {run['most_running']} unfinished at once, "
          f"{len(run['preempted'])} preemptions of {len(set(run['preempted']))} requests, "
          f"{len(run['encoded']) - len(cases)} re-encoded; {run['identical']} of {len(cases)} identical")
    return run


@pytest.mark.skipif(not XNLI_DEV.is_dir(), reason="needs ../shared/data/xnli/dev beside the repository")
def test_issue_case_shipped_model_survives_preemption(tmp_path, monkeypatch):
    model = LayAlignModel.from_pretrained(SHIPPED).eval()
    assert bool((model.gates != 0).all())  # the trained gates: the fusion branch matters
    cases = _requests(45)
    assert len({len(model.encoder_tokenizer(source).input_ids) for _, source, _ in cases}) >= 10
    _check(model, export(SHIPPED, tmp_path / "vllm"), cases, [300] * len(cases), 38, monkeypatch)


@pytest.mark.skipif(not XNLI_DEV.is_dir(), reason="needs ../shared/data/xnli/dev beside the repository")
@pytest.mark.parametrize("variant", ["mindmerger", "langbridge"])
def test_soft_token_variants_survive_preemption(tmp_path, monkeypatch, variant):
    model = LayAlignModel(LayAlignConfig(variant=variant)).eval()
    randomize_adapters(model, scale=0.05, seed=3)
    model.save_pretrained(tmp_path / "model")
    # LangBridge's LLM gets no prompt: the source is all there is
    cases = [(lang, source, "" if variant == "langbridge" else prompt)
             for lang, source, prompt in _requests(36 if variant == "mindmerger" else 32)]
    # LangBridge's sequences are shorter (no prompt): longer answers and a smaller cache (5 blocks of 128, the
    # fewest that hold max_model_len 512 beside vLLM's reserved block) so that running requests still outgrow it
    start, blocks = (40, 6) if variant == "mindmerger" else (150, 5)
    max_tokens = [start + 16 * (i % 4) for i in range(len(cases))]  # mindmerger 40-88, langbridge 150-198
    with torch.no_grad():
        _check(model, export(tmp_path / "model", tmp_path / "vllm"), cases, max_tokens, blocks, monkeypatch)
