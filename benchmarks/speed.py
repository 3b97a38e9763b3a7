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
import json
import subprocess
import sys
from pathlib import Path

import common
import torch
from common import SYSTEMS


def child(args) -> None:
    """One system in a process of its own: its peak memory, and for training its step time, alone. Decoding: one
    run. Training: three warm-up steps (the heap settles; the last is in_turn's), then `repeats` timed steps."""
    if args.device == "cpu":
        common.set_up_allocator(args.malloc)
    torch.manual_seed(0)
    seconds = None
    run = common.run_for(args.mode, args.system, args.pair, args.batch, args.dtype, args.device, args.new_tokens,
                         args.cache)
    if args.mode == "decode":
        common.reset_peak_memory(args.device)
        run()
    else:
        common.warm_up({args.system: run}, 2)
        common.reset_peak_memory(args.device)
        seconds = common.in_turn({args.system: run}, args.repeats, device=args.device).seconds[args.system]
    print("RESULT " + json.dumps({"peak_mb": common.peak_memory_mb(args.device), "seconds": seconds}))


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
            runs = {s: common.run_for(mode, s, args.pair, batch, args.dtype, args.device, n, args.cache)
                    for s in SYSTEMS}
            t, step = common.in_turn(runs, args.repeats, device=args.device)
            if mode == "decode":
                rows.append(ratio_row(f"decoding per step, new tokens/s ({args.cache} cache)", batch,
                                      {s: batch / step[s] for s in SYSTEMS}, 1))
                rows.append(ratio_row(f"decoding end to end (encoder + prefill + {n} new), new tokens/s", batch,
                                      {s: batch * n / t[s] for s in SYSTEMS}, 1))
            else:
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
    parser.add_argument("--pair", default="default", choices=common.PAIRS)
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
    allocator = common.set_up_allocator(args.malloc) if args.device == "cpu" else "CUDA caching allocator"
    machine = common.machine(args.device)
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
