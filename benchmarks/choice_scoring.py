"""Choice scoring speed on SIB-200 dev: rows per second before and after the faster scoring, in one run.

before: the examples in file order, batches of 8, the second pass with the prompt cache copied once per choice
(`layout="per_choice"`, what choice scoring did before, less its pass over each choice's last token); then the
same layout with the rows longest first (what ordering alone gains, and how much rebatching alone moves bfloat16
scores); after: each language longest first (`layalign.evaluation.run.longest_first`, batches within one
language) in batches of each --batch-sizes, the choices' later tokens in one row per prompt (`layout="auto"`).
Every candidate scores the same rows; the table also says how far each candidate's scores are from the before
ones and how many predictions (the argmax choice) differ.

    python benchmarks/choice_scoring.py --langs eng_Latn amh_Ethi tha_Thai --rows 16 --dtype bfloat16 --profile

Where the time goes (--profile): one batch of the last language, split into the encoder and the prompt
assembly, the prompt pass and the choices' second pass, for each layout.
"""

from __future__ import annotations

import argparse
import time

import common
import torch

from layalign.evaluation.run import batched, longest_first
from layalign.model import fusion
from layalign.model.choices import choice_logprobs
from layalign.tasks import get_task


def load(system: str, dtype: str, device: str):
    """The system as evaluation runs it: LayAlign (the default pair, untrained adapters, gates open at 0.1 so the
    fusion branch runs) with the processor's default lengths, or the bare LLM."""
    from layalign.systems import LayAlignSystem

    if system == "llm":
        return common.build_llm("default", dtype, device)
    model, _, _ = common.build_model(system, "default", dtype, device)
    return LayAlignSystem(model, name=system)


def score_all(system, examples, choices, batch_size: int, layout: str, per_language: bool) -> list[list[float]]:
    """Every example's choice scores, in the examples' order, batched as `evaluate` batches them."""
    scores = []
    for batch in batched(examples, batch_size, per_language=per_language):
        scores += system.score_choices([e.source for e in batch], [e.prompt for e in batch], choices,
                                       langs=[e.lang for e in batch], layout=layout)
    return scores


def profile(system, examples, choices) -> None:
    """Seconds of each stage for one batch of 8 (LayAlign only: the bare LLM has no encoder stage)."""
    processor, model = system.processor, system.model
    batch = processor([e.source for e in examples], [e.prompt for e in examples], langs=[e.lang for e in examples])
    ids = [processor._llm_ids(c) for c in choices]
    with torch.no_grad():
        start = time.perf_counter()
        inputs, state = model.prompt_inputs(**batch)
        encoded = time.perf_counter()
        prefix = {"inputs_embeds": inputs.embeds, "attention_mask": inputs.attention_mask,
                  "position_ids": inputs.position_ids}
        with fusion.active(state):
            model.llm(**prefix, use_cache=True, logits_to_keep=1)
            prompted = time.perf_counter()
            for layout in ("per_choice", "one_row"):
                t0 = time.perf_counter()
                choice_logprobs(model.llm, prefix, ids, layout=layout)
                print(f"  prompt pass + second pass ({layout}): {time.perf_counter() - t0:.2f} s")
    mask = inputs.attention_mask
    print(f"  batch of {mask.shape[0]}, LLM input {mask.shape[1]} wide, {int(mask.sum())} real tokens "
          f"({100 * (1 - mask.float().mean()):.0f} % padding)")
    print(f"  encoder + prompt assembly {encoded - start:.2f} s, prompt pass {prompted - encoded:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", choices=["layalign", "mindmerger", "llm"], default="layalign")
    parser.add_argument("--langs", nargs="+", default=["eng_Latn", "tha_Thai", "amh_Ethi"])
    parser.add_argument("--rows", type=int, default=16, help="dev rows per language (the first N)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds, candidates in turn (medians)")
    parser.add_argument("--profile", action="store_true", help="also time the stages of one batch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    task = get_task("sib200")
    examples = [e for rows in task.read(langs=args.langs, limit=args.rows).values() for e in rows]
    system = load(args.system, args.dtype, "cpu")
    choices = list(task.choices)
    if args.profile and args.system != "llm":
        print(f"where the time goes, {args.langs[-1]}, 8 rows in file order:")
        profile(system, [e for e in examples if e.lang == args.langs[-1]][:8], choices)

    ordered = longest_first(examples)
    results: dict[str, list[list[float]]] = {}
    candidates = {"before: file order, batch 8, cache per choice":
                  lambda: results.__setitem__("before", score_all(system, examples, choices, 8, "per_choice", False)),
                  "longest first only: batch 8, cache per choice":
                  lambda: results.__setitem__("sorted", score_all(system, ordered, choices, 8, "per_choice", True))}
    for size in args.batch_sizes:
        candidates[f"after: longest first, batch {size}, one row per prompt"] = (
            lambda size=size: results.__setitem__(size, score_all(system, ordered, choices, size, "auto", True)))
    timings = common.in_turn(candidates, repeats=args.repeats, warmup=0)

    position = {id(e): i for i, e in enumerate(ordered)}
    before = torch.tensor(results["before"])
    print(f"\n{args.system} ({args.dtype}, {common.machine()}), SIB-200 dev, {len(examples)} rows "
          f"({args.rows} per language: {', '.join(args.langs)}), {len(choices)} choices\n")
    print("| candidate | seconds | rows/s | speed-up | max abs diff of a log-prob vs before | predictions changed |")
    print("|---|---:|---:|---:|---:|---:|")
    base = timings.seconds[next(iter(candidates))]
    for (name, seconds), key in zip(timings.seconds.items(), ["before", "sorted", *args.batch_sizes], strict=True):
        got = torch.tensor(results[key]) if key == "before" else \
            torch.tensor(results[key])[[position[id(e)] for e in examples]]  # back to file order
        diff = (got - before).abs().max().item()
        changed = int((got.argmax(dim=1) != before.argmax(dim=1)).sum())
        print(f"| {name} | {seconds:.1f} | {len(examples) / seconds:.2f} | {base / seconds:.2f} | {diff:.2g} | "
              f"{changed} of {len(examples)} |")


if __name__ == "__main__":
    main()
