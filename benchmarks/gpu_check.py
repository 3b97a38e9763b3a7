"""The GPU check: identities and parity on CUDA, then LayAlign vs MindMerger vs the bare LLM at realistic shapes.

Run by benchmarks/gpu_check.sh on a lent GPU (bare machine, no registry: it imports only torch, transformers and
safetensors, which the image has, plus the tokenizers library that transformers ships with). Steps, in order of
importance, each skipped once the time budget (--budget seconds from the start of this script) would be overrun;
the results so far are written after every step, so a run cut short still returns what it measured:

1. identity: on the tiny random models (layalign.testing), on the device: zero gates == bare LLM bit for bit (logits
   and greedy tokens; float32 and bf16 LLMs), padding invariance, batched == one by one, gradient checkpointing ==
   none, and the device's loss == the CPU's loss within stated tolerances (float32 and bf16).
2. for each LLM shape (Qwen2.5-1.5B-like, Llama-2-7B-like; random weights built on the device, bf16) behind an
   mT5-xl-shaped encoder (d_model 2048, 24 layers, 32 heads, d_ff 5120, vocab 250112):
   - kernels: the LLM's attention implementation (config._attn_implementation), torch's SDPA backend flags, and the
     attention kernels a profiler sees in a prefill and in decoding steps (bare LLM and LayAlign);
   - decode: tokens/s per decoding step at batch 1, 8, 32 for the bare LLM, MindMerger, LayAlign (fusion state in
     bf16, "auto") and LayAlign with a float32 fusion state, timed in turn (one of each, then again, medians);
   - train: one step (forward, backward, AdamW on the adapters; the bare LLM: forward and backward to its input
     embeddings at the same sequence length) at the paper's per-GPU batch (128 over 8 GPUs = 16), gradient
     checkpointing on (LayAlignModel.gradient_checkpointing_enable), step time and peak memory per system.

Writes gpu_check.json and gpu_check.md to the output folder: --out when given, else $OUT (the device tool sets it).
`--cpu-dry-run` runs every step end to end on the CPU with tiny shapes (CI runs it).

    bash benchmarks/gpu_check.sh                                   # on the GPU machine: $OUT set by the device tool
    python benchmarks/gpu_check.py --cpu-dry-run --out /tmp/gpu-check

One file of ~700 lines on purpose: it is what travels to a bare, time-boxed GPU machine, and it must run there
without pytest or this folder's other helpers, and keep writing partial results whatever step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import json
import os
import platform
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

# the paper's setup: effective batch 128 over 8 GPUs
TRAIN_BATCH = 16
# token lengths of the synthetic inputs (random ids): about an MGSM question, its math prompt, a chain of thought
LENGTHS = {"source": 128, "prompt": 160, "target": 224}
DECODE_BATCHES = (1, 8, 32)
NEW_TOKENS = 32
REPEATS = 3
# tolerances of the parity checks (the device's loss against the CPU's on the same tiny model and inputs)
FP32_LOSS_RTOL = 1e-4
BF16_LOSS_RTOL = 3e-2
FP32_LOGITS_ATOL = 1e-4  # batched vs one by one / padded vs not, float32 on the device

ENCODER = dict(model_type="mt5", d_model=2048, num_layers=24, num_heads=32, d_kv=64, d_ff=5120, vocab_size=250112,
               feed_forward_proj="gated-gelu")
LLMS = {
    "qwen2.5-1.5b-like": dict(model_type="qwen2", hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                              num_key_value_heads=2, intermediate_size=8960, vocab_size=151936,
                              tie_word_embeddings=True, rope_theta=1e6),
    "llama-2-7b-like": dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                            num_key_value_heads=32, intermediate_size=11008, vocab_size=32000,
                            tie_word_embeddings=False),
}
DRY = {  # --cpu-dry-run: the same steps at tiny shapes
    "encoder": dict(ENCODER, d_model=64, num_layers=2, num_heads=4, d_kv=16, d_ff=128, vocab_size=512),
    "llms": {"qwen2-tiny": dict(LLMS["qwen2.5-1.5b-like"], hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, intermediate_size=128, vocab_size=512),
             "llama-tiny": dict(LLMS["llama-2-7b-like"], hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=4, intermediate_size=128, vocab_size=512)},
    "lengths": {"source": 8, "prompt": 10, "target": 6},
    "decode_batches": (1, 2),
    "train_batch": 2,
    "new_tokens": 4,
    "repeats": 1,
}


# ---------------------------------------------------------------------------------------------------- plumbing


class Budget:
    """Seconds left of the run's time budget."""

    def __init__(self, seconds: float):
        self.start, self.seconds = time.monotonic(), seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


