"""Serving numbers: vLLM (the layalign plugin) against LayAlignModel.generate batched, on one trained (or
adapter-randomised) model of the default pair. Runs inside the vLLM venv (.ci/setup-vllm.sh):

    OMP_NUM_THREADS=1 .ci/venv-vllm/bin/python benchmarks/vllm_serving.py layalign-xnli-e5-smollm2 \
        --concurrency 8 32 --rates 0.5 1 inf --out docs/results/vllm-cpu.md
    # on a GPU (the CUDA build of vLLM; higher rates and more requests, CUDA graphs on):
    .ci/venv-vllm/bin/python benchmarks/vllm_serving.py layalign-xnli-e5-smollm2 --device cuda --compile \
        --requests 256 --rates 4 16 64 inf --concurrency 1 32 128 --out docs/results/vllm-gpu.md

Requests are real MGSM questions, 8 languages in turn (the encoder reads the question, the LLM its maths prompt); every
one generates exactly `--new-tokens` tokens (eos ignored on both sides), so both systems do the same work. Two
workloads, both systems in this one process, one after the other, on the same threads:

- closed loop, concurrency c: the requests go in waves of c, each wave submitted together and finished before the
  next (c clients in lock-step); vLLM gets a wave as one `LLM.generate` call, generate as one padded batch.
- open loop, request rate r: arrivals are a Poisson process of rate r (exponential gaps, seeded), as in vLLM's own
  serving benchmark (`vllm bench serve --request-rate`); `inf` sends every request at time 0. The engine's own loop
  (`add_request` when a request arrives, `step` in between) runs them, so requests join and leave the running batch
  as on a server (without the HTTP layer). Time to first token (TTFT) counts from a request's arrival; inter-token
  latency (ITL) is the gap between successive tokens of a request, over all requests. Beside it, generate on the
  same requests as padded batches of `--batch` (all arrived at time 0: its best case), its steps timed.

The machine is shared: absolute numbers move with its load; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# in-process engine; a KV cache (self- and cross-attention) that holds 32 requests at once; torch's own threads
# (OMP_NUM_THREADS) rather than vLLM's core binding, so that both systems run on the same threads
for _name, _value in {"HF_HUB_OFFLINE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "4",
                      "TOKENIZERS_PARALLELISM": "false", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}.items():
    os.environ.setdefault(_name, _value)

import torch  # noqa: E402
from common import questions  # noqa: E402

CONCURRENCY = (1, 8, 32)
RATES = (0.5, 1.0, 2.0, math.inf)


@dataclass
class Timeline:
    """One request's (or one batch's) clock: when it arrived and when each new token came out."""

    arrival: float
    tokens: list[float] = field(default_factory=list)
    began: float | None = None  # when its batch started running (generate: batches run one after the other)

    @property
    def ttft(self) -> float:
        return self.tokens[0] - self.arrival

    @property
    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.tokens, self.tokens[1:])]


@dataclass
class OpenLoopResult:
    label: str
    seconds: float
    requests: int
    new_tokens: int
    ttft: list[float]
    itl: list[float]
    # where the time went: request processing (vLLM's add_request: tokenisers, the plugin's processor), steps that
    # ran a prefill (vLLM: with the decodes beside it), decode-only steps and how many of them
    processing: float = 0.0
    prefill: float = 0.0
    decode: float = 0.0
    decode_steps: int = 0

    def time_row(self) -> str:
        idle = self.seconds - self.processing - self.prefill - self.decode
        parts = (self.processing, self.prefill, self.decode, idle)
        share = [f"{x:.1f} s ({100 * x / self.seconds:.0f}%)" for x in parts]
        return (f"| {self.label} | {' | '.join(share)} | {1000 * self.decode / max(1, self.decode_steps):.0f} |")

    def row(self) -> str:
        return (f"| {self.label} | {self.requests / self.seconds:.2f} | {self.new_tokens / self.seconds:.1f} | "
                f"{_ms(self.ttft, 50)} | {_ms(self.ttft, 95)} | {_ms(self.itl, 50)} | {_ms(self.itl, 95)} |")


def _ms(values: list[float], q: int) -> str:
    """The q-th percentile in milliseconds (nearest rank)."""
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]:.0f}"


def _requests(sources: list[str], prompts: list[str]) -> list[dict]:
    return [{"prompt": p, "multi_modal_data": {"source": s}} for s, p in zip(sources, prompts, strict=True)]


def _params(new_tokens: int):
    from vllm import SamplingParams

    return SamplingParams(temperature=0.0, max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True)


# ---------------------------------------------------------------------------------------------------- closed loop


def run_vllm(llm, sources: list[str], prompts: list[str], concurrency: int, new_tokens: int) -> tuple[float, int]:
    generated, start = 0, time.perf_counter()
    requests = _requests(sources, prompts)
    for i in range(0, len(requests), concurrency):
        outputs = llm.generate(requests[i:i + concurrency], _params(new_tokens), use_tqdm=False)
        generated += sum(len(o.outputs[0].token_ids) for o in outputs)
    return time.perf_counter() - start, generated


def run_generate(model, processor, sources: list[str], prompts: list[str], concurrency: int, new_tokens: int
                 ) -> tuple[float, int, list[Timeline]]:
    """Padded batches of `concurrency`, one after the other; each batch's Timeline (arrival = the run's start, one
    entry per decoding step, read by a stopping criterion that never stops)."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StepClock(StoppingCriteria):
        def __init__(self, timeline: Timeline):
            self.timeline = timeline

        def __call__(self, input_ids, scores, **kwargs):
            self.timeline.tokens.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    generated, start, timelines = 0, time.perf_counter(), []
    for i in range(0, len(sources), concurrency):
        timelines.append(Timeline(start, began=time.perf_counter()))
        batch = processor(sources[i:i + concurrency], prompts=prompts[i:i + concurrency])
        batch = {k: v.to(model.llm.device) for k, v in batch.items()}
        out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                             stopping_criteria=StoppingCriteriaList([StepClock(timelines[-1])]))
        generated += out.numel()
    return time.perf_counter() - start, generated, timelines


