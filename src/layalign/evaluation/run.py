"""Running a benchmark: answer every example, resumably, and keep the run's record.

A run directory holds:
- `run.json`: what the run is (benchmark, system name, max_new_tokens, scoring, protocol, the input lengths, the
  backbones' dtype), so that
  a resumed run cannot silently mix two systems or two settings in one file;
- `predictions.jsonl`: one row per example, appended batch by batch, so a killed run resumes where it stopped; a
  row carries "truncated" (which of its inputs were cut to the length limits: "source", "prompt") when the system
  reports it;
- `results.json`, `results.md`, `results.csv` and a bar chart (`layalign.evaluation.report`), all recomputed from
  `predictions.jsonl` (the one source of truth: the table's accuracy is exactly the fraction of correct rows there).
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from layalign.data.examples import EvalExample
from layalign.evaluation.report import (
    RESULTS_CSV,
    RESULTS_JSON,
    RESULTS_MD,
    chart_name,
    results_markdown,
    write_results,
)
from layalign.evaluation.scoring import (
    DEFAULT_PROTOCOL,
    check_protocol,
    extract_answer,
    is_correct,
    row_key,
    score_predictions,
)
from layalign.tasks import TASKS, get_task

# "generate": greedy generation, the answer extracted from the text (the paper's way). "choices": the allowed answer
# with the highest log-likelihood (the way lm-evaluation-harness scores XNLI), so a model that does not follow the
# answer format is still measured on what it prefers
SCORING = ("generate", "choices")

PREDICTIONS = "predictions.jsonl"
RUN_RECORD = "run.json"


class System(Protocol):
    """What `layalign.systems.load_system` returns (only these members are used here).

    `langs` gives every example's language (encoders with a source-language tag read it). Optional members, read
    with getattr: `lengths` (the input limits it applies, recorded in run.json and results.json) and
    `last_truncated` (per example of the latest call, the inputs cut to those limits; counted per language),
    `zero_gates` (True when every fusion gate was set to zero: `load_system(..., zero_gates=True)`)."""

    name: str

    def generate(self, sources: list[str], prompts: list[str | None], max_new_tokens: int,
                 langs: list[str] | None = None) -> list[str]: ...

    def score_choices(self, sources: list[str], prompts: list[str | None], choices: list[str],
                      langs: list[str] | None = None) -> list[list[float]]: ...


def evaluate(
    system: System,
    benchmark: str,
    examples_by_lang: dict[str, list[EvalExample]],
    out_dir: str | Path,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    progress: bool = True,
    *,
    name: str | None = None,
    low_resource: Iterable[str] | None = None,
    scoring: str = "generate",
    protocol: str = DEFAULT_PROTOCOL,
    sort_by_length: bool = True,
) -> dict:
    """Answer every example not yet in `out_dir/predictions.jsonl`, then (re)write the results files from the
    whole predictions file and return the results dict (see `score_predictions`).

    name: the system's name in tables (default `system.name`); low_resource: the languages averaged separately
    (default: the task's, from `layalign.tasks`); max_new_tokens: default the task's; scoring: "generate" or
    "choices" (tasks with choices only, XNLI and X-CSQA); protocol: "lenient" or "paper" (how answers are read and
    judged, see `layalign.evaluation.scoring`); sort_by_length: under choice scoring, batch each language's
    examples longest first, so that a batch pads little (a row's choice scores depend on its batch only through
    rounding; generation keeps the file order, where that rounding can change a greedy answer). The results record
    the protocol, the system's input lengths and the number of truncated inputs per language (the processor's
    truncation warnings are silenced: counted instead).
    """
    task = get_task(benchmark)
    check_protocol(protocol)
    if scoring not in SCORING:
        raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORING)}")
    if scoring == "choices" and task.choices is None:
        with_choices = ", ".join(t.name for t in TASKS.values() if t.choices is not None)
        raise ValueError(f"choice scoring needs a fixed set of answers; {benchmark} has none "
                         f"(it works for {with_choices})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or system.name
    max_new_tokens = max_new_tokens or task.max_new_tokens
    lengths = getattr(system, "lengths", None)
    dtype = system_dtype(system)
    zero_gates = bool(getattr(system, "zero_gates", False))
    _check_run_record(out, {"benchmark": benchmark, "system": name, "max_new_tokens": max_new_tokens,
                            "scoring": scoring, "protocol": protocol, "lengths": lengths, "dtype": dtype,
                            "zero_gates": zero_gates})

    pred_path = out / PREDICTIONS
    done = {row_key(row) for row in load_predictions(pred_path, repair=True)}
    wanted = [ex for examples in examples_by_lang.values() for ex in examples]
    pending = [ex for ex in wanted if (ex.lang, ex.id) not in done]
    by_length = scoring == "choices" and sort_by_length
    batches = batched(longest_first(pending) if by_length else pending, batch_size, per_language=by_length)
    extra = len(done - {(ex.lang, ex.id) for ex in wanted})
    if extra:
        print(f"note: {pred_path} also holds {extra} earlier rows outside this request; they are scored too",
              file=sys.stderr)

    from layalign.model.processing import TruncationWarning  # here: importing evaluation needs no torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # counted per example and reported instead
        _predict_into(system, benchmark, batches, pred_path, max_new_tokens, scoring, protocol,
                      progress=progress, total=len(wanted), done=len(wanted) - len(pending), desc=f"{benchmark} {name}")

    low = set(low_resource) if low_resource is not None else set(task.low_resource)
    results = score_predictions(benchmark, load_predictions(pred_path), low, protocol=protocol)
    results.update(system=name, max_new_tokens=max_new_tokens, scoring=scoring, lengths=lengths, dtype=dtype)
    write_results(results, out)
    if results["truncated"]:
        counts = ", ".join(f"{lang} {s['truncated']}/{s['n']}" for lang, s in results["per_language"].items()
                           if s["truncated"])
        print(f"note: inputs cut to the length limits {lengths}: {counts}", file=sys.stderr)
    return results


def longest_first(examples: list[EvalExample]) -> list[EvalExample]:
    """The examples of each language longest first (characters of source and prompt: within one language a close
    proxy for tokens), languages in their order of first appearance, ties in file order."""
    rank = {lang: i for i, lang in enumerate(dict.fromkeys(ex.lang for ex in examples))}
    return sorted(examples, key=lambda ex: (rank[ex.lang], -len(ex.source) - len(ex.prompt or "")))


def batched(examples: list[EvalExample], size: int, per_language: bool = False) -> list[list[EvalExample]]:
    """Consecutive batches of `size`; with per_language, a batch never holds two languages (sorted by length, a
    batch across a boundary would join one language's shortest rows with the next one's longest)."""
    groups = [list(g) for _, g in itertools.groupby(examples, key=lambda ex: ex.lang)] if per_language else [examples]
    return [group[start : start + size] for group in groups for start in range(0, len(group), size)]


def _predict_into(system: System, benchmark: str, batches: list[list[EvalExample]], pred_path: Path,
                  max_new_tokens: int, scoring: str, protocol: str, *, progress: bool, total: int, done: int,
                  desc: str) -> None:
    """Answer in batches and append one row per example; each batch is flushed so a kill loses at most one."""
    from tqdm.auto import tqdm

    choices = get_task(benchmark).choices
    bar = tqdm(total=total, initial=done, desc=desc, unit="ex", disable=not progress)
    with open(pred_path, "a", encoding="utf-8") as f:
        for batch in batches:
            sources, prompts = [ex.source for ex in batch], [ex.prompt for ex in batch]
            langs = [ex.lang for ex in batch]
            if scoring == "choices":
                outputs, extras = _choose(system, choices, sources, prompts, langs)
            else:
                outputs = system.generate(sources, prompts, max_new_tokens, langs=langs)
                extras = [{} for _ in outputs]
            if len(outputs) != len(batch):
                raise RuntimeError(f"system returned {len(outputs)} outputs for {len(batch)} inputs")
            cut = getattr(system, "last_truncated", None)
            if cut is not None and len(cut) == len(batch):
                for extra, parts in zip(extras, cut, strict=True):
                    extra["truncated"] = list(parts)
            for ex, output, extra in zip(batch, outputs, extras, strict=True):
                row = prediction_row(benchmark, ex, output, protocol) | extra
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            bar.update(len(batch))
    bar.close()


def _choose(system: System, choices: tuple[str, ...], sources: list[str], prompts: list[str | None],
            langs: list[str]) -> tuple[list[str], list[dict]]:
    """The most likely choice of every example is its output; the row keeps every choice's log-likelihood."""
    outputs, extras = [], []
    for row in system.score_choices(sources, prompts, list(choices), langs=langs):
        outputs.append(choices[max(range(len(choices)), key=row.__getitem__)])
        extras.append({"choice_logprobs": dict(zip(choices, (round(x, 4) for x in row), strict=True))})
    return outputs, extras


