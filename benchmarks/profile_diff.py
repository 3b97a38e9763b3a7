"""MindMerger against LayAlign, operator by operator: where LayAlign's extra time goes.

Both systems are built in one process (as benchmarks/speed.py does) and run three warm-up steps in
turn, then one step each counted with getrusage (minor page faults), then one profiled step each; the table lists
the operators (by name and input shapes) whose self time differs most between the two.

    python benchmarks/profile_diff.py --mode train --batch 8
    python benchmarks/profile_diff.py --mode train --batch 8 --malloc default   # glibc's allocator defaults
"""

from __future__ import annotations

import argparse
import gc

import common
from torch.profiler import ProfilerActivity, profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["train", "decode"], default="train")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--malloc", default="kept", choices=["kept", "default"])
    parser.add_argument("--rows", type=int, default=30)
    args = parser.parse_args()
    print(f"allocator: {common.set_up_allocator(args.malloc)}")
    runs = {s: common.run_for(args.mode, s, "default", args.batch, "float32", "cpu", args.new_tokens)
            for s in ("mindmerger", "layalign")}
    common.warm_up(runs, 3)
    for system, run in runs.items():  # before any profiling: the profiler's own records take heap memory
        print(f"{system}: {common.minor_faults(run)} minor page faults per step")
    profiles = {}
    for system, run in runs.items():
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            run()
        profiles[system] = {(e.key, str(e.input_shapes)[:60]): (e.self_cpu_time_total / 1e3, e.count)
                            for e in prof.key_averages(group_by_input_shape=True)}
        del prof  # its records would crowd the next system's heap
        gc.collect()
    mm, la = profiles["mindmerger"], profiles["layalign"]
    print(f"profiled self time: MindMerger {sum(v[0] for v in mm.values()):.0f} ms, "
          f"LayAlign {sum(v[0] for v in la.values()):.0f} ms\n")
    print(f"{'LA - MM':>9}  {'MindMerger ms/calls':>20}  {'LayAlign ms/calls':>18}  operator, input shapes")
    diffs = sorted(set(mm) | set(la), key=lambda k: -abs(la.get(k, (0, 0))[0] - mm.get(k, (0, 0))[0]))
    for key in diffs[: args.rows]:
        a, b = mm.get(key, (0.0, 0)), la.get(key, (0.0, 0))
        print(f"{b[0] - a[0]:7.1f} ms  {a[0]:12.1f} / {a[1]:5d}  {b[0]:10.1f} / {b[1]:5d}  {key[0][:48]} {key[1]}")


if __name__ == "__main__":
    main()