# ---------------------------------------------------------------------------------------------------- open loop


def arrival_times(n: int, rate: float, seed: int = 0) -> list[float]:
    """Seconds from the start: a Poisson process of `rate` requests/s (all at 0 for an infinite rate)."""
    if math.isinf(rate):
        return [0.0] * n
    rng, clock, times = random.Random(seed), 0.0, []
    for _ in range(n):
        clock += rng.expovariate(rate)
        times.append(clock)
    return times


def run_open_loop(llm, sources: list[str], prompts: list[str], rate: float, new_tokens: int, seed: int = 0
                  ) -> OpenLoopResult:
    """The engine's own loop: a request is added once its arrival time has passed, and `step` runs the batch."""
    engine, params = llm.llm_engine, _params(new_tokens)
    requests = _requests(sources, prompts)
    offsets = arrival_times(len(requests), rate, seed)
    timelines: dict[str, Timeline] = {}
    seen: dict[str, int] = {}
    spent = {"processing": 0.0, "prefill": 0.0, "decode": 0.0, "decode_steps": 0}
    start, nxt = time.perf_counter(), 0
    while nxt < len(requests) or engine.has_unfinished_requests():
        now = time.perf_counter() - start
        while nxt < len(requests) and offsets[nxt] <= now:
            request_id = f"r{rate}-{nxt}"
            timelines[request_id] = Timeline(start + offsets[nxt])
            engine.add_request(request_id, requests[nxt], params)
            nxt += 1
        spent["processing"] += time.perf_counter() - start - now
        if not engine.has_unfinished_requests():  # idle until the next arrival
            time.sleep(max(0.0, offsets[nxt] - (time.perf_counter() - start)))
            continue
        before = time.perf_counter()
        outputs = engine.step()
        stamp = time.perf_counter()
        prefilled = False
        for output in outputs:
            count = len(output.outputs[0].token_ids)
            prefilled |= count > 0 and output.request_id not in seen
            # a step gives one token per running request; stamp each new one with the step's end
            timelines[output.request_id].tokens += [stamp] * (count - seen.get(output.request_id, 0))
            seen[output.request_id] = count
        spent["prefill" if prefilled else "decode"] += stamp - before
        spent["decode_steps"] += not prefilled
    seconds = time.perf_counter() - start
    label = "all at once" if math.isinf(rate) else f"{rate:g} req/s"
    return OpenLoopResult(f"vLLM, {label}", seconds, len(requests), sum(seen.values()),
                          [t.ttft for t in timelines.values()], [g for t in timelines.values() for g in t.gaps],
                          **spent)


