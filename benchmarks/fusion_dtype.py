"""The fusion state in bf16 vs float32 under a float32 LLM (LayAlignConfig.fusion_dtype), on the real default pair.

One model, built once; the two settings differ only in `model.config.fusion_dtype`, which LayAlignModel reads at
every call, so both run on the same weights and inputs in one process:

- decoding time per new token (greedy, timed inside generate from the first new token to the last, as
  benchmarks/speed.py does) at each batch size, the two settings timed in turn (common.in_turn: one of each, then
  again, ... medians), so that the machine's load hits both alike; the ratio is of numbers measured in this run;
- on real XNLI dev rows in several languages (source = prompt = the XNLI prompt, target = the gold label word): each
  example's target loss under both settings, and the greedy continuations of both (how many differ, and where);
- for scale, how much the open gates move the loss at all (the same examples with the gates closed);
- the branch alone: one decoding step's fusion branch over all fused layers (fusion.fusion_branch on the model's
  own fusion state, one query position, the LLM's head shapes), float32 vs bf16 state, many rounds in turn: the
  part of a step that the setting changes, with far less noise than whole decoding steps on a busy machine.

Gates are opened by layalign.testing.randomize_adapters with a small scale (every adapter N(0, scale^2)): an
untrained model, so the continuations are not meaningful text, but both settings see the same adapters.

    python benchmarks/fusion_dtype.py                                   # defaults: batches 1 8, 5 repeats
    python benchmarks/fusion_dtype.py --out docs/results/fusion-dtype-cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

import common
import torch

XNLI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "xnli"
LANGS = ("en", "de", "fr", "ru", "zh", "ar", "th", "sw")
SETTINGS = ("float32", "bfloat16")


def xnli_rows(langs: list[str], per_lang: int) -> list[tuple[str, str, str]]:
    """(lang, prompt, gold label word) of the first `per_lang` dev rows of each language."""
    from layalign.data import read_xnli_eval

    found = read_xnli_eval(XNLI, "dev", langs=langs, limit=per_lang)
    return [(lang, e.prompt, e.gold) for lang in langs for e in found[lang]]


def per_example_losses(model, processor, rows) -> list[float]:
    """The target loss of each example, run one at a time (no padding anywhere)."""
    losses = []
    with torch.no_grad():
        for _, prompt, gold in rows:
            losses.append(float(model(**processor([prompt], [prompt], [gold])).loss))
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=16, help="new tokens per decoding run")
    parser.add_argument("--langs", nargs="+", default=list(LANGS))
    parser.add_argument("--per-lang", type=int, default=2, help="XNLI dev rows per language for the quality check")
    parser.add_argument("--scale", type=float, default=0.05, help="randomize_adapters scale (gates included)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--branch-repeats", type=int, default=200, help="rounds of the branch-only timing")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    args = parser.parse_args(argv)

    from transformers import LogitsProcessorList

    from layalign import LayAlignConfig, LayAlignModel
    from layalign.model.processing import LayAlignProcessor
    from layalign.testing import randomize_adapters

    allocator = common.set_up_allocator("kept")
    torch.manual_seed(args.seed)
    model = LayAlignModel(LayAlignConfig(dtype="float32"))
    randomize_adapters(model, scale=args.scale, seed=args.seed)
    model.eval()
    processor = LayAlignProcessor.from_model(model)
    rows = xnli_rows(args.langs, args.per_lang)
    pad = model.llm_tokenizer.pad_token_id if model.llm_tokenizer.pad_token_id is not None else 0

    def setting(name: str) -> None:
        model.config.fusion_dtype = name

    # ---- decoding speed, the two settings in turn
    speed = {}
    for batch in args.batches:
        picked = [rows[i % len(rows)] for i in range(batch)]
        inputs = processor([p for _, p, _ in picked], [p for _, p, _ in picked])

        def run(name: str, inputs=inputs) -> float:
            setting(name)
            clock = common.StepClock()
            model.generate(**inputs, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                           do_sample=False, logits_processor=LogitsProcessorList([clock]), pad_token_id=pad)
            return (clock.times[-1] - clock.times[0]) / (len(clock.times) - 1)

        timings = common.in_turn({name: (lambda name=name: run(name)) for name in SETTINGS}, repeats=args.repeats)
        speed[batch] = timings.values
        print(f"batch {batch}: " + ", ".join(f"{n} {v * 1e3:.2f} ms/token" for n, v in timings.values.items())
              + f"; bf16/fp32 = {timings.values['bfloat16'] / timings.values['float32']:.3f}", flush=True)

    # ---- the branch alone, per decoding step (all fused layers), the two settings in turn
    from layalign.model.fusion import fusion_branch

    attention = model.llm.get_decoder().layers[0].self_attn
    heads, head_dim = model.llm.config.num_attention_heads, attention.head_dim
    branch = {}
    for batch in args.batches:
        picked = [rows[i % len(rows)] for i in range(batch)]
        enc = processor([p for _, p, _ in picked], [p for _, p, _ in picked])
        states, _ = model.encode(enc["encoder_input_ids"], enc["encoder_attention_mask"])
        query = torch.randn(batch, 1, heads, head_dim).transpose(1, 2)
        calls = {}
        for name in SETTINGS:
            setting(name)
            with torch.no_grad():
                state = model.fusion_state(states, enc["encoder_attention_mask"])

            def step(state=state, query=query) -> None:
                with torch.no_grad():
                    for slot in range(len(state.keys)):
                        fusion_branch(attention, query, state, slot).float()

            calls[name] = step
        branch[batch] = common.in_turn(calls, repeats=args.branch_repeats).seconds
        print(f"branch, batch {batch}: " + ", ".join(f"{n} {v * 1e3:.3f} ms" for n, v in branch[batch].items()),
              flush=True)

    # ---- quality: losses and greedy continuations on the real rows
    losses = {}
    for name in SETTINGS:
        setting(name)
        losses[name] = per_example_losses(model, processor, rows)
    gates = model.gates.detach().clone()
    with torch.no_grad():
        model.gates.zero_()
    setting("float32")
    closed = per_example_losses(model, processor, rows)
    with torch.no_grad():
        model.gates.copy_(gates)
    delta = [abs(a - b) for a, b in zip(losses["float32"], losses["bfloat16"])]
    gate_effect = [abs(a - b) for a, b in zip(losses["float32"], closed)]

    texts = [p for _, p, _ in rows]
    inputs = processor(texts, texts)
    generated = {}
    for name in SETTINGS:
        setting(name)
        generated[name] = model.generate(**inputs, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                         do_sample=False, pad_token_id=pad)
    differ = (generated["float32"] != generated["bfloat16"])
    first = [int(d.nonzero()[0]) if bool(d.any()) else None for d in differ]
    changed = [i for i, f in enumerate(first) if f is not None]
    tokens_differ = int(differ.sum())

    report = render(args, allocator, speed, branch, rows, losses, closed, delta, gate_effect, first, changed,
                    tokens_differ, differ.numel(), generated, model)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")


def render(args, allocator, speed, branch, rows, losses, closed, delta, gate_effect, first, changed, tokens_differ,
           total, generated, model) -> str:
    tok = model.llm_tokenizer
    lines = [
        "# Fusion state in bf16 vs float32 (float32 LLM), CPU",
        "",
        f"Command: `python {' '.join(['benchmarks/fusion_dtype.py', *sys.argv[1:]])}`  ",
        f"Date: {datetime.date.today().isoformat()}; machine: {common.machine('cpu')}; torch {torch.__version__}; "
        f"allocator: {allocator}  ",
        f"Pair: {model.config.encoder} + {model.config.llm} (dtype float32); adapters and gates from "
        f"randomize_adapters(scale={args.scale}, seed={args.seed}); gates |g| mean "
        f"{float(model.gates.detach().abs().mean()):.3f}.",
        "",
        "The machine is shared with other jobs: the two settings are timed in turn in one process (one of each, then "
        f"again, {args.repeats} rounds after a warm-up round) and the ratio is of medians from this one run.",
        "",
        f"## Decoding, per new token ({args.new_tokens} new tokens, greedy)",
        "",
        "| batch | float32 state (ms/token) | bf16 state (ms/token) | bf16 / float32 |",
        "|---|---|---|---|",
    ]
    for batch, values in speed.items():
        lines.append(f"| {batch} | {values['float32'] * 1e3:.2f} | {values['bfloat16'] * 1e3:.2f} | "
                     f"{values['bfloat16'] / values['float32']:.3f} |")
    lines += [
        "",
        f"## The fusion branch alone, one decoding step ({len(model.config.llm_layers)} fused layers, "
        f"{args.branch_repeats} rounds in turn)",
        "",
        "| batch | float32 state (ms) | bf16 state (ms) | bf16 / float32 |",
        "|---|---|---|---|",
    ]
    for batch, values in branch.items():
        lines.append(f"| {batch} | {values['float32'] * 1e3:.3f} | {values['bfloat16'] * 1e3:.3f} | "
                     f"{values['bfloat16'] / values['float32']:.3f} |")
    lines += [
        "",
        f"## Quality on {len(rows)} XNLI dev rows ({', '.join(args.langs)}; {args.per_lang} each)",
        "",
        "Target = the gold label word; each example alone (no padding).",
        "",
        f"- mean target loss: float32 state {statistics.mean(losses['float32']):.5f}, bf16 state "
        f"{statistics.mean(losses['bfloat16']):.5f}, gates closed {statistics.mean(closed):.5f}",
        f"- |loss(bf16) - loss(float32)| per example: mean {statistics.mean(delta):.2e}, max {max(delta):.2e}",
        f"- for scale, |loss(gates open) - loss(gates closed)| per example: mean {statistics.mean(gate_effect):.2e}, "
        f"max {max(gate_effect):.2e} (the bf16 rounding is {statistics.mean(delta) / statistics.mean(gate_effect):.1e}"
        " of the branch's own effect, on average)",
        f"- greedy continuations ({args.new_tokens} tokens, all {len(rows)} rows in one batch): "
        f"{len(changed)} of {len(rows)} differ somewhere; {tokens_differ} of {total} tokens differ",
    ]
    if changed:
        lines += ["", "| row | lang | first differing new token | float32 continuation | bf16 continuation |",
                  "|---|---|---|---|---|"]
        for i in changed:
            a, b = (tok.decode(generated[n][i], skip_special_tokens=True).replace("\n", "\\n").replace("|", "/")
                    for n in SETTINGS)
            lines.append(f"| {i} | {rows[i][0]} | {first[i]} | `{a[:60]}` | `{b[:60]}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
