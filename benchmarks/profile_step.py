"""Where the time of one training step or one generate call goes: torch.profiler's top operators, by self time.

The same systems, batches and inputs as benchmarks/speed.py (real MGSM questions, math prompt), so that a ratio
seen there can be traced to operators here.

    python benchmarks/profile_step.py --system layalign --mode train --batch 8
    python benchmarks/profile_step.py --system mindmerger --mode decode --batch 8 --shapes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (the sibling benchmark module: same systems and inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["llm", "mindmerger", "layalign"], default="layalign")
    parser.add_argument("--mode", choices=["train", "decode"], default="train")
    parser.add_argument("--pair", default="default", choices=list(speed.SHAPES) + ["default"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--cache", default="dynamic", choices=["dynamic", "static"])
    parser.add_argument("--malloc", default="kept", choices=["kept", "default"])
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--shapes", action="store_true", help="group the operators by input shape too")
    args = parser.parse_args()

    if args.device == "cpu":
        print(f"allocator: {speed.set_up_allocator(args.malloc)}")
    if args.mode == "train":
        run = speed.train_run(args.system, args.pair, args.batch, args.dtype, args.device)
    else:
        run = speed.decode_run(args.system, args.pair, args.batch, args.new_tokens, args.dtype, args.device,
                               args.cache)
    for _ in range(3):  # warm-up: the allocator's heap reaches its steady state within a few steps
        run()
    start = time.perf_counter()
    faults = speed.minor_faults(run)
    print(f"{args.system} {args.mode}, batch {args.batch}: {time.perf_counter() - start:.3f} s unprofiled, "
          f"{faults} minor page faults (memory the kernel had to hand out afresh)\n")
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
        run()
    averages = prof.key_averages(group_by_input_shape=args.shapes)
    print(averages.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
