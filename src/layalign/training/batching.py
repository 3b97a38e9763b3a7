"""Which examples make up each step, and how they become tensors.

The data order is a pure function of (seed, epoch): a resumed run sees exactly the batches the killed one would
have seen, whatever the number of processes sharing each global batch.
"""

from __future__ import annotations

import random

import torch

from layalign.data import TrainExample
from layalign.model.processing import LayAlignProcessor


def plan_batches(lengths: list[int], global_batch: int, seed: int, epoch: int, group_by_length: bool
                 ) -> list[list[int]]:
    """The global batches of one epoch: shuffled, then (optionally) sorted by length within chunks of 50 batches so
    that a batch holds similar lengths, then the batches shuffled. The last incomplete batch is dropped."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        chunk = global_batch * 50
        order = [i for start in range(0, len(order), chunk)
                 for i in sorted(order[start:start + chunk], key=lambda i: -lengths[i])]
    batches = [order[i:i + global_batch] for i in range(0, len(order) - global_batch + 1, global_batch)]
    rng.shuffle(batches)
    return batches


class Batcher:
    """Texts -> tensors for one stage: the translation stage has no prompt; the task stage hands the processor the
    example's prompt when the model reads it: the LLM (`use_prompt`) or, for LangBridge, the encoder (the processor's
    `encoder_reads_prompt`). Each example's language reaches the processor (NLLB/M2M100 source tags)."""

    def __init__(self, processor: LayAlignProcessor, stage: str, use_prompt: bool):
        self.processor = processor
        self.with_prompt = stage == "task" and (use_prompt or getattr(processor, "encoder_reads_prompt", False))

    def __call__(self, examples: list[TrainExample]) -> dict[str, torch.Tensor]:
        prompts = [e.prompt for e in examples] if self.with_prompt else None
        return self.processor([e.source for e in examples], prompts, [e.target for e in examples],
                              langs=[e.lang for e in examples])


def process_share(batch_ids: list[int], batch_size: int, accumulation: int, rank: int) -> list[list[int]]:
    """This process's micro-batches of one global batch: the batch cut into micro-batches of `batch_size`, of which
    process `rank` takes the `accumulation` consecutive ones at its place."""
    micro = [batch_ids[i:i + batch_size] for i in range(0, len(batch_ids), batch_size)]
    return micro[rank * accumulation:(rank + 1) * accumulation]
