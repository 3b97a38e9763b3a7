"""One layer's fusion attention, forward + backward, in three grouped-query layouts: query heads grouped along the
query axis (a copy of the queries), SDPA's enable_gqa (what fusion.fusion_branch uses), and keys/values repeated to
every query head. Default: the default pair's training shapes at batch 8 (9 query heads, 3 key/value heads, 408 LLM
positions, 126 encoder tokens). Prints the median time of each after two warm-ups and checks they agree.

    python benchmarks/gqa_layout.py              # training shapes
    python benchmarks/gqa_layout.py --queries 1  # one decoding step
"""

from __future__ import annotations

import argparse

import common
import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=9)
    parser.add_argument("--kv-heads", type=int, default=3)
    parser.add_argument("--queries", type=int, default=408)
    parser.add_argument("--tokens", type=int, default=126)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    b, h, hkv, q_len, t, d = args.batch, args.heads, args.kv_heads, args.queries, args.tokens, args.head_dim
    g = h // hkv
    torch.manual_seed(0)
    mask = torch.zeros(b, 1, 1, t)
    mask[: b // 2, ..., t * 4 // 5:] = float("-inf")  # half the rows padded, as in a real batch

    def grouped(q, k, v):
        out = F.scaled_dot_product_attention(q.transpose(1, 2).reshape(b, hkv, -1, d), k, v, attn_mask=mask)
        return out.view(b, h, q_len, d).transpose(1, 2)

    def gqa(q, k, v):
        return F.scaled_dot_product_attention(q.transpose(1, 2), k, v, attn_mask=mask, enable_gqa=True).transpose(1, 2)

    def repeated(q, k, v):
        k, v = (x[:, :, None].expand(b, hkv, g, t, d).reshape(b, h, t, d) for x in (k, v))
        return F.scaled_dot_product_attention(q.transpose(1, 2), k, v, attn_mask=mask).transpose(1, 2)

    layouts = {"queries grouped (copy)": grouped, "enable_gqa": gqa, "keys/values repeated": repeated}

    def inputs():  # the layer's queries come as (B, L, H, d) transposed, as in transformers
        return (torch.randn(b, q_len, h, d, requires_grad=True), torch.randn(b, hkv, t, d, requires_grad=True),
                torch.randn(b, hkv, t, d, requires_grad=True))

    q, k, v = inputs()
    reference = grouped(q, k, v)
    for name, fn in layouts.items():
        torch.testing.assert_close(fn(q, k, v), reference, rtol=1e-5, atol=1e-5, msg=name)
    grad = torch.randn(b, q_len, h, d)
    calls = {name: (lambda q, k, v, fn=fn: (fn(q, k, v) * grad).sum().backward()) for name, fn in layouts.items()}
    # round-robin, so load drift hits every layout alike; fresh inputs (untimed) before every call
    seconds = common.in_turn(calls, args.repeats, warmup=2, setup=inputs).seconds
    print(f"B={b} H={h} H_kv={hkv} queries={q_len} encoder tokens={t} d={d}, {common.machine()}")
    for name, value in seconds.items():
        print(f"{name:24s} {1000 * value:7.1f} ms forward + backward")

if __name__ == "__main__":
    main()