class Report:
    """Everything measured so far, written to out/gpu_check.json and out/gpu_check.md after every step."""

    def __init__(self, out: Path, header: dict):
        self.out, self.data = out, {**header, "steps": {}, "skipped": [], "errors": {}}
        out.mkdir(parents=True, exist_ok=True)

    def step(self, name: str, result) -> None:
        self.data["steps"][name] = result
        self.write()

    def skip(self, name: str, why: str) -> None:
        self.data["skipped"].append(f"{name}: {why}")
        print(f"[gpu_check] skipped {name}: {why}", flush=True)
        self.write()

    def error(self, name: str, err: BaseException) -> None:
        self.data["errors"][name] = "".join(traceback.format_exception(err))[-4000:]
        print(f"[gpu_check] {name} failed: {err!r}", flush=True)
        self.write()

    def write(self) -> None:
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        (self.out / "gpu_check.md").write_text(render(self.data))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def memory_now(device: str) -> float | None:
    return torch.cuda.memory_allocated() / 2**20 if device.startswith("cuda") else None


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def alternate(calls: dict[str, Callable[[], float | None]], repeats: int, device: str, budget: Budget,
              reserve: float) -> dict[str, dict]:
    """Time the candidates in turn (one warm-up round, then `repeats` rounds), stopping early (after at least one
    timed round) when fewer than `reserve` seconds would be left. Per candidate: median seconds per call, median of
    what the calls returned (when numbers), and the peak memory above what was allocated before the call."""
    results = {name: {"seconds": [], "values": [], "peak_extra_mb": [], "peak_mb": []} for name in calls}
    for round_ in range(repeats + 1):
        round_start = time.monotonic()
        for name, call in calls.items():
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            before = memory_now(device)
            sync(device)
            start = time.perf_counter()
            value = call()
            sync(device)
            seconds = time.perf_counter() - start
            if round_ == 0:
                continue
            results[name]["seconds"].append(seconds)
            if isinstance(value, (int, float)):
                results[name]["values"].append(value)
            if device.startswith("cuda"):
                results[name]["peak_mb"].append(torch.cuda.max_memory_allocated() / 2**20)
                results[name]["peak_extra_mb"].append(results[name]["peak_mb"][-1] - before)
        if round_ >= 1 and budget.left() - (time.monotonic() - round_start) < reserve:
            break
    return {name: {"rounds": len(r["seconds"]),
                   "seconds": statistics.median(r["seconds"]) if r["seconds"] else None,
                   "value": statistics.median(r["values"]) if r["values"] else None,
                   "peak_extra_mb": max(r["peak_extra_mb"]) if r["peak_extra_mb"] else None,
                   "peak_mb": max(r["peak_mb"]) if r["peak_mb"] else None}
            for name, r in results.items()}


# ---------------------------------------------------------------------------------------------------- 1. identity


SOURCES = ["Bata wa Janet hutaga mayai 16 kila siku.", "珍妮特的鸭子每天下 16 颗蛋。", "Hallo"]
PROMPTS = ["Question: how many eggs?\nAnswer:", "Q: eggs?\nA:", "Say hi:"]
TARGETS = ["16 eggs.", "sixteen", "hi there"]


def tiny_batch(pad_extra: int = 0, labels: bool = True) -> dict[str, torch.Tensor]:
    """tests/model_inputs.batch, for a machine without the tests folder on its path."""
    from layalign.testing import byte_tokenizer

    tok = byte_tokenizer()
    enc = tok(SOURCES, padding=True, return_tensors="pt")
    out = {"encoder_input_ids": enc.input_ids, "encoder_attention_mask": enc.attention_mask}
    if pad_extra:
        out = {k: torch.nn.functional.pad(v, (0, pad_extra)) for k, v in out.items()}
    p = tok(PROMPTS, padding=True, return_tensors="pt", add_special_tokens=False)
    out.update(prompt_input_ids=p.input_ids, prompt_attention_mask=p.attention_mask)
    if labels:
        t = tok(TARGETS, padding=True, return_tensors="pt", add_special_tokens=False)
        out.update(labels=t.input_ids, labels_attention_mask=t.attention_mask)
    return out


