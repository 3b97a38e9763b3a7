"""Decoding throughput, training-step time and peak memory: LayAlign vs MindMerger vs the bare LLM.

Timing: the three systems are built in one process and timed round-robin (repeat 1 of each, then repeat 2 of each,
...), after one warm-up each, so that a change in machine load hits all of them alike; the table shows medians and
ratios of numbers measured in this one invocation. Decoding is reported two ways: end to end (the whole generate
call: encoder, aligner and prefill included; LayAlign and MindMerger read the encoder's tokens in front of the same
prompt, so their prefill is longer) and per decoding step (timed inside generate, from the first new token to the
last), which is where the fusion branch runs. Each system then runs once more alone, in a process of its own: its
peak memory and, for training, its step time alone (the allocator's heap is then the system's own, as in a `layalign
train` process; in the shared process it also holds the other two models' memory). The CPU allocator is set up as
the `layalign` command sets it up (layalign.allocator.keep_freed_memory: freed memory is reused rather than
page-faulted in afresh at every step), for every system alike; `--malloc default` keeps glibc's defaults instead.

    python benchmarks/speed.py --pair default                       # real default pair, CPU (float32)
    python benchmarks/speed.py --pair default --modes decode --cache static   # preallocated key/value cache
    python benchmarks/speed.py --pair default --modes train                   # training only
    python benchmarks/speed.py --pair default --modes train --malloc default  # glibc's allocator defaults
    python benchmarks/speed.py --pair llama-1.5b --device cuda --dtype bfloat16   # random weights, GPU shapes
    python benchmarks/speed.py --pair llama-7b --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import platform
import re
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
    """(model, its LLM, processor) for MindMerger or LayAlign."""
    from layalign import LayAlignConfig, LayAlignModel
    from layalign.model.processing import LayAlignProcessor

    variant = system
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
    return model, model.llm, processor


def build_llm(pair: str, dtype: str, device: str):
    """The bare LLM and its tokenizer alone (no encoder in memory)."""
    if pair == "default":
        from layalign.backbones.catalogue import default_pair
        from layalign.backbones.loading import load_llm

        llm, tokenizer = load_llm(default_pair()[1], dtype)
    else:
        from layalign.testing import byte_tokenizer, tiny_llm

        llm, tokenizer = tiny_llm(**SHAPES[pair]["llm"]).to(getattr(torch, dtype)), byte_tokenizer()
    return llm.to(device), tokenizer


def llm_only_batch(llm, tokenizer, prompts: list[str], device: str) -> dict:
    """The bare LLM reads [bos] + the prompt, left-padded."""
    ids = [[llm.config.bos_token_id] + tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(map(len, ids))
    input_ids = torch.tensor([[0] * (width - len(x)) + x for x in ids], device=device)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=device)
    return {"input_ids": input_ids, "attention_mask": mask}


class StepClock:
    """A logits processor that only notes the time: generate calls it once per new token, right after that token's
    forward pass, so the gaps between its calls are the decoding steps (the prefill comes before the first call)."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        if scores.is_cuda:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())
        return scores


def decode_run(system: str, pair: str, batch: int, new_tokens: int, dtype: str, device: str, cache: str):
    """A callable that generates `new_tokens` tokens for the batch and returns the mean seconds per decoding step
    (the time from the first new token to the last, over new_tokens - 1 steps)."""
    from transformers import LogitsProcessorList

    from layalign.data.prompts import math_prompt

    sources = questions(batch)
    prompts = [math_prompt(q) for q in sources]
    if system == "llm":
        llm, tokenizer = build_llm(pair, dtype, device)
        inputs, generate = llm_only_batch(llm, tokenizer, prompts, device), llm.generate
    else:
        model, _, processor = build(system, pair, dtype, device)
        inputs, generate = {k: v.to(device) for k, v in processor(sources, prompts).items()}, model.generate
    options = {} if cache == "dynamic" else {"cache_implementation": cache}

    def run() -> float:
        clock = StepClock()
        with torch.no_grad():
            generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                     pad_token_id=0, logits_processor=LogitsProcessorList([clock]), **options)
        return (clock.times[-1] - clock.times[0]) / (len(clock.times) - 1)

    return run