def prediction_row(benchmark: str, example: EvalExample, output: str, protocol: str = DEFAULT_PROTOCOL) -> dict:
    """One predictions.jsonl row, its answer read and judged under `protocol`. `correct` is None for translation
    (scored over the corpus)."""
    answer = extract_answer(benchmark, output, protocol)
    correct = is_correct(benchmark, answer, example.gold, protocol) if get_task(benchmark).per_example else None
    return {"id": example.id, "lang": example.lang, "prompt": example.prompt, "source": example.source,
            "output": output, "answer": answer, "gold": example.gold, "correct": correct}


def rescore(run_dir: str | Path, out_dir: str | Path, protocol: str) -> dict:
    """Judge a finished run's outputs again under `protocol`, without running the system: `out_dir` gets the same
    rows with `answer` and `correct` read under that protocol (every other field kept), its own run.json and the
    results files; returns the results. The outputs are the same text, so generation happens once for both
    protocols."""
    check_protocol(protocol)
    src, out = Path(run_dir), Path(out_dir)
    record = json.loads((src / RUN_RECORD).read_text(encoding="utf-8"))
    benchmark = record["benchmark"]
    task = get_task(benchmark)
    rows = []
    for row in load_predictions(src / PREDICTIONS):
        answer = extract_answer(benchmark, row["output"], protocol)
        correct = is_correct(benchmark, answer, row["gold"], protocol) if task.per_example else None
        rows.append(row | {"answer": answer, "correct": correct})
    out.mkdir(parents=True, exist_ok=True)
    (out / PREDICTIONS).unlink(missing_ok=True)  # written whole below: a rescore replaces, never appends
    _check_run_record(out, record | {"protocol": protocol})
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    (out / PREDICTIONS).write_text(text, encoding="utf-8")
    results = score_predictions(benchmark, rows, task.low_resource, protocol=protocol)
    results.update(system=record["system"], max_new_tokens=record["max_new_tokens"],
                   scoring=record.get("scoring", "generate"), lengths=record.get("lengths"),
                   dtype=record.get("dtype"))
    write_results(results, out)
    return results


