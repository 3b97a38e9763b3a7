"""What the benchmark scripts share: the systems (bare LLM, MindMerger, LayAlign) on a pair, their inputs (real MGSM
questions through the library's reader), one timing loop (the candidates in turn, medians), peak memory, the CPU
allocator, minor page faults and a one-line machine description.

Not a package: the scripts in this folder run as `python benchmarks/x.py`, which puts this folder on sys.path, so
they `import common`; everything else comes from the installed `layalign`.
"""

from __future__ import annotations

import gc
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

SYSTEMS = ("llm", "mindmerger", "layalign")
MGSM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mgsm"
MGSM_LANGS = ("sw", "zh", "de", "th", "fr", "bn", "ja", "ru")  # taken in turn, 8 questions each

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
PAIRS = ("default", *SHAPES)


# ---------------------------------------------------------------------------------------------------- inputs


def questions(n: int) -> tuple[list[str], list[str]]:
    """(sources, math prompts) of n real MGSM questions (Swahili, Chinese, German, ... in turn, 8 of each) when the
    shared data is there, else synthetic English ones."""
    from layalign.data import read_mgsm
    from layalign.data.prompts import math_prompt

    found = read_mgsm(MGSM, limit=8) if MGSM.is_dir() else {}
    rows = [(e.source, e.prompt) for lang in MGSM_LANGS for e in found.get(lang, [])]
    if not rows:
        rows = [(q, math_prompt(q)) for q in
                (f"Question number {i}: Janet has {i} ducks and buys 3 more. How many ducks?" for i in range(64))]
    picked = [rows[i % len(rows)] for i in range(n)]
    return [s for s, _ in picked], [p for _, p in picked]


# ---------------------------------------------------------------------------------------------------- systems


def build_model(variant: str, pair: str, dtype: str, device: str):
    """(model, its LLM, processor) for MindMerger or LayAlign, gates open (0.1) so the fusion branch really runs."""
    from layalign import LayAlignConfig, LayAlignModel
    from layalign.model.processing import LayAlignProcessor

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
    """The bare LLM as the library runs it (layalign.systems.LLMOnlySystem), with no encoder in memory."""
    from layalign.systems import LLMOnlySystem

    if pair == "default":
        from layalign.backbones.catalogue import default_pair
        from layalign.backbones.loading import load_llm

        llm, tokenizer = load_llm(default_pair()[1], dtype)
    else:
        from layalign.testing import byte_tokenizer, tiny_llm

        llm, tokenizer = tiny_llm(**SHAPES[pair]["llm"]).to(getattr(torch, dtype)), byte_tokenizer()
    return LLMOnlySystem(llm.to(device), tokenizer, name="bare LLM")


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
    """A callable that generates exactly `new_tokens` tokens (greedy) for the batch and returns the mean seconds per
    decoding step (the time from the first new token to the last, over new_tokens - 1 steps)."""
    from transformers import LogitsProcessorList

    sources, prompts = questions(batch)
    if system == "llm":
        bare = build_llm(pair, dtype, device)
        inputs, generate = bare.inputs(sources, prompts), bare.llm.generate
        options = {"pad_token_id": bare.tokenizer.pad_token_id}
    else:  # LayAlignModel.generate picks the LLM's pad id itself
        model, _, processor = build_model(system, pair, dtype, device)
        inputs, generate = {k: v.to(device) for k, v in processor(sources, prompts).items()}, model.generate
        options = {}
    if cache != "dynamic":
        options["cache_implementation"] = cache

    def run() -> float:
        clock = StepClock()
        with torch.no_grad():
            generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                     logits_processor=LogitsProcessorList([clock]), **options)
        return (clock.times[-1] - clock.times[0]) / (len(clock.times) - 1)

    return run


def train_run(system: str, pair: str, batch: int, dtype: str, device: str):
    """A callable for one training step = forward + backward (+ AdamW on the adapters); LayAlign and MindMerger
    through model(**batch).loss. The bare LLM's step is its forward + backward to its input embeddings at the same
    sequence length (the very LLM input MindMerger builds): the least any adapter training must pay."""
    model, llm, processor = build_model("mindmerger" if system == "llm" else system, pair, dtype, device)
    sources, prompts = questions(batch)
    targets = ["Let's compute step by step: 16 - 3 - 4 = 9 eggs, and 9 * 2 = 18 dollars. The answer is: 18"] * batch
    inputs = {k: v.to(device) for k, v in processor(sources, prompts, targets).items()}
    if system == "llm":  # soft tokens + prompt + target, as plain embeddings
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
            labels = llm_in.labels[:, -keep + 1:]
            torch.nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1), labels.flatten(),
                                              ignore_index=-100).backward()

        return step
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(**inputs).loss.backward()
        optimizer.step()

    return step


def run_for(mode: str, system: str, pair: str, batch: int, dtype: str, device: str, new_tokens: int = 32,
            cache: str = "dynamic"):
    """train_run or decode_run, by mode ("train" or "decode")."""
    if mode == "train":
        return train_run(system, pair, batch, dtype, device)
    return decode_run(system, pair, batch, new_tokens, dtype, device, cache)


# ---------------------------------------------------------------------------------------------------- timing


class Timings(NamedTuple):
    seconds: dict[str, float]  # median wall seconds per call
    values: dict[str, float]  # median of what each call returned, for candidates whose calls all return numbers


def warm_up(calls: dict[str, Callable], rounds: int = 1, setup: Callable[[], tuple] | None = None) -> None:
    """Call every candidate `rounds` times, in turn."""
    for _ in range(rounds):
        for call in calls.values():
            call(*(setup() if setup else ()))


def in_turn(calls: dict[str, Callable], repeats: int, warmup: int = 1, device: str = "cpu",
            setup: Callable[[], tuple] | None = None) -> Timings:
    """Time the candidates in turn (all once, then all again, ... `repeats` rounds, after `warmup` untimed rounds),
    so that a change in machine load hits every candidate alike; medians per candidate. `setup`, when given, runs
    untimed before every call and its tuple is the call's arguments (fresh inputs, a cache flush). On CUDA the
    device is synchronized around each timed call."""
    cuda = device.startswith("cuda")
    warm_up(calls, warmup, setup)
    times: dict[str, list[float]] = {name: [] for name in calls}
    values: dict[str, list] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            args = setup() if setup else ()
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            value = call(*args)
            if cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
            values[name].append(value if isinstance(value, (int, float)) else None)  # keep no tensors alive
    return Timings({name: statistics.median(t) for name, t in times.items()},
                   {name: statistics.median(v) for name, v in values.items() if v and None not in v})


# ---------------------------------------------------------------------------------------------------- machine


def reset_peak_memory(device: str) -> None:
    """Forget the loading peak, so that the peak read next is the run's (weights resident + activations)."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS


def peak_memory_mb(device: str) -> float:
    """CUDA: max allocated; CPU: peak RSS (VmHWM)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def set_up_allocator(mode: str) -> str:
    """The CPU allocator for every system of this process ("kept": freed memory kept for reuse, as the layalign
    command sets it up; "default": the C library's defaults); returns how it is set up, for the report."""
    from layalign.allocator import keep_freed_memory

    if mode == "kept" and keep_freed_memory():
        return "glibc, freed memory kept for reuse (layalign.allocator.keep_freed_memory, as the layalign command)"
    return "the C library's defaults"


def minor_faults(run: Callable[[], object]) -> int:
    """The minor page faults of one call of `run`: memory the kernel had to hand out afresh."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    run()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def machine(device: str = "cpu") -> str:
    """The GPU's name, or the CPU and torch's thread count."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