# ---------------------------------------------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", default=None,
                        help="a trained LayAlign directory (default: the default pair with randomised adapters)")
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level and per rate")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="*", default=list(CONCURRENCY),
                        help="closed-loop levels (none: skip)")
    parser.add_argument("--rates", type=float, nargs="*", default=list(RATES),
                        help="open-loop request rates per second, `inf` for all at once (none: skip)")
    parser.add_argument("--batch", type=int, default=32, help="generate's batch size beside the open loop")
    parser.add_argument("--device", default="cpu", help="where LayAlignModel.generate runs (vLLM picks its own)")
    parser.add_argument("--compile", action="store_true", help="let vLLM compile (CUDA graphs); default eager")
    parser.add_argument("--out", default=None, help="write the markdown report here")
    args = parser.parse_args(argv)

    import vllm
    from vllm import LLM

    from layalign import LayAlignConfig, LayAlignModel, LayAlignProcessor
    from layalign.integrations.vllm.export import export
    from layalign.testing import randomize_adapters

    load_before = os.getloadavg()[0]
    tmp = tempfile.TemporaryDirectory()
    if args.model_dir is None:  # a fresh clone has no trained directory: the default pair, adapters randomised
        model = LayAlignModel(LayAlignConfig()).eval()
        randomize_adapters(model, scale=0.05)
        model_dir = Path(tmp.name) / "model"
        model.save_pretrained(model_dir)
    else:
        model_dir = Path(args.model_dir)
        model = LayAlignModel.from_pretrained(model_dir).eval()
    model.to(args.device)
    processor = LayAlignProcessor.from_model(model, **model.config.extra.get("lengths", {}))
    processor.warn_truncation = False
    sources, prompts = questions(args.requests)
    llm = LLM(str(export(model_dir, Path(tmp.name) / "vllm")), dtype=model.config.dtype,
              enforce_eager=not args.compile, max_model_len=1024,
              max_num_seqs=max([*args.concurrency, args.batch, args.requests if args.rates else 1]), seed=0)

    # one warm-up wave each (first-call allocations, lazy imports), then the measured runs
    run_vllm(llm, sources[:2], prompts[:2], 2, 2)
    run_generate(model, processor, sources[:2], prompts[:2], 2, 2)
    closed = []
    for c in args.concurrency:
        v_time, v_tokens = run_vllm(llm, sources, prompts, c, args.new_tokens)
        h_time, h_tokens, _ = run_generate(model, processor, sources, prompts, c, args.new_tokens)
        closed.append((c, len(sources) / v_time, v_tokens / v_time, len(sources) / h_time, h_tokens / h_time))
        print(f"concurrency {c}: vLLM {closed[-1][2]:.1f} new tok/s; generate {closed[-1][4]:.1f} new tok/s",
              flush=True)
    opened = []
    for rate in args.rates:
        opened.append(run_open_loop(llm, sources, prompts, rate, args.new_tokens))
        print(opened[-1].row(), flush=True)
    if args.rates:
        h_time, h_tokens, timelines = run_generate(model, processor, sources, prompts, args.batch, args.new_tokens)
        opened.append(OpenLoopResult(f"generate, batches of {args.batch}, all at once", h_time, len(sources), h_tokens,
                                     [t.ttft for t in timelines for _ in range(args.batch)][:len(sources)],
                                     [g for t in timelines for g in t.gaps],
                                     # its processor and encoder count as prefill: all before its first token
                                     prefill=sum(t.tokens[0] - t.began for t in timelines),
                                     decode=sum(t.tokens[-1] - t.tokens[0] for t in timelines),
                                     decode_steps=sum(len(t.tokens) - 1 for t in timelines)))
        print(opened[-1].row(), flush=True)

    command = " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)"),
                        ".ci/venv-vllm/bin/python", "benchmarks/vllm_serving.py", *(argv or sys.argv[1:])])
    lines = [
        "# Serving on the CPU: vLLM vs LayAlignModel.generate",
        "",
        f"Command: `{command}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other jobs while this ran (1-minute "
        f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; absolute numbers move "
        f"with the load: compare ratios within this run); {torch.get_num_threads()} torch thread(s); "
        f"vLLM {vllm.__version__} ({'compiled' if args.compile else 'eager'}), torch {torch.__version__}; model "
        f"`{args.model_dir or 'default pair, randomised adapters'}` (variant {model.config.variant}, "
        f"{model.config.dtype}).",
        f"Workload: {len(sources)} MGSM questions per level and per rate (the encoder reads the question, the LLM its "
        f"maths prompt), {args.new_tokens} new tokens each (eos ignored), greedy. Both systems in one process, one "
        "after the other. See the script's docstring for the two workloads.",
    ]
    if closed:
        lines += [
            "",
            "## Closed loop: c clients in lock-step",
            "",
            "| concurrent requests | vLLM req/s | vLLM new tok/s | generate req/s | generate new tok/s "
            "| vLLM / generate |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| {c} | {vr:.2f} | {vt:.1f} | {hr:.2f} | {ht:.1f} | {vt / ht:.2f}x |"
                  for c, vr, vt, hr, ht in closed]
    if opened:
        lines += [
            "",
            "## Open loop: Poisson arrivals",
            "",
            "Throughput over the whole run (first arrival to last token); TTFT from each request's arrival; ITL over "
            "every pair of successive tokens of a request. Generate has no arrivals: its row is its best case, every "
            "request there at time 0, a batch's TTFT its prefill.",
            "",
            "| system, arrivals | req/s | new tok/s | TTFT p50 ms | TTFT p95 ms | ITL p50 ms | ITL p95 ms |",
            "|---|---|---|---|---|---|---|",
            *(result.row() for result in opened),
            "",
            "## Where the time goes",
            "",
            "The same runs, their wall time split: request processing (vLLM's `add_request`: tokenisers and the "
            "plugin's processor), steps that ran a prefill (vLLM: new requests' encoder and prefill, with the running "
            "requests' decode beside them; generate: processor, encoder and prefill of a batch), decode-only steps, "
            "and the rest (waiting for arrivals, output handling).",
            "",
            "| system, arrivals | processing | steps with a prefill | decode-only steps | rest | ms per decode step |",
            "|---|---|---|---|---|---|",
            *(result.time_row() for result in opened),
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
