"""Why the fusion branch passes an additive float mask to scaled_dot_product_attention, not a boolean one.

One fusion-branch call of the default pair (SmolLM2-135M: 9 query heads over 3 key/value heads, head size 64) over
126 encoder tokens, some of them padding, timed with each mask form: decoding (1 new token per row, batch 1 and 8)
and training (300 LLM tokens, batch 8). Medians of repeated calls, the two forms alternating, in one process;
prints a markdown table.

    python benchmarks/attention_mask.py
"""

from __future__ import annotations

import argparse
import functools

import common
import torch
import torch.nn.functional as F

CASES = {"decode, batch 1": (1, 1), "decode, batch 8": (8, 1), "training, batch 8, 300 tokens": (8, 300)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per decoding case (training: a tenth)")
    args = parser.parse_args()
    torch.manual_seed(0)
    kv_heads, groups, length, dim = 3, 3, 126, 64
    print(f"torch {torch.__version__}, {common.machine()}\n")
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
        repeats = args.repeats if q_len == 1 else max(1, args.repeats // 10)
        results = common.in_turn(calls, repeats, warmup=3).seconds
        torch.testing.assert_close(F.scaled_dot_product_attention(query, keys, values, attn_mask=keep),
                                   F.scaled_dot_product_attention(query, keys, values, attn_mask=additive))
        print(f"| {name} | {results['bool'] * 1e6:.0f} | {results['float'] * 1e6:.0f} | "
              f"{results['bool'] / results['float']:.1f} |")


if __name__ == "__main__":
    main()
