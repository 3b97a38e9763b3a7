"""Serving throughput: vLLM (the layalign plugin) against LayAlignModel.generate batched, at 1, 8 and 32 concurrent
requests, on one trained (or adapter-randomised) model of the default pair. Runs inside .ci/venv-vllm:

    OMP_NUM_THREADS=1 .ci/venv-vllm/bin/python benchmarks/vllm_serving.py runs/encoder-dropout/drop-true/final \
        --out docs/results/vllm-cpu.md

Concurrency c: `--requests` requests (real MGSM questions, 8 languages in turn: the encoder reads the question, the
LLM its maths prompt) go in waves of c, each wave submitted together and finished before the next (c clients in
lock-step); vLLM gets the wave as one `LLM.generate` call, LayAlignModel.generate as one padded batch. Every request
generates exactly `--new-tokens` tokens (eos ignored on both sides), so both do the same work. Both run in this one
process, one after the other, on the same threads; requests/s and new tokens/s are over the whole run (encoder and
prefill included). The machine is shared: absolute numbers move with its load, the ratio measured in one run less.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# in-process engine; a KV cache (self- and cross-attention) that holds 32 requests at once; torch's own threads
# (OMP_NUM_THREADS) rather than vLLM's core binding, so that both systems run on the same threads
for _name, _value in {"HF_HUB_OFFLINE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "4",
                      "TOKENIZERS_PARALLELISM": "false", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}.items():
    os.environ.setdefault(_name, _value)

import torch  # noqa: E402
from common import questions  # noqa: E402

CONCURRENCY = (1, 8, 32)


def run_vllm(llm, sources: list[str], prompts: list[str], concurrency: int, new_tokens: int) -> tuple[float, int]:
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True)
    generated, start = 0, time.perf_counter()
    for i in range(0, len(sources), concurrency):
        wave = [{"prompt": p, "multi_modal_data": {"source": s}}
                for s, p in zip(sources[i:i + concurrency], prompts[i:i + concurrency])]
        generated += sum(len(o.outputs[0].token_ids) for o in llm.generate(wave, params, use_tqdm=False))
    return time.perf_counter() - start, generated


def run_generate(model, processor, sources: list[str], prompts: list[str], concurrency: int, new_tokens: int
                 ) -> tuple[float, int]:
    generated, start = 0, time.perf_counter()
    for i in range(0, len(sources), concurrency):
        batch = processor(sources[i:i + concurrency], prompts=prompts[i:i + concurrency])
        out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        generated += out.numel()
    return time.perf_counter() - start, generated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", default=None,
                        help="a trained LayAlign directory (default: the default pair with randomised adapters)")
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--out", default=None, help="write the markdown table here")
    args = parser.parse_args(argv)

    import vllm
    from vllm import LLM

    from layalign import LayAlignConfig, LayAlignModel, LayAlignProcessor
    from layalign.integrations.vllm import export
    from layalign.testing import randomize_adapters

    tmp = tempfile.TemporaryDirectory()
    if args.model_dir is None:  # a fresh clone has no trained directory: the default pair, adapters randomised
        model = LayAlignModel(LayAlignConfig()).eval()
        randomize_adapters(model, scale=0.05)
        model_dir = Path(tmp.name) / "model"
        model.save_pretrained(model_dir)
    else:
        model_dir = Path(args.model_dir)
        model = LayAlignModel.from_pretrained(model_dir).eval()
    processor = LayAlignProcessor.from_model(model, **model.config.extra.get("lengths", {}))
    processor.warn_truncation = False
    sources, prompts = questions(args.requests)
    llm = LLM(str(export(model_dir, Path(tmp.name) / "vllm")), dtype=model.config.dtype, enforce_eager=True,
              max_model_len=1024, max_num_seqs=max(args.concurrency), seed=0)

    # one warm-up wave each (first-call allocations, lazy imports), then the measured runs
    run_vllm(llm, sources[:2], prompts[:2], 2, 2)
    run_generate(model, processor, sources[:2], prompts[:2], 2, 2)
    rows = []
    for c in args.concurrency:
        v_time, v_tokens = run_vllm(llm, sources, prompts, c, args.new_tokens)
        h_time, h_tokens = run_generate(model, processor, sources, prompts, c, args.new_tokens)
        rows.append((c, len(sources) / v_time, v_tokens / v_time, len(sources) / h_time, h_tokens / h_time))
        print(f"concurrency {c}: vLLM {rows[-1][1]:.2f} req/s {rows[-1][2]:.1f} tok/s; "
              f"generate {rows[-1][3]:.2f} req/s {rows[-1][4]:.1f} tok/s", flush=True)

    command = " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "(unset)"),
                        ".ci/venv-vllm/bin/python", "benchmarks/vllm_serving.py", *(argv or sys.argv[1:])])
    lines = [
        "# Serving on the CPU: vLLM vs LayAlignModel.generate",
        "",
        f"Command: `{command}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other jobs while this ran), "
        f"{torch.get_num_threads()} torch thread(s); vLLM {vllm.__version__} (CPU build, eager), torch "
        f"{torch.__version__}; model `{args.model_dir or 'default pair, randomised adapters'}` "
        f"(variant {model.config.variant}, {model.config.dtype}).",
        f"Workload: {len(sources)} MGSM questions per level (the encoder reads the question, the LLM its maths "
        "prompt), "
        f"{args.new_tokens} new tokens each (eos ignored), greedy; concurrency c = waves of c requests submitted "
        "together. Both systems in one process, one after the other.",
        "",
        "| concurrent requests | vLLM req/s | vLLM new tok/s | generate req/s | generate new tok/s | vLLM / generate |",
        "|---|---|---|---|---|---|",
    ]
    for c, vr, vt, hr, ht in rows:
        lines.append(f"| {c} | {vr:.2f} | {vt:.1f} | {hr:.2f} | {ht:.1f} | {vt / ht:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
