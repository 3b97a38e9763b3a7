"""The regression check of a shipped model (`layalign.pretrained`): its choice scores on a fixed subset of its
benchmark's dev set.

`regression.json` beside a shipped model records what `regression_rows` gave when it was shipped (and on which
benchmark); tests/test_pretrained.py recomputes them, so a change that alters the model's numerics fails the suite.
Locating the model is a path lookup (`layalign.pretrained`); checking it is an evaluation, so it lives here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from layalign.evaluation.run import evaluate, load_predictions
from layalign.tasks import get_task

# the fixed regression subset of each benchmark: two languages the task stage trained on and two it never saw
REGRESSION_LANGS = {
    "xnli": ("en", "zh", "sw", "ur"),
    "sib200": ("eng_Latn", "zho_Hans", "hau_Latn", "amh_Ethi"),
}
REGRESSION_ROWS = 50


def regression_rows(system: Any, data: str | Path, langs: tuple[str, ...] | None = None,
                    limit: int = REGRESSION_ROWS, batch_size: int = 8, benchmark: str = "xnli") -> dict[str, Any]:
    """Choice-score the regression subset of `benchmark`'s dev set in `data` (the first `limit` rows of each
    language; default languages: REGRESSION_LANGS): every row's choice log-likelihoods and pick, and the accuracy per
    language and on average. What `regression.json` records and what the test compares against it."""
    if langs is None:
        if benchmark not in REGRESSION_LANGS:
            raise ValueError(f"no regression subset for {benchmark}; pass langs (known: {', '.join(REGRESSION_LANGS)})")
        langs = REGRESSION_LANGS[benchmark]
    examples = get_task(benchmark).read(data, langs=list(langs), limit=limit)
    missing = [lang for lang in langs if len(examples.get(lang, [])) < limit]
    if missing:
        raise ValueError(f"{data}: fewer than {limit} {benchmark} dev rows for {', '.join(missing)}")
    with tempfile.TemporaryDirectory() as tmp:
        results = evaluate(system, benchmark, examples, tmp, batch_size=batch_size, scoring="choices",
                           progress=False)
        rows = [{"lang": r["lang"], "id": r["id"], "output": r["output"], "correct": r["correct"],
                 "choice_logprobs": r["choice_logprobs"]} for r in load_predictions(Path(tmp) / "predictions.jsonl")]
    order = {(ex.lang, ex.id): i for i, ex in enumerate(ex for found in examples.values() for ex in found)}
    rows.sort(key=lambda r: order[r["lang"], r["id"]])  # file order (choice scoring runs longest first)
    accuracy = {lang: s["accuracy"] for lang, s in results["per_language"].items()}
    return {"benchmark": benchmark, "langs": list(langs), "rows_per_language": limit, "scoring": "choices",
            "batch_size": batch_size, "dtype": results.get("dtype"), "lengths": results.get("lengths"),
            "accuracy": accuracy, "average": results["average"]["accuracy"], "rows": rows}