def train_run(system: str, pair: str, batch: int, dtype: str, device: str):
    """One training step = forward + backward (+ AdamW on the adapters). The bare LLM's step is its forward +
    backward to its input embeddings at the same sequence length: the least any adapter training must pay."""
    from layalign.data.prompts import math_prompt

    model, llm, processor = build("mindmerger" if system == "llm" else system, pair, dtype, device)
    sources = questions(batch)
    prompts = [math_prompt(q) for q in sources]
    targets = ["Let's compute step by step: 16 - 3 - 4 = 9 eggs, and 9 * 2 = 18 dollars. The answer is: 18"] * batch
    inputs = {k: v.to(device) for k, v in processor(sources, prompts, targets).items()}
    if system == "llm":  # the very LLM input MindMerger builds (soft tokens + prompt + target), as plain embeddings
        _, final = model.encode(inputs["encoder_input_ids"], inputs["encoder_attention_mask"])
        with torch.no_grad():
            llm_in = model.build_inputs(final, inputs["encoder_attention_mask"], inputs["prompt_input_ids"],
                                        inputs["prompt_attention_mask"], inputs["labels"],
                                        inputs["labels_attention_mask"])
        embeds = llm_in.embeds.detach().requires_grad_(True)

        keep = inputs["labels"].shape[1] + 1  # the LM head on the target positions only, as LayAlignModel does

        def step():
            out = llm(inputs_embeds=embeds, attention_mask=llm_in.attention_mask, position_ids=llm_in.position_ids,
                      logits_to_keep=keep)
            targets = llm_in.labels[:, -keep + 1:]
            torch.nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1), targets.flatten(),
                                              ignore_index=-100).backward()

        return step
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**inputs).loss.backward()
        optimizer.step()

    return step


def round_robin(runs: dict[str, object], repeats: int, device: str) -> tuple[dict[str, float], dict[str, float]]:
    """Medians of the wall seconds per call and of what each call returns (None for training steps), timed in
    turn so that load drift hits every system alike."""
    for run in runs.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    values: dict[str, list] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            value = run()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
            values[name].append(value)
    median_values = {name: statistics.median(v) for name, v in values.items() if None not in v}
    return {name: statistics.median(t) for name, t in times.items()}, median_values


def reset_peak_memory(device: str) -> None:
    """Forget the loading peak, so that the peak we read is the run's (weights resident + activations)."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def set_up_allocator(mode: str) -> str:
    """The CPU allocator for every system of this run; returns how it is set up, for the report."""
    from layalign.allocator import keep_freed_memory

    if mode == "kept" and keep_freed_memory():
        return "glibc, freed memory kept for reuse (layalign.allocator.keep_freed_memory, as the layalign command)"
    return "the C library's defaults"


def minor_faults(run) -> int:
    """The minor page faults of one call of `run`: memory the kernel had to hand out afresh."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    run()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def child(args) -> None:
    """One system in a process of its own: its peak memory, and for training its step time, alone. Decoding: one
    run. Training: three warm-up steps (the heap settles; the last is round_robin's), then `repeats` timed steps."""
    if args.device == "cpu":
        set_up_allocator(args.malloc)
    torch.manual_seed(0)
    seconds = None
    if args.mode == "decode":
        run = decode_run(args.system, args.pair, args.batch, args.new_tokens, args.dtype, args.device, args.cache)
        reset_peak_memory(args.device)
        run()
    else:
        run = train_run(args.system, args.pair, args.batch, args.dtype, args.device)
        for _ in range(2):
            run()
        reset_peak_memory(args.device)
        seconds = round_robin({args.system: run}, args.repeats, args.device)[0][args.system]
    print("RESULT " + json.dumps({"peak_mb": peak_memory_mb(args.device), "seconds": seconds}))


