"""Evaluation: run a benchmark per language, score it as the paper does, and report the results.

Modules:

- `run`: `evaluate()` (answering in batches, resuming a killed run, the run record), prediction rows,
  `load_predictions`, `rescore` (a run's outputs judged again under another protocol), and `layalign evaluate`.
- `scoring`: answer extraction and correctness per answer kind (`extract_answer`, `is_correct`,
  `translation_scores`), and per-language scores and averages (`score_predictions`).
- `report`: markdown tables, CSV, bar charts, a run's results files, `compare_runs` and `layalign compare`.
- `regression`: the regression subset a shipped model (`layalign.pretrained`) is checked on.
- `statistics`: seed summaries and the paired bootstrap over items of a comparison (numpy only).
- `divergence`: two choice-scoring runs of the same examples compared (accuracy difference, mean KL divergence of
  the answer distributions, changed predictions): the fusion branch's contribution, with `--zero-gates`.

A benchmark's facts (reader, languages, low-resource set, default data, generation length, choices, metrics,
answer kind) come from the registry in `layalign.tasks`.
"""

from layalign.evaluation.report import compare_runs, load_results, markdown_table, results_markdown, write_results
from layalign.evaluation.run import System, evaluate, load_predictions, prediction_row, rescore
from layalign.evaluation.scoring import extract_answer, is_correct, score_predictions, translation_scores

__all__ = [
    "System",
    "compare_runs",
    "evaluate",
    "extract_answer",
    "is_correct",
    "load_predictions",
    "load_results",
    "markdown_table",
    "prediction_row",
    "rescore",
    "results_markdown",
    "score_predictions",
    "translation_scores",
    "write_results",
]
