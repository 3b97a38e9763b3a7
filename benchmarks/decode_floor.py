"""What one decoding step's fusion branch must cost: its bytes against the machine's memory bandwidth.

At one query per example, the fusion branch of every fused layer reads that layer's encoder keys and values
(B x H_kv x T x d_h each, float32) and does almost no arithmetic, so its floor is the time to read them from memory:
they do not stay in the CPU's caches between two steps, which read all the LLM's weights in between. This script
times the branch as fusion.fusion_branch runs it for all layers and two plain matmuls on the same calls (the caches
flushed between steps by a write sweep the size of the LLM's weights), and the machine's copy bandwidth (256 MB
copied), and prints them.
Defaults: the default pair at batch 8 (30 layers, 9 query heads, 3 key/value heads of 64, 126 encoder tokens).

    python benchmarks/decode_floor.py
    python benchmarks/decode_floor.py --batch 1
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import common
import torch

from layalign.model.fusion import FusionState, fusion_branch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--heads", type=int, default=9)
    parser.add_argument("--kv-heads", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=126)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--weights-mb", type=int, default=540, help="the LLM's weights, swept between steps")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    b, t, d = args.batch, args.tokens, args.head_dim
    torch.manual_seed(0)
    keys = [torch.randn(b, args.kv_heads, t, d) for _ in range(args.layers)]
    values = [torch.randn(b, args.kv_heads, t, d) for _ in range(args.layers)]
    mask = torch.zeros(b, 1, 1, t)
    mask[: b // 2, ..., t // 2:] = float("-inf")
    state = FusionState(keys, values, mask, {i: i for i in range(args.layers)})
    module = SimpleNamespace(scaling=d ** -0.5)
    query = torch.randn(b, 1, args.heads, d).transpose(1, 2)  # (B, H, 1, d_h), laid out as transformers makes it
    sweep = torch.zeros(args.weights_mb * 2**20 // 4)

    keys_t = [k.transpose(-1, -2).contiguous() for k in keys]
    heads, kv_heads = args.heads, args.kv_heads

    def ours(slot: int) -> torch.Tensor:  # what a decoding step runs: fusion_branch (SDPA, enable_gqa)
        return fusion_branch(module, query, state, slot)

    def matmuls(slot: int) -> torch.Tensor:  # the alternative tried: two matmuls over keys stored transposed
        grouped = query.reshape(b, kv_heads, heads // kv_heads, d)
        scores = torch.matmul(grouped, keys_t[slot]).mul_(d ** -0.5).add_(mask)
        return torch.matmul(torch.softmax(scores, dim=-1), values[slot]).reshape(b, 1, heads, d)

    torch.testing.assert_close(matmuls(0), ours(0), rtol=1e-5, atol=1e-6)

    def step(branch) -> None:
        for slot in range(args.layers):
            branch(slot)

    def flush() -> tuple:  # untimed, before every step: what the LLM's weights do to the caches between two steps
        sweep.add_(1.0)
        return ()

    seconds = common.in_turn({"matmuls": lambda: step(matmuls), "ours": lambda: step(ours)}, args.repeats,
                             warmup=3, setup=flush).seconds
    other, seconds = seconds["matmuls"], seconds["ours"]
    kv_bytes = sum(k.nbytes + v.nbytes for k, v in zip(keys, values))

    big, target = torch.ones(64 * 2**20), torch.zeros(64 * 2**20)  # both touched: no page faults in the timing
    copy = common.in_turn({"copy": lambda: target.copy_(big)}, 6, warmup=0).seconds["copy"]
    copy_gbs = 2 * big.nbytes / copy / 1e9  # read + write

    print(f"batch {b}, {args.layers} layers, {args.heads}/{args.kv_heads} heads of {d}, {t} encoder tokens, "
          f"{common.machine()}")
    print(f"fusion branch, one decoding step: {1000 * seconds:.2f} ms for {kv_bytes / 2**20:.1f} MB of keys and "
          f"values = {kv_bytes / seconds / 1e9:.1f} GB/s (fusion_branch: SDPA, enable_gqa)")
    print(f"the same as two matmuls over keys stored transposed: {1000 * other:.2f} ms = "
          f"{kv_bytes / other / 1e9:.1f} GB/s")
    print(f"copy bandwidth (256 MB copied, read + write): {copy_gbs:.1f} GB/s; the step's floor at that rate: "
          f"{1000 * kv_bytes / (copy_gbs * 1e9):.2f} ms")


if __name__ == "__main__":
    main()
