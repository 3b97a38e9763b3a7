"""Decoding throughput, training-step time and peak memory: LayAlign vs MindMerger vs the bare LLM.

Every (system, batch size) cell runs in its own child process, so that its peak memory is its own; inside the child
the work is warmed up once and then timed `--repeats` times; the table shows the median. Ratios are computed from
numbers measured in the same invocation.

    python benchmarks/speed.py --pair default                       # real default pair, CPU (float32)
    python benchmarks/speed.py --pair llama-1.5b --device cuda --dtype bfloat16   # random weights, GPU shapes
    python benchmarks/speed.py --pair llama-7b --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

SYSTEMS = ("llm", "mindmerger", "layalign")
MGSM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mgsm"

# random-weight shapes: an mT5-xl-shaped encoder with Llama-shaped LLMs
SHAPES = {
    "tiny": dict(encoder=dict(family="bert", hidden=48, layers=2, heads=4),
                 llm=dict(family="llama", hidden=64, layers=3, heads=4, kv_heads=2)),
    "llama-1.5b": dict(encoder=dict(family="mt5", hidden=2048, layers=24, heads=32, vocab=250112),
                       llm=dict(family="llama", hidden=2048, layers=24, heads=16, kv_heads=16, intermediate=5504,
                                vocab=32000)),
    "llama-7b": dict(encoder=dict(family="mt5", hidden=2048, layers=24, heads=32, vocab=250112),
                     llm=dict(family="llama", hidden=4096, layers=32, heads=32, kv_heads=32, intermediate=11008,
                              vocab=32000)),
}


def questions(n: int) -> list[str]:
    """Real MGSM questions (Swahili, Chinese, German, ... in turn) when the shared data is there."""
    rows = []
    for lang in ("sw", "zh", "de", "th", "fr", "bn", "ja", "ru"):
        path = MGSM / f"mgsm_{lang}.tsv"
        if path.is_file():
            rows += [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()[:8]]
    rows = rows or [f"Question number {i}: Janet has {i} ducks and buys 3 more. How many ducks?" for i in range(64)]
    return [rows[i % len(rows)] for i in range(n)]


def build(system: str, pair: str, dtype: str, device: str):
    """(model or None, llm, processor) for one system."""
    from layalign import LayAlignConfig, LayAlignModel
    from layalign.processing import LayAlignProcessor

    variant = "mindmerger" if system == "mindmerger" else "layalign"
    if pair == "default":
        model = LayAlignModel(LayAlignConfig(variant=variant, dtype=dtype))
    else:
        from layalign.testing import byte_tokenizer, tiny_encoder, tiny_llm

        shape = SHAPES[pair]
        with torch.device("cpu"):
            encoder = tiny_encoder(**shape["encoder"]).to(getattr(torch, dtype))
            llm = tiny_llm(**shape["llm"]).to(getattr(torch, dtype))
        model = LayAlignModel(LayAlignConfig(encoder=pair, llm=pair, variant=variant, dtype=dtype), encoder, llm)
        model.encoder_tokenizer = model.llm_tokenizer = byte_tokenizer()
    model.to(device)
    if model.gates is not None:  # open gates: the branch must really be computed and added
        with torch.no_grad():
            model.gates.fill_(0.1)
    processor = LayAlignProcessor.from_model(model, max_source_length=128, max_prompt_length=256,
                                             max_target_length=128)
    return (None if system == "llm" else model), model.llm, processor


def timed(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def llm_only_batch(llm, processor, prompts: list[str], device: str) -> dict:
    """The bare LLM reads [bos] + the prompt, left-padded."""
    ids = [[llm.config.bos_token_id] + processor._llm_ids(p) for p in prompts]
    width = max(map(len, ids))
    input_ids = torch.tensor([[0] * (width - len(x)) + x for x in ids], device=device)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=device)
    return {"input_ids": input_ids, "attention_mask": mask}


def measure_decode(system: str, pair: str, batch: int, new_tokens: int, repeats: int, dtype: str, device: str):
    from layalign.data.prompts import math_prompt

    model, llm, processor = build(system, pair, dtype, device)
    sources = questions(batch)
    prompts = [math_prompt(q) for q in sources]
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    if model is None:
        inputs = llm_only_batch(llm, processor, prompts, device)
        run = lambda: llm.generate(**inputs, **kwargs)  # noqa: E731
    else:
        inputs = {k: v.to(device) for k, v in processor(sources, prompts).items()}
        run = lambda: model.generate(**inputs, **kwargs)  # noqa: E731
    with torch.no_grad():
        seconds = timed(run, repeats, device)
    return {"tokens_per_s": batch * new_tokens / seconds, "seconds": seconds}


def measure_train(system: str, pair: str, batch: int, repeats: int, dtype: str, device: str):
    """One step = forward + backward (+ optimiser step for the adapters). The bare LLM's step is its forward +
    backward to its input embeddings at the same sequence length, the least any adapter training must pay."""
    from layalign.data.prompts import math_prompt

    model, llm, processor = build(system, pair, dtype, device)
    sources = questions(batch)
    prompts = [math_prompt(q) for q in sources]
    targets = ["Let's compute step by step: 16 - 3 - 4 = 9 eggs, and 9 * 2 = 18 dollars. The answer is: 18"] * batch
    inputs = {k: v.to(device) for k, v in processor(sources, prompts, targets).items()}
    if model is None:
        # the same LLM input LayAlign builds (soft tokens + prompt + target), as plain embeddings
        from layalign import LayAlignConfig, LayAlignModel  # noqa: F401

        ref, _, _ = build("mindmerger", pair, dtype, device)
        _, final = ref.encode(inputs["encoder_input_ids"], inputs["encoder_attention_mask"])
        with torch.no_grad():
            llm_in = ref.build_inputs(final, inputs["encoder_attention_mask"], inputs["prompt_input_ids"],
                                      inputs["prompt_attention_mask"], inputs["labels"],
                                      inputs["labels_attention_mask"])
        embeds = llm_in.embeds.detach().requires_grad_(True)

        def step():
            out = llm(inputs_embeds=embeds, attention_mask=llm_in.attention_mask, position_ids=llm_in.position_ids,
                      labels=llm_in.labels)
            out.loss.backward()
    else:
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

        def step():
            optimizer.zero_grad(set_to_none=True)
            model(**inputs).loss.backward()
            optimizer.step()
    seconds = timed(step, repeats, device)
    return {"seconds": seconds}


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child(args) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    if args.mode == "decode":
        result = measure_decode(args.system, args.pair, args.batch, args.new_tokens, args.repeats, args.dtype,
                                args.device)
    else:
        result = measure_train(args.system, args.pair, args.batch, args.repeats, args.dtype, args.device)
    result["peak_mb"] = peak_memory_mb(args.device)
    print("RESULT " + json.dumps(result))


def run_cell(args, mode: str, system: str, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--mode", mode, "--system", system, "--batch", str(batch),
           "--pair", args.pair, "--dtype", args.dtype, "--device", args.device, "--repeats", str(args.repeats),
           "--new-tokens", str(args.new_tokens)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise SystemExit(f"benchmark cell {mode}/{system}/batch {batch} failed:\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"  {mode:6s} {system:10s} batch {batch}: {result}", flush=True)
    return result


def table(args) -> str:
    rows = ["| measurement | batch | bare LLM | MindMerger | LayAlign | LayAlign / LLM | LayAlign / MindMerger |",
            "|---|---|---|---|---|---|---|"]
    for mode in args.modes:
        for batch in args.batches:
            r = {s: run_cell(args, mode, s, batch) for s in SYSTEMS}
            if mode == "decode":
                v = {s: r[s]["tokens_per_s"] for s in SYSTEMS}
                rows.append(f"| decoding, new tokens/s | {batch} | {v['llm']:.1f} | {v['mindmerger']:.1f} | "
                            f"{v['layalign']:.1f} | {v['layalign'] / v['llm']:.2f} | "
                            f"{v['layalign'] / v['mindmerger']:.2f} |")
            else:
                v = {s: r[s]["seconds"] for s in SYSTEMS}
                rows.append(f"| training step, s | {batch} | {v['llm']:.3f} | {v['mindmerger']:.3f} | "
                            f"{v['layalign']:.3f} | {v['layalign'] / v['llm']:.2f} | "
                            f"{v['layalign'] / v['mindmerger']:.2f} |")
            m = {s: r[s]["peak_mb"] for s in SYSTEMS}
            rows.append(f"| {mode}: peak memory, MB | {batch} | {m['llm']:.0f} | {m['mindmerger']:.0f} | "
                        f"{m['layalign']:.0f} | {m['layalign'] / m['llm']:.2f} | "
                        f"{m['layalign'] / m['mindmerger']:.2f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", default="default", choices=["default", *SHAPES])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--modes", nargs="+", default=["decode", "train"], choices=["decode", "train"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="markdown file (default docs/results/speed-PAIR-DEVICE.md)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="decode", help=argparse.SUPPRESS)
    parser.add_argument("--system", default="layalign", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    machine = (torch.cuda.get_device_name() if args.device.startswith("cuda")
               else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads")
    memory = "CUDA max allocated" if args.device != "cpu" else "max RSS"
    print(f"pair {args.pair}, {args.device}, {args.dtype}, {args.new_tokens} new tokens, median of {args.repeats}")
    body = table(args)
    command = "python benchmarks/speed.py " + " ".join(sys.argv[1:])
    report = (f"# Speed: {args.pair} pair on {args.device} ({args.dtype})\n\n"
              f"- date: {datetime.date.today()}\n- machine: {machine}; torch {torch.__version__}\n"
              f"- command: `{command}`\n- decoding: greedy, exactly {args.new_tokens} new tokens per example, "
              f"time of the whole generate call (encoder and prefill included), median of {args.repeats} after "
              f"one warm-up; training: forward + backward (+ AdamW step on the adapters), same batch\n"
              f"- peak memory: each cell in its own process ({memory})"
              f"\n\n{body}\n")
    print("\n" + report)
    out = Path(args.out or f"docs/results/speed-{args.pair}-{args.device.split(':')[0]}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