def alone(args, mode: str, system: str, batch: int) -> dict[str, float]:
    """Run `child` in a fresh process: {"peak_mb": ..., "seconds": ...}."""
    cmd = [sys.executable, __file__, "--child", "--mode", mode, "--system", system, "--batch", str(batch),
           "--pair", args.pair, "--dtype", args.dtype, "--device", args.device, "--new-tokens", str(args.new_tokens),
           "--cache", args.cache, "--malloc", args.malloc, "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise SystemExit(f"run of {mode}/{system}/batch {batch} alone failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def ratio_row(label: str, batch: int, v: dict[str, float], digits: int) -> str:
    cells = " | ".join(f"{v[s]:.{digits}f}" for s in SYSTEMS)
    return (f"| {label} | {batch} | {cells} | {v['layalign'] / v['llm']:.2f} | "
            f"{v['layalign'] / v['mindmerger']:.2f} |")


def table(args) -> str:
    rows = ["| measurement | batch | bare LLM | MindMerger | LayAlign | LayAlign / LLM | LayAlign / MindMerger |",
            "|---|---|---|---|---|---|---|"]
    n = args.new_tokens
    for mode in args.modes:
        for batch in args.batches:
            print(f"{mode}, batch {batch} ...", flush=True)
            if mode == "decode":
                runs = {s: decode_run(s, args.pair, batch, n, args.dtype, args.device, args.cache) for s in SYSTEMS}
                t, step = round_robin(runs, args.repeats, args.device)
                rows.append(ratio_row(f"decoding per step, new tokens/s ({args.cache} cache)", batch,
                                      {s: batch / step[s] for s in SYSTEMS}, 1))
                rows.append(ratio_row(f"decoding end to end (encoder + prefill + {n} new), new tokens/s", batch,
                                      {s: batch * n / t[s] for s in SYSTEMS}, 1))
            else:
                t, _ = round_robin({s: train_run(s, args.pair, batch, args.dtype, args.device) for s in SYSTEMS},
                                   args.repeats, args.device)
                rows.append(ratio_row("training step (forward + backward), s", batch, t, 3))
            results = {s: alone(args, mode, s, batch) for s in SYSTEMS}
            if mode == "train":
                rows.append(ratio_row("training step, each system alone in a process of its own, s", batch,
                                      {s: r["seconds"] for s, r in results.items()}, 3))
            rows.append(ratio_row(f"{mode}: peak memory, MB", batch, {s: r["peak_mb"] for s, r in results.items()}, 0))
            print("\n".join(rows[-3:]), flush=True)
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", default="default", choices=["default", *SHAPES])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--modes", nargs="+", default=["decode", "train"], choices=["decode", "train"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--cache", default="dynamic", choices=["dynamic", "static"],
                        help="the key/value cache of generate, the same for every system (transformers' default: "
                             "dynamic, which grows by concatenation at every step)")
    parser.add_argument("--malloc", default="kept", choices=["kept", "default"],
                        help="kept: reuse freed CPU memory as the layalign command does; default: glibc's defaults")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None,
                        help="markdown file (default: docs/results/speed-PAIR-DEVICE[-static][-train]"
                             "[-glibc-defaults].md)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="decode", help=argparse.SUPPRESS)
    parser.add_argument("--system", default="layalign", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    allocator = set_up_allocator(args.malloc) if args.device == "cpu" else "CUDA caching allocator"
    machine = (torch.cuda.get_device_name() if args.device.startswith("cuda")
               else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads")
    memory = "CUDA max allocated" if args.device != "cpu" else "peak RSS"
    print(f"pair {args.pair}, {args.device}, {args.dtype}, {args.new_tokens} new tokens, median of {args.repeats}")
    body = table(args)
    command = "python benchmarks/speed.py " + " ".join(sys.argv[1:])
    report = (f"# Speed: {args.pair} pair on {args.device} ({args.dtype})\n\n"
              f"- date: {datetime.date.today()}\n- machine: {machine}; torch {torch.__version__}\n"
              f"- command: `{command}`\n- allocator: {allocator}\n"
              f"- decoding: greedy, exactly {args.new_tokens} new tokens per example, "
              f"{args.cache} key/value cache; per step: timed inside generate from the first new token to the "
              f"last; end to end: the whole generate call (encoder and prefill included); medians of "
              f"{args.repeats} after one warm-up; training: forward + backward (+ AdamW step on the adapters), "
              f"same batch\n"
              f"- each system alone: once more in a process of its own, one after the other: peak memory "
              f"({memory}; weights resident + activations; the loading peak is reset first) of one decoding run, or "
              f"of {args.repeats} training steps after 3 warm-up steps, whose median time is the 'alone' row"
              f"\n\n{body}\n")
    print("\n" + report)
    variant = (("-static" if args.cache == "static" else "") + ("-train" if args.modes == ["train"] else "")
               + ("-glibc-defaults" if args.malloc == "default" else ""))
    out = Path(args.out or f"docs/results/speed-{args.pair}-{args.device.split(':')[0]}{variant}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