def load_predictions(path: str | Path, repair: bool = False) -> list[dict]:
    """The rows of a predictions file ([] if absent). Rows are written whole, newline last, so only text after
    the last newline can be a line cut off by a kill: it is dropped (with repair=True also cut from the file, so
    that appending goes on cleanly). A bad line anywhere else is an error."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    *complete, tail = data.split(b"\n")
    rows = []
    for i, line in enumerate(complete):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {i + 1} is not valid JSON ({err})") from None
    if tail.strip():
        try:
            rows.append(json.loads(tail))  # a whole row that only lacks its newline (edited by hand): keep it
            fix = "newline"
        except json.JSONDecodeError:
            fix = "truncate"
        if repair:
            with open(path, "r+b") as f:
                if fix == "newline":
                    f.seek(0, 2)
                    f.write(b"\n")
                else:
                    f.truncate(len(data) - len(tail))
    return rows


def _check_run_record(out: Path, record: dict) -> None:
    """Refuse to resume a run of another benchmark, system, max_new_tokens, scoring, protocol or input lengths into
    the same directory."""
    path = out / RUN_RECORD
    if path.exists():
        # runs from before scoring and protocol existed were generated and lenient; their lengths and dtype unknown;
        # runs from before --zero-gates existed kept their gates
        old = {"scoring": "generate", "protocol": DEFAULT_PROTOCOL, "lengths": record["lengths"],
               "dtype": record.get("dtype"), "zero_gates": False} \
            | json.loads(path.read_text(encoding="utf-8"))
        diff = {k: (old.get(k), v) for k, v in record.items() if old.get(k) != v}
        if diff and (out / PREDICTIONS).exists():
            details = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
            raise ValueError(f"{out} holds another run ({details}); choose another --out or delete it")
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def cli_evaluate(args: Any) -> int:
    """`layalign evaluate`: read the benchmark, load the system, evaluate, print the table. Errors propagate to
    `layalign.cli.main`, which reports them."""
    from layalign.systems import load_system  # lazy: torch and transformers only once the data is read

    examples = get_task(args.benchmark).read(args.data, langs=args.langs, limit=args.limit,
                                             split=getattr(args, "split", None))
    if not any(examples.values()):
        raise ValueError(f"no {args.benchmark} examples found (data={args.data}, langs={args.langs})")
    # after the data: a bad path fails before a slow load
    # like the lengths, zero_gates is passed only when asked for
    zero_gates = {"zero_gates": True} if getattr(args, "zero_gates", False) else {}
    system = load_system(args.model, device=args.device, dtype=getattr(args, "dtype", None),
                         **length_overrides(args), **zero_gates)
    name = args.name or system.name
    out = Path(args.out) if args.out else Path("runs/eval") / f"{args.benchmark}-{_slug(name)}"
    results = evaluate(system, args.benchmark, examples, out, batch_size=args.batch_size,
                       max_new_tokens=args.max_new_tokens, name=name, scoring=args.scoring,
                       protocol=getattr(args, "protocol", DEFAULT_PROTOCOL))
    print(results_markdown(results))
    print(f"\nwritten to {out}/ ({PREDICTIONS}, {RESULTS_JSON}, {RESULTS_MD}, {RESULTS_CSV}, "
          f"{chart_name(args.benchmark)})")
    return 0


def system_dtype(system: System) -> str | None:
    """The dtype the system's LLM computes in ("float32", "bfloat16", ...), for the run's record; None when the
    system does not say (a stand-in system in tests)."""
    llm = getattr(system, "llm", None) or getattr(getattr(system, "model", None), "llm", None)
    dtype = getattr(llm, "dtype", None)
    return str(dtype).removeprefix("torch.") if dtype is not None else None


def length_overrides(args: Any) -> dict[str, int]:
    """The input lengths given on the command line (--max-source-length, --max-prompt-length), for load_system;
    the ones not given are left to the model's record or the defaults."""
    names = ("max_source_length", "max_prompt_length")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _slug(name: str) -> str:
    """A system name as a directory name ("llm:Qwen/Qwen3-0.6B" -> "llm_Qwen_Qwen3-0.6B")."""
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "system"
