"""Where a comparison unit's time goes, on the real default pair (multilingual-e5-small + SmolLM2-135M-Instruct), and
which settings make it faster without changing what it computes. Writes docs/results/comparison/profile.md (the
report's "How a unit is run") and profile.json.

    python scripts/comparison_profile.py                     # both parts, one thread (a lane of --lanes 2)
    python scripts/comparison_profile.py --skip-unit         # only the in-turn measurements

1. One LayAlign unit at small sizes through `layalign study run xnli` itself (10 translation and 10 task steps with the
   recipes' dev sets, 20 rows x 3 languages evaluated both ways): seconds per phase.
2. In one process, candidates timed in turn (A B C, A B C, ...; medians), so that the load of a shared machine hits
   them alike: choice scoring at batch 8 / 16 / 32 (float32) and at 16 with the frozen models in bfloat16;
   generation at 16 and 32; a task-stage and a translation-stage optimiser step in float32, under bf16 autocast, and
   with bf16 frozen weights under autocast (the trainer's mixed_precision=bf16 and model.dtype=bfloat16). Each
   bf16 setting is checked against float32 (loss of the same batch from the same adapters; choices picked).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from layalign.files import relative_to_root

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "comparison"
DATA = ROOT.parent / "shared" / "data"
LANGS = ["en", "sw", "zh"]


def in_turn(calls: dict, repeats: int) -> dict[str, float]:
    """Median seconds per candidate, timed in turn after one untimed warm-up round."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def unit_phases(work: Path) -> tuple[dict, str]:
    command = [sys.executable, "-m", "layalign", "study", "run", "xnli", "--units", "layalign-s0", "--steps", "10",
               "--stage1-steps", "10", "--limit", "20", "--langs", *LANGS, "--work", str(work),
               "--results", str(work / "units"), "--threads", "1"]
    start = time.time()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    record = json.loads((work / "units" / "layalign-s0" / "unit.json").read_text())
    record["wall_seconds"] = round(time.time() - start, 1)
    return record, " ".join(["layalign", *command[3:]])


def measure(repeats: int) -> dict:
    import torch

    from layalign.data import read_xnli_train_jsonl
    from layalign.data.parallel import read_shared_parallel
    from layalign.model.config import LayAlignConfig
    from layalign.model.modeling import LayAlignModel
    from layalign.model.processing import LayAlignProcessor
    from layalign.systems import LayAlignSystem
    from layalign.tasks import get_task
    from layalign.testing import randomize_adapters
    from layalign.training.batching import Batcher

    fp32 = LayAlignModel(LayAlignConfig(variant="layalign"))
    randomize_adapters(fp32, scale=0.05, seed=0)  # gates off zero: the fusion branch really runs
    bf16 = LayAlignModel(LayAlignConfig(variant="layalign", dtype="bfloat16"))
    bf16.load_adapter_state_dict({k: v.clone() for k, v in fp32.trainable_state_dict().items()})
    lengths = {"max_source_length": 160, "max_prompt_length": 160}
    systems = {name: LayAlignSystem(m, name, LayAlignProcessor.from_model(m, **lengths))
               for name, m in (("fp32", fp32), ("bf16", bf16))}
    task = get_task("xnli")
    rows = [ex for exs in task.read(str(DATA / "xnli" / "dev"), langs=LANGS, limit=20).values() for ex in exs]
    sources, prompts, langs = [e.source for e in rows], [e.prompt for e in rows], [e.lang for e in rows]
    choices = list(task.choices)

    def scorer(system, batch):
        def call():
            out = []
            for i in range(0, len(rows), batch):
                out += system.score_choices(sources[i:i + batch], prompts[i:i + batch], choices, langs[i:i + batch])
            return out
        return call

    def generator(system, batch):
        def call():
            for i in range(0, len(rows), batch):
                system.generate(sources[i:i + batch], prompts[i:i + batch], 5, langs=langs[i:i + batch])
        return call

    results: dict = {"rows": len(rows)}
    picks = {name: [max(range(3), key=r.__getitem__) for r in scorer(s, 16)()] for name, s in systems.items()}
    results["choice_agreement_bf16_fp32"] = sum(a == b for a, b in zip(picks["fp32"], picks["bf16"])) / len(rows)
    choice = in_turn({f"fp32 batch {b}": scorer(systems["fp32"], b) for b in (8, 16, 32)}
                     | {"bf16 weights batch 16": scorer(systems["bf16"], 16)}, repeats)
    results["choices_examples_per_s"] = {k: len(rows) / v for k, v in choice.items()}
    gen = in_turn({f"fp32 batch {b}": generator(systems["fp32"], b) for b in (16, 32)}, max(1, repeats - 1))
    results["generate_examples_per_s"] = {k: len(rows) / v for k, v in gen.items()}

    # training steps on real batches of 8 (the recipes' batch), the same adapters in every setting
    task_examples = read_xnli_train_jsonl(DATA / "xnli" / "train" / "train-en.jsonl", "en", limit=8)
    parallel = read_shared_parallel(DATA / "parallel", langs=["sw"], limit=8)
    settings = {"fp32": (fp32, False), "fp32 weights + bf16 autocast": (fp32, True),
                "bf16 weights + bf16 autocast": (bf16, True)}
    results["train_step_s"], results["train_loss"] = {}, {}
    for stage, examples, limits in (("task", task_examples, dict(lengths, max_target_length=8)),
                                    ("translation", parallel[:8], {"max_source_length": 64, "max_target_length": 64})):
        calls, losses = {}, {}
        for name, (model, autocast) in settings.items():
            batch = Batcher(LayAlignProcessor.from_model(model, **limits), stage, model.config.use_prompt)(examples)
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)  # lr 0: the
            # adapters stay as they are, so every setting's loss is of the same weights

            def step(model=model, batch=batch, autocast=autocast, optimizer=optimizer, name=name, losses=losses):
                model.train()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses[name] = float(loss)
            calls[name] = step
        results["train_step_s"][stage] = in_turn(calls, repeats)
        results["train_loss"][stage] = dict(losses)
    results["threads"] = torch.get_num_threads()
    return results