def pick(inputs: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """Example i alone, its own padding removed."""
    out = {}
    for prefix, ids_key in (("encoder_", "encoder_input_ids"), ("prompt_", "prompt_input_ids"), ("labels", "labels")):
        if ids_key not in inputs:
            continue
        mask_key = f"{prefix}attention_mask" if prefix != "labels" else "labels_attention_mask"
        keep = inputs[mask_key][i].bool()
        out[ids_key], out[mask_key] = inputs[ids_key][i][keep][None], inputs[mask_key][i][keep][None]
    return out


def tiny(llm_family: str, dtype: torch.dtype, device: str):
    from layalign.testing import randomize_adapters, tiny_model

    model = tiny_model(llm_family=llm_family)
    randomize_adapters(model, scale=0.3)
    if dtype != torch.float32:  # the frozen parts in bf16, the adapters stay float32 (as LayAlignModel loads them)
        model.encoder.to(dtype)
        model.llm.to(dtype)
        model.config.dtype = str(dtype).removeprefix("torch.")
    return model.to(device)


def check_identity(device: str, quick: bool = False) -> dict:
    """Each check: {"ok": bool, ...measured}; the step fails if any is not ok. `quick` (the dry run): one LLM family
    and the LLM's own fusion dtype only."""
    from layalign.model import fusion

    checks = {}
    no_labels = {k: v for k, v in tiny_batch().items() if not k.startswith("labels")}

    # zero gates == bare LLM, bit for bit, float32 and bf16 LLMs
    for family in ("llama",) if quick else ("llama", "qwen2", "gemma3_text"):
        for dtype in (torch.float32, torch.bfloat16):
            model = tiny(family, dtype, device)
            with torch.no_grad():
                model.gates.zero_()
            bare = copy.deepcopy(model.llm)
            bare.config._attn_implementation = re.sub("^layalign_", "", model.llm.config._attn_implementation)
            states, final = model.encode(no_labels["encoder_input_ids"], no_labels["encoder_attention_mask"])
            llm_in = model.build_inputs(final, no_labels["encoder_attention_mask"], no_labels["prompt_input_ids"],
                                        no_labels["prompt_attention_mask"])
            with torch.no_grad():
                ours = model(**no_labels).logits
                theirs = bare(inputs_embeds=llm_in.embeds, attention_mask=llm_in.attention_mask,
                              position_ids=llm_in.position_ids).logits
            generated = model.generate(**no_labels, max_new_tokens=6, do_sample=False)
            reference = bare.generate(inputs_embeds=llm_in.embeds, attention_mask=llm_in.attention_mask,
                                      max_new_tokens=6, do_sample=False, pad_token_id=0)
            name = f"zero_gates_equal_bare_llm[{family},{str(dtype).removeprefix('torch.')}]"
            checks[name] = {"ok": bool(torch.equal(ours, theirs) and torch.equal(generated, reference)),
                            "logits_equal": bool(torch.equal(ours, theirs)),
                            "max_abs_logit_diff": float((ours.float() - theirs.float()).abs().max()),
                            "tokens_equal": bool(torch.equal(generated, reference)),
                            "attn_implementation": model.llm.config._attn_implementation}
            del model, bare
            free(device)

    # padding invariance and batched == one by one (float32)
    for family in ("llama",) if quick else ("llama", "gemma3_text"):
        model = tiny(family, torch.float32, device)
        inputs = tiny_batch()
        with torch.no_grad():
            batched, padded = model(**inputs), model(**tiny_batch(pad_extra=5))
            diffs, loss_diffs = [], [abs(float(batched.loss) - float(padded.loss))]
            for i in range(len(SOURCES)):
                alone = model(**pick(inputs, i))
                n = alone.logits.shape[1]
                diffs.append(float((alone.logits[0] - batched.logits[i, -n:]).abs().max()))
                row = torch.nn.functional.cross_entropy(batched.logits[i, -n:][:-1].float(),
                                                        pick(inputs, i)["labels"][0].to(device))
                loss_diffs.append(abs(float(alone.loss) - float(row)))
        gen = {k: v for k, v in inputs.items() if not k.startswith("labels")}
        opts = dict(max_new_tokens=5, min_new_tokens=5, do_sample=False)
        gen_batched = model.generate(**gen, **opts)
        gen_padded = model.generate(**{k: v for k, v in tiny_batch(pad_extra=5, labels=False).items()}, **opts)
        gen_alone = [bool(torch.equal(model.generate(**pick(gen, i), **opts)[0], gen_batched[i]))
                     for i in range(len(SOURCES))]
        checks[f"padding_and_batch_invariance[{family}]"] = {
            "ok": max(diffs) <= FP32_LOGITS_ATOL and max(loss_diffs) <= FP32_LOGITS_ATOL
            and bool(torch.equal(gen_batched, gen_padded)) and all(gen_alone),
            "max_abs_logit_diff_alone_vs_batched": max(diffs), "max_abs_loss_diff": max(loss_diffs),
            "tolerance": FP32_LOGITS_ATOL, "greedy_padded_equal": bool(torch.equal(gen_batched, gen_padded)),
            "greedy_alone_equal": gen_alone}
        del model
        free(device)

    # gradient checkpointing recomputes with the same fusion state
    model = tiny("llama", torch.float32, device)
    inputs = tiny_batch()

    def grads():
        model.zero_grad()
        model.train()
        model(**inputs).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    plain = grads()
    model.gradient_checkpointing_enable()
    checkpointed = grads()
    worst = max(float((plain[n] - checkpointed[n]).abs().max() / (plain[n].abs().max() + 1e-12)) for n in plain)
    checks["gradient_checkpointing_same_gradients"] = {"ok": worst < 1e-4 and fusion._ACTIVE.get() is None,
                                                       "max_relative_grad_diff": worst}
    del model
    free(device)

    # the device's loss == the CPU's loss, same weights and inputs
    for dtype, rtol in ((torch.float32, FP32_LOSS_RTOL), (torch.bfloat16, BF16_LOSS_RTOL)):
        for fusion_dtype in ("auto",) if quick else ("auto", "float32"):
            losses = {}
            for where in ("cpu", device):
                model = tiny("llama", dtype, where)
                model.config.fusion_dtype = fusion_dtype
                with torch.no_grad():
                    losses[where] = float(model(**tiny_batch()).loss)
            diff = abs(losses["cpu"] - losses[device])
            name = f"cpu_loss_equals_device_loss[llm {str(dtype).removeprefix('torch.')},fusion {fusion_dtype}]"
            checks[name] = {"ok": diff <= rtol * abs(losses["cpu"]), "cpu": losses["cpu"], "device": losses[device],
                            "abs_diff": diff, "rtol": rtol}
            free(device)
    return checks


# ---------------------------------------------------------------------------------------------------- 2. shapes


def build_pair(encoder_shape: dict, llm_shape: dict, device: str, dtype: torch.dtype):
    """(LayAlign wrapper, MindMerger wrapper) sharing one random-weight encoder and LLM, built on the device."""
    import transformers

    from layalign import LayAlignConfig, LayAlignModel

    enc_cfg = transformers.MT5Config(**{k: v for k, v in encoder_shape.items() if k != "model_type"},
                                     pad_token_id=0, eos_token_id=1, dropout_rate=0.0)
    llm_kwargs = {k: v for k, v in llm_shape.items() if k != "model_type"}
    llm_cls = {"qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
               "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM)}[llm_shape["model_type"]]
    llm_cfg = llm_cls[0](**llm_kwargs, max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise directly in bf16: no float32 copy of 7B weights
    try:
        torch.manual_seed(0)
        with torch.device(device):
            encoder = transformers.MT5EncoderModel(enc_cfg).eval()
            llm = llm_cls[1](llm_cfg).eval()
    finally:
        torch.set_default_dtype(previous)
    name = str(dtype).removeprefix("torch.")
    models = {}
    for variant in ("layalign", "mindmerger"):
        config = LayAlignConfig(encoder="mt5-xl-shaped", llm="random", variant=variant, dtype=name)
        models[variant] = LayAlignModel(config, encoder=encoder, llm=llm)
        if models[variant].gates is not None:  # open gates: the branch really runs
            with torch.no_grad():
                models[variant].gates.fill_(0.1)
    return models["layalign"], models["mindmerger"]


@contextlib.contextmanager
def attention(llm, name: str):
    """Run the LLM with attention implementation `name` inside the block (the bare LLM and MindMerger run the
    LLM's own one, not the fused one with no state)."""
    saved = llm.config._attn_implementation
    llm.config._attn_implementation = name
    try:
        yield
    finally:
        llm.config._attn_implementation = saved


def synthetic(batch: int, lengths: dict, device: str, targets: bool, vocab: int = 512) -> dict[str, torch.Tensor]:
    """Random ids (4 .. vocab) of the given lengths, no padding: inputs of every system."""
    generator = torch.Generator().manual_seed(batch)

    def ids(n: int) -> torch.Tensor:
        return torch.randint(4, vocab, (batch, n), generator=generator).to(device)

    out = {"encoder_input_ids": ids(lengths["source"]), "prompt_input_ids": ids(lengths["prompt"])}
    if targets:
        out["labels"] = ids(lengths["target"])
    for key in list(out):
        out[key.replace("input_ids", "attention_mask") if key != "labels" else "labels_attention_mask"] = \
            torch.ones_like(out[key])
    return out


class StepClock:
    """A logits processor noting the time after each new token's forward pass (benchmarks/common.StepClock)."""

    def __init__(self, device: str):
        self.device, self.times = device, []

    def __call__(self, input_ids, scores):
        sync(self.device)
        self.times.append(time.perf_counter())
        return scores


def candidates(layalign, mindmerger, base: str):
    """name -> (wrapper or None for the bare LLM, fusion_dtype, attention implementation)."""
    fused = layalign.llm.config._attn_implementation
    return {"llm": (None, None, base), "mindmerger": (mindmerger, None, base),
            "layalign": (layalign, "auto", fused), "layalign_fp32_state": (layalign, "float32", fused)}


def decode_calls(layalign, mindmerger, base: str, batch: int, lengths: dict, new_tokens: int, device: str):
    from transformers import LogitsProcessorList

    inputs = synthetic(batch, lengths, device, targets=False)
    bos = torch.full((batch, 1), layalign.bos_token_id, device=device)
    bare_ids = torch.cat([bos, inputs["prompt_input_ids"]], dim=1)  # [bos] + prompt, as LLMOnlySystem builds it
    opts = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)

    def make(model, fusion_dtype, attn):
        def run() -> float:
            clock = StepClock(device)
            with attention(layalign.llm, attn), torch.no_grad():
                if model is None:
                    layalign.llm.generate(input_ids=bare_ids, attention_mask=torch.ones_like(bare_ids),
                                          logits_processor=LogitsProcessorList([clock]), **opts)
                else:
                    if fusion_dtype:
                        model.config.fusion_dtype = fusion_dtype
                    model.generate(**inputs, logits_processor=LogitsProcessorList([clock]), **opts)
            return (clock.times[-1] - clock.times[0]) / (len(clock.times) - 1)
        return run

    return {name: make(*spec) for name, spec in candidates(layalign, mindmerger, base).items()}


def train_calls(layalign, mindmerger, base: str, batch: int, lengths: dict, device: str):
    inputs = synthetic(batch, lengths, device, targets=True)
    llm = layalign.llm
    optimizers = {id(m): torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5)
                  for m in (layalign, mindmerger)}
    with torch.no_grad():  # the bare LLM's input: exactly MindMerger's LLM input, as plain embeddings
        _, final = mindmerger.encode(inputs["encoder_input_ids"], inputs["encoder_attention_mask"])
        llm_in = mindmerger.build_inputs(final, inputs["encoder_attention_mask"], inputs["prompt_input_ids"],
                                         inputs["prompt_attention_mask"], inputs["labels"],
                                         inputs["labels_attention_mask"])
    keep = inputs["labels"].shape[1] + 1

    def make(model, fusion_dtype, attn):
        def step() -> None:
            with attention(llm, attn):
                layalign.train()  # checkpointed decoder layers run in training mode (see LayAlignModel.train)
                if model is None:
                    embeds = llm_in.embeds.detach().requires_grad_(True)
                    out = llm(inputs_embeds=embeds, attention_mask=llm_in.attention_mask,
                              position_ids=llm_in.position_ids, logits_to_keep=keep)
                    torch.nn.functional.cross_entropy(out.logits[:, :-1].float().flatten(0, 1),
                                                      llm_in.labels[:, -keep + 1:].flatten(),
                                                      ignore_index=-100).backward()
                else:
                    if fusion_dtype:
                        model.config.fusion_dtype = fusion_dtype
                    model.train()
                    optimizer = optimizers[id(model)]
                    optimizer.zero_grad(set_to_none=True)
                    model(**inputs).loss.backward()
                    optimizer.step()
        return step

    return {name: make(*spec) for name, spec in candidates(layalign, mindmerger, base).items()}


def attention_kernels(layalign, base: str, device: str, lengths: dict) -> dict:
    """What attention ran: implementation names, SDPA backend flags, and the attention kernels a profiler records in
    a prefill + 2 decoding steps of the bare LLM and of LayAlign (batch 8, no padding)."""
    from torch.profiler import ProfilerActivity, profile

    info = {"llm_attn_implementation": base, "fused_attn_implementation": layalign.llm.config._attn_implementation}
    if device.startswith("cuda"):
        info["sdpa_flags"] = {name: getattr(torch.backends.cuda, f"{name}_sdp_enabled")()
                              for name in ("flash", "mem_efficient", "cudnn", "math")
                              if hasattr(torch.backends.cuda, f"{name}_sdp_enabled")}
    try:
        import flash_attn  # noqa: F401

        info["flash_attn_package"] = True
    except ImportError:
        info["flash_attn_package"] = False
    calls = decode_calls(layalign, None, base, 8, lengths, 3, device)
    pattern = re.compile(r"flash|fmha|attention|attn|sdpa|softmax|cudnn|efficient|bmm", re.I)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    for name in ("llm", "layalign"):
        calls[name]()  # warm
        with profile(activities=activities) as prof:
            calls[name]()
        kernels = {}
        for event in prof.key_averages():
            on_device = device.startswith("cuda") and getattr(event, "device_type", None) is not None and \
                str(event.device_type).endswith("CUDA")
            if pattern.search(event.key) and (on_device or not device.startswith("cuda") or
                                              event.key.startswith("aten::_scaled_dot_product")):
                kernels[event.key[:160]] = int(event.count)
        info[f"kernels_{name}"] = dict(sorted(kernels.items(), key=lambda kv: -kv[1])[:25])
        info[f"sdpa_backend_{name}"] = classify(kernels)
    return info


def classify(kernels: dict[str, int]) -> list[str]:
    """SDPA backends named by the kernels/ops seen."""
    found = set()
    for key in kernels:
        low = key.lower()
        if "_scaled_dot_product_flash" in low or "flash_fwd" in low or "flash::" in low or "pytorch_flash" in low:
            found.add("flash")
        if "efficient_attention" in low or "fmha" in low or "cutlass" in low and "attention" in low:
            found.add("mem_efficient")
        if "cudnn" in low and "attention" in low or "_scaled_dot_product_cudnn" in low:
            found.add("cudnn")
        if "_scaled_dot_product_attention_math" in low:
            found.add("math")
    return sorted(found)


def per_shape(name: str, encoder_shape: dict, llm_shape: dict, settings: dict, device: str, budget: Budget,
              report: Report) -> None:
    dtype = torch.bfloat16
    start = time.monotonic()
    layalign, mindmerger = build_pair(encoder_shape, llm_shape, device, dtype)
    base = re.sub("^layalign_", "", layalign.llm.config._attn_implementation)
    shape = {"encoder": encoder_shape, "llm": llm_shape, "dtype": "bfloat16", "lengths": settings["lengths"],
             "build_seconds": round(time.monotonic() - start, 1), "weights_mb": memory_now(device),
             "trainable_parameters": {"layalign": layalign.num_trainable_parameters(),
                                      "mindmerger": mindmerger.num_trainable_parameters()}}
    report.step(f"{name}/shape", shape)
    reserve = settings["reserve"]

    if budget.left() > reserve:
        try:
            report.step(f"{name}/kernels", attention_kernels(layalign, base, device, settings["lengths"]))
        except Exception as err:  # noqa: BLE001 - recorded, the run goes on
            report.error(f"{name}/kernels", err)
    else:
        report.skip(f"{name}/kernels", f"{budget.left():.0f} s left")

    for batch in settings["decode_batches"]:
        step = f"{name}/decode/batch{batch}"
        if budget.left() < reserve:
            report.skip(step, f"{budget.left():.0f} s left")
            continue
        try:
            calls = decode_calls(layalign, mindmerger, base, batch, settings["lengths"], settings["new_tokens"],
                                 device)
            timed = alternate(calls, settings["repeats"], device, budget, reserve)
            for result in timed.values():
                result["tokens_per_s"] = batch / result["value"] if result["value"] else None
            report.step(step, {"batch": batch, "new_tokens": settings["new_tokens"], "systems": timed})
        except Exception as err:  # noqa: BLE001
            report.error(step, err)
        free(device)

    step = f"{name}/train/batch{settings['train_batch']}"
    if budget.left() < reserve:
        report.skip(step, f"{budget.left():.0f} s left")
    else:
        layalign.gradient_checkpointing_enable()  # on the shared LLM: every system's step is checkpointed
        batch = settings["train_batch"]
        while True:
            try:
                calls = train_calls(layalign, mindmerger, base, batch, settings["lengths"], device)
                timed = alternate(calls, settings["repeats"], device, budget, reserve)
                report.step(step, {"batch": batch, "gradient_checkpointing": True,
                                   "sequence_length": 2 + sum(settings["lengths"].values()),
                                   "weights_mb": memory_now(device), "systems": timed})
                break
            except torch.OutOfMemoryError as err:
                report.error(f"{step} (batch {batch})", err)
                free(device)
                if batch == 1:
                    break
                batch //= 2
            except Exception as err:  # noqa: BLE001
                report.error(step, err)
                break
    del layalign, mindmerger
    free(device)


# ---------------------------------------------------------------------------------------------------- output


def render(data: dict) -> str:
    lines = [f"# GPU check: {data['device_name']}", "",
             f"Command: `{data['command']}`  ", f"Date: {data['date']}; torch {data['torch']}, transformers "
             f"{data['transformers']}; CUDA {data.get('cuda')}; elapsed {data.get('elapsed_s', '?')} s of a "
             f"{data['budget_s']} s budget{' (CPU dry run: tiny shapes)' if data['dry_run'] else ''}.", ""]
    identity = data["steps"].get("identity")
    if identity:
        lines += ["## Identities and parity on the device", "", "| check | ok | measured |", "|---|---|---|"]
        for name, result in identity.items():
            measured = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in result.items() if k != "ok")
            lines.append(f"| {name} | {'yes' if result['ok'] else '**NO**'} | {measured} |")
        lines.append("")
    for key, result in data["steps"].items():
        if key == "identity":
            continue
        if key.endswith("/shape"):
            lines += [f"## {key.split('/')[0]}", "", f"Encoder {result['encoder']}; LLM {result['llm']}; "
                      f"{result['dtype']}; input lengths {result['lengths']}; built in {result['build_seconds']} s; "
                      f"weights {mib(result['weights_mb'])} MiB; trainable parameters "
                      f"{result['trainable_parameters']}.", ""]
        elif key.endswith("/kernels"):
            lines += [f"Attention: LLM `{result['llm_attn_implementation']}` (fused: "
                      f"`{result['fused_attn_implementation']}`); SDPA flags {result.get('sdpa_flags')}; "
                      f"flash_attn package: {result['flash_attn_package']}; SDPA backend seen: bare LLM "
                      f"{result['sdpa_backend_llm']}, LayAlign {result['sdpa_backend_layalign']}.", ""]
            for who in ("llm", "layalign"):
                top = "; ".join(f"`{k}` x{v}" for k, v in list(result[f"kernels_{who}"].items())[:8])
                lines += [f"- kernels ({who}): {top}"]
            lines.append("")
        elif "/decode/" in key:
            base = result["systems"]["llm"]["value"]
            lines += [f"Decoding, batch {result['batch']} ({result['new_tokens']} new tokens; per decoding step):", "",
                      "| system | tokens/s | ms/step | vs bare LLM | rounds |", "|---|---|---|---|---|"]
            for system, r in result["systems"].items():
                if r["value"]:
                    lines.append(f"| {system} | {r['tokens_per_s']:.1f} | {r['value'] * 1e3:.2f} | "
                                 f"{r['value'] / base:.3f} | {r['rounds']} |")
            lines.append("")
        elif "/train/" in key:
            base = result["systems"]["llm"]["seconds"]
            lines += [f"Training step, batch {result['batch']}, sequence {result['sequence_length']}, gradient "
                      f"checkpointing; weights resident {mib(result['weights_mb'])} MiB:", "",
                      "| system | s/step | vs bare LLM | peak above resident (MiB) | peak (MiB) | rounds |",
                      "|---|---|---|---|---|---|"]
            for system, r in result["systems"].items():
                if r["seconds"]:
                    lines.append(f"| {system} | {r['seconds']:.3f} | {r['seconds'] / base:.3f} | "
                                 f"{mib(r['peak_extra_mb'])} | {mib(r['peak_mb'])} | {r['rounds']} |")
            lines.append("")
    if data["skipped"]:
        lines += ["## Skipped", ""] + [f"- {s}" for s in data["skipped"]] + [""]
    if data["errors"]:
        lines += ["## Errors", ""] + [f"- {k}: `{v.strip().splitlines()[-1]}`" for k, v in data["errors"].items()]
        lines.append("")
    lines += ["Systems: `llm` = the bare LLM ([bos] + prompt; training: forward and backward to its input embeddings "
              "at MindMerger's sequence length); `layalign` = fusion state in the LLM's dtype (bf16, "
              "fusion_dtype auto); `layalign_fp32_state` = fusion_dtype float32. Timed in turn in one process "
              "(medians); ratios are within one run.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="output folder (default: $OUT)")
    parser.add_argument("--cpu-dry-run", action="store_true", help="every step on the CPU at tiny shapes")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds this script may run (default 450 on a GPU, 300 for the dry run)")
    parser.add_argument("--shapes", nargs="+", help="LLM shapes to run (default: all)")
    args = parser.parse_args(argv)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    if out is None:
        parser.error("give --out, or set $OUT")
    budget = Budget(args.budget if args.budget is not None else (300 if args.cpu_dry_run else 450))

    import transformers

    if args.cpu_dry_run:
        device = "cpu"
        settings = {"lengths": DRY["lengths"], "decode_batches": DRY["decode_batches"],
                    "train_batch": DRY["train_batch"], "new_tokens": DRY["new_tokens"], "repeats": DRY["repeats"],
                    "reserve": 0.0}
        encoder, llms = DRY["encoder"], DRY["llms"]
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device; use --cpu-dry-run on a machine without one")
        device = "cuda"
        # a step is started only if this much time is left (the 7B step is the longest: about 30 s)
        settings = {"lengths": LENGTHS, "decode_batches": DECODE_BATCHES, "train_batch": TRAIN_BATCH,
                    "new_tokens": NEW_TOKENS, "repeats": REPEATS, "reserve": 45.0}
        encoder, llms = ENCODER, LLMS
    if args.shapes:
        llms = {k: v for k, v in llms.items() if k in args.shapes}
    report = Report(out, {
        "device_name": torch.cuda.get_device_name() if device == "cuda" else
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "device": device, "dry_run": args.cpu_dry_run, "budget_s": budget.seconds,
        "command": " ".join(["python benchmarks/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
        "transformers": transformers.__version__, "cuda": torch.version.cuda,
        "settings": {**settings, "encoder": encoder, "llms": llms}})
    print(f"[gpu_check] {report.data['device_name']}; writing to {out}", flush=True)

    if budget.left() > 0:
        try:
            checks = check_identity(device, quick=args.cpu_dry_run)
            report.step("identity", checks)
            failed = [name for name, result in checks.items() if not result["ok"]]
            print(f"[gpu_check] identity: {len(checks) - len(failed)} of {len(checks)} ok"
                  + (f"; FAILED: {failed}" if failed else ""), flush=True)
        except Exception as err:  # noqa: BLE001
            report.error("identity", err)
    else:
        report.skip("identity", "no time budget")
    for name, llm_shape in llms.items():
        if budget.left() < settings["reserve"] + (60 if device == "cuda" else 0):  # building one costs ~10-20 s
            report.skip(name, f"{budget.left():.0f} s left")
            continue
        print(f"[gpu_check] {name} ({budget.elapsed():.0f} s elapsed)", flush=True)
        try:
            per_shape(name, encoder, llm_shape, settings, device, budget, report)
        except Exception as err:  # noqa: BLE001
            report.error(name, err)
        free(device)
    report.data["elapsed_s"] = round(budget.elapsed(), 1)
    report.write()
    print((out / "gpu_check.md").read_text(), flush=True)
    failed = [n for n, r in report.data["steps"].get("identity", {}).items() if not r["ok"]]
    return 1 if failed or report.data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
