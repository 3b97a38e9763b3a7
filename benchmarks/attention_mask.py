"""Why the fusion branch passes an additive float mask to scaled_dot_product_attention, not a boolean one.

One fusion-branch call of the default pair (SmolLM2-135M: 9 query heads over 3 key/value heads, head size 64) over
126 encoder tokens, some of them padding, timed with each mask form: decoding (1 new token per row, batch 1 and 8)
and training (300 LLM tokens, batch 8). Medians of repeated calls, the two forms alternating, in one process;
prints a markdown table.

    python benchmarks/attention_mask.py
"""

from __future__ import annotations

import functools
import statistics
import time

import torch
import torch.nn.functional as F

CASES = {"decode, batch 1": (1, 1), "decode, batch 8": (8, 1), "training, batch 8, 300 tokens": (8, 300)}


def timed_in_turn(calls: dict[str, object], repeats: int) -> dict[str, float]:
    """Median seconds of each call, the calls alternating so that machine load hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(3):
        for call in calls.values():
            call()
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    torch.manual_seed(0)
    kv_heads, groups, length, dim = 3, 3, 126, 64
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| call | boolean mask, us | additive float mask, us | boolean / float |")
    print("|---|---:|---:|---:|")
    for name, (batch, q_len) in CASES.items():
        query = torch.randn(batch, kv_heads, groups * q_len, dim)
        keys, values = torch.randn(batch, kv_heads, length, dim), torch.randn(batch, kv_heads, length, dim)
        keep = torch.ones(batch, 1, 1, length, dtype=torch.bool)
        keep[0, ..., 100:] = False  # the first row is padded
        additive = torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))
        calls = {label: functools.partial(F.scaled_dot_product_attention, query, keys, values, attn_mask=mask)
                 for label, mask in (("bool", keep), ("float", additive))}
        results = timed_in_turn(calls, repeats=200 if q_len == 1 else 20)
        torch.testing.assert_close(F.scaled_dot_product_attention(query, keys, values, attn_mask=keep),
                                   F.scaled_dot_product_attention(query, keys, values, attn_mask=additive))
        print(f"| {name} | {results['bool'] * 1e6:.0f} | {results['float'] * 1e6:.0f} | "
              f"{results['bool'] / results['float']:.1f} |")


if __name__ == "__main__":
    main()