def markdown(unit: dict | None, unit_command: str | None, m: dict, command: str) -> str:
    lines = [f"Measured on {platform.platform()}, {m['threads']} torch thread(s), on {time.strftime('%Y-%m-%d')}, "
             "while the machine (2 cores) was shared with other engineers' jobs: absolute times are noisy; the "
             "settings compared below were timed in turn within one process (A B C, A B C, ...; medians), so the "
             f"load hit them alike. Command: `{command}`.", ""]
    if unit:
        phases = unit["phases"]
        lines += [f"**One LayAlign unit at small sizes** (`{unit_command}`; 10 translation and 10 task steps with "
                  "the recipes' dev sets, which are evaluated at the start and the end of each stage; 20 dev rows x 3 "
                  f"languages each way; training settings {' '.join(unit['settings']['train_settings'])}): "
                  f"{unit['wall_seconds']:.0f} s in all.", "",
                  "| phase | seconds |", "|---|---:|"]
        lines += [f"| {name} | {v['seconds'] if v.get('seconds') is not None else '–'} |" for name, v in phases.items()]
        lines.append("")
    lines += ["**Choice scoring** (examples/s, 60 XNLI dev rows in en, sw, zh):", "", "| setting | examples/s |",
              "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in m["choices_examples_per_s"].items()]
    agreement = 100 * m["choice_agreement_bf16_fp32"]
    lines += ["", f"bf16 frozen weights pick the same label as float32 on {agreement:.0f} % of the rows.", "",
              "**Generation** (5 new tokens, examples/s):", "", "| setting | examples/s |",
              "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in m["generate_examples_per_s"].items()]
    lines += ["", "**One optimiser step, batch 8** (seconds; loss of the same batch from the same adapters):", "",
              "| setting | task step | task loss | translation step | translation loss |", "|---|---:|---:|---:|---:|"]
    for name in m["train_step_s"]["task"]:
        lines.append(f"| {name} | {m['train_step_s']['task'][name]:.2f} | {m['train_loss']['task'][name]:.4f} | "
                     f"{m['train_step_s']['translation'][name]:.2f} | {m['train_loss']['translation'][name]:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-unit", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "comparison-profile")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    unit = command = None
    if not args.skip_unit:
        unit, command = unit_phases(args.work)
        print(json.dumps(unit["phases"], indent=1), flush=True)
    m = measure(args.repeats)
    print(json.dumps(m, indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    # the records name paths relative to the repository root, never this checkout's
    record = relative_to_root({"unit": unit, "measurements": m}, ROOT)
    (args.out / "profile.json").write_text(json.dumps(record, indent=1) + "\n")
    me = "python scripts/comparison_profile.py" + (" " + " ".join(argv) if argv else " " + " ".join(sys.argv[1:]))
    (args.out / "profile.md").write_text(relative_to_root(markdown(unit, command, m, me.strip()), ROOT),
                                         encoding="utf-8")
    print(f"wrote {args.out / 'profile.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
