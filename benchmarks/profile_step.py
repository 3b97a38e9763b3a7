"""Where the time of one training step or one generate call goes: torch.profiler's top operators, by self time.

The same systems, batches and inputs as benchmarks/speed.py (real MGSM questions, math prompt), so that a ratio
seen there can be traced to operators here.

    python benchmarks/profile_step.py --system layalign --mode train --batch 8
    python benchmarks/profile_step.py --system mindmerger --mode decode --batch 8 --shapes
"""

from __future__ import annotations

import argparse
import time

import common
from torch.profiler import ProfilerActivity, profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=common.SYSTEMS, default="layalign")
    parser.add_argument("--mode", choices=["train", "decode"], default="train")
    parser.add_argument("--pair", default="default", choices=common.PAIRS)
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
        print(f"allocator: {common.set_up_allocator(args.malloc)}")
    run = common.run_for(args.mode, args.system, args.pair, args.batch, args.dtype, args.device, args.new_tokens,
                         args.cache)
    common.warm_up({args.system: run}, 3)  # the allocator's heap reaches its steady state within a few steps
    start = time.perf_counter()
    faults = common.minor_faults(run)
    print(f"{args.system} {args.mode}, batch {args.batch}: {time.perf_counter() - start:.3f} s unprofiled, "
          f"{faults} minor page faults (memory the kernel had to hand out afresh)\n")
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
        run()
    averages = prof.key_averages(group_by_input_shape=args.shapes)
    print(averages.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
