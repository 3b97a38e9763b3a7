"""How two choice-scoring runs of the same examples differ: the accuracy difference, the mean KL divergence of
their answer distributions and the number of changed predictions.

Made for the fusion branch's contribution (`layalign evaluate --zero-gates` against the same model with its
gates; `layalign.inspection.write_diagnostics`), but it holds for any two runs of one benchmark scored by choices.
An answer distribution is the softmax over the choices' log-likelihoods of one example (predictions.jsonl's
`choice_logprobs`): the model's preference among the allowed answers, renormalised over them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from layalign.evaluation.run import PREDICTIONS, RUN_RECORD, load_predictions
from layalign.evaluation.scoring import row_key


def answer_distribution(logprobs: dict[str, float]) -> dict[str, float]:
    """softmax over the choices' log-likelihoods (shifted by the largest: no overflow, same result)."""
    top = max(logprobs.values())
    weights = {choice: math.exp(value - top) for choice, value in logprobs.items()}
    total = sum(weights.values())
    return {choice: weight / total for choice, weight in weights.items()}


def kl_divergence(p_logprobs: dict[str, float], q_logprobs: dict[str, float]) -> float:
    """KL(p || q) in nats between the answer distributions of two rows' choice log-likelihoods (the same
    choices): sum_c p(c) (log p(c) - log q(c)), computed from log-softmax values so no probability underflows."""
    if set(p_logprobs) != set(q_logprobs):
        raise ValueError(f"the two rows score different choices: {sorted(p_logprobs)} and {sorted(q_logprobs)}")
    log_p, log_q = _log_softmax(p_logprobs), _log_softmax(q_logprobs)
    return sum(math.exp(log_p[c]) * (log_p[c] - log_q[c]) for c in log_p)


def _log_softmax(logprobs: dict[str, float]) -> dict[str, float]:
    top = max(logprobs.values())
    norm = top + math.log(sum(math.exp(v - top) for v in logprobs.values()))
    return {choice: value - norm for choice, value in logprobs.items()}


def compare_choice_runs(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """Run b against run a over run b's examples, every one of which run a must hold (matched by language and id;
    a run b cut short compares on the rows it has, and says how many): {"scoring": "choices", "rows",
    "accuracy_with_gates" (a's, in %), "accuracy_zero_gates" (b's), "accuracy_diff" (a - b, points), "mean_kl"
    (mean over rows of KL(a || b), nats), "changed" (rows whose prediction differs)}. The names read a as the model
    with its gates and b as the same model with every gate at zero. A ValueError names the folder, and the row,
    that cannot be compared."""
    rows_a, rows_b = (_choice_rows(Path(run)) for run in (run_a, run_b))
    missing = set(rows_b) - set(rows_a)
    if missing:
        lang, example = min(missing)
        raise ValueError(f"{run_b} holds {len(missing)} examples that {run_a} does not (e.g. {lang} {example}): "
                         "evaluate both on the same languages and --limit")
    if not rows_b:
        raise ValueError(f"{run_b} holds no predictions")
    keys = sorted(rows_b)
    correct_a = sum(bool(rows_a[k]["correct"]) for k in keys)
    correct_b = sum(bool(rows_b[k]["correct"]) for k in keys)
    kl = sum(kl_divergence(rows_a[k]["choice_logprobs"], rows_b[k]["choice_logprobs"]) for k in keys)
    n = len(keys)
    return {"scoring": "choices", "rows": n, "accuracy_with_gates": 100.0 * correct_a / n,
            "accuracy_zero_gates": 100.0 * correct_b / n, "accuracy_diff": 100.0 * (correct_a - correct_b) / n,
            "mean_kl": kl / n, "changed": sum(rows_a[k]["output"] != rows_b[k]["output"] for k in keys)}


def _choice_rows(run: Path) -> dict[tuple[str, str], dict]:
    """A choice-scoring run's rows by (lang, id); ValueError for another scoring or a row without log-likelihoods."""
    record_path = run / RUN_RECORD
    if not record_path.is_file():
        raise ValueError(f"{run} is not an evaluation folder (no {RUN_RECORD})")
    scoring = json.loads(record_path.read_text(encoding="utf-8")).get("scoring", "generate")
    if scoring != "choices":
        raise ValueError(f"{run} was scored by {scoring!r}; comparing answer distributions needs choice scoring")
    rows = {}
    for number, row in enumerate(load_predictions(run / PREDICTIONS), start=1):
        if not isinstance(row.get("choice_logprobs"), dict) or not row["choice_logprobs"]:
            raise ValueError(f"{run / PREDICTIONS}: row {number} has no choice_logprobs")
        rows[row_key(row)] = row
    return rows
