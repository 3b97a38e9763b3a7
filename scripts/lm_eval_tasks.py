"""Write the lm-evaluation-harness task files of src/layalign/integrations/lm_eval_tasks from the benchmark registry:
per benchmark a group (`layalign_{benchmark}`, generated answers) and, for benchmarks with fixed choices, a choice
group (`layalign_{benchmark}_ll`), each with one file per language that includes the hand-written
`_{benchmark}[_ll]_template`. Run it after adding a benchmark or a language; `--check` only reports files that
differ (tests/test_lm_eval.py checks the same).

    python scripts/lm_eval_tasks.py            # write
    python scripts/lm_eval_tasks.py --check    # exit 1 if a file is missing or stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from layalign.integrations.lm_eval import tasks_dir
from layalign.tasks import TASKS, Task

HEADER = "aggregate_metric_list:\n"
METRIC = "  - metric: {name}\n    aggregation: mean\n    weight_by_size: false\n"


def task_files(task: Task) -> dict[str, str]:
    """File name -> text for one benchmark's groups and per-language tasks."""
    variants = ["", "_ll"] if task.choices is not None else [""]
    files = {}
    for variant in variants:
        prefix = f"layalign_{task.name}{variant}"
        metrics = ["acc"] if variant else ["acc", "acc_paper"]  # choice scoring has no protocol to vary
        files[f"{prefix}.yaml"] = (f"group: {prefix}\ntask:\n"
                                   + "".join(f"  - {prefix}_{lang}\n" for lang in task.languages)
                                   + HEADER + "".join(METRIC.format(name=m) for m in metrics)
                                   + "metadata:\n  version: 1.0\n")
        for lang in task.languages:
            files[f"{prefix}_{lang}.yaml"] = (f"include: _{task.name}{variant}_template\ntask: {prefix}_{lang}\n"
                                              f"dataset_kwargs:\n  benchmark: {task.name}\n  lang: {lang}\n")
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file differs")
    args = parser.parse_args()
    folder = tasks_dir()
    stale = []
    for task in TASKS.values():
        if not task.per_example:  # translation is scored over the corpus: no lm-eval task
            continue
        for name, text in task_files(task).items():
            path = folder / name
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
                if not args.check:
                    path.write_text(text, encoding="utf-8")
    verb = "differ" if args.check else "written"
    listed = f": {', '.join(stale[:8])} ..." if stale else ""
    print(f"{len(stale)} task files {verb} in {Path(folder).name}/{listed}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
