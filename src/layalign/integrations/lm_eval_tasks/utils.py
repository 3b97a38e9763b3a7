"""Functions the task YAMLs of this folder name with `!function utils.NAME` (lm_eval loads this file by path).

Documents come from this library's readers (`layalign.tasks`), so prompts, sources and gold answers are those of
`layalign evaluate`, and answers are read and judged by `layalign.evaluation.scoring` under both protocols (`acc`:
lenient, `acc_paper`: the authors' code).

Data: `{benchmark}_data` in lm_eval's metadata (`--metadata '{"xcsqa_data": "/data/X-CSQA"}'`,
`TaskManager(metadata=...)`), else the environment variable `LAYALIGN_{BENCHMARK}_DATA`, else the registry's copy in
../shared/data relative to the current directory. `{benchmark}_split` (metadata) picks the XNLI / X-CSQA / SIB-200
split (default dev, the split this project's copy has).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import datasets

from layalign.evaluation.scoring import extract_answer, is_correct
from layalign.tasks import get_task


def load_benchmark(benchmark: str, lang: str, split: str | None = None, **metadata: Any) -> datasets.DatasetDict:
    """One language of a benchmark as lm_eval's dataset (split "test"): id, lang, source, prompt, gold."""
    task = get_task(benchmark)
    variable = f"LAYALIGN_{benchmark.upper()}_DATA"
    path = metadata.get(f"{benchmark}_data") or os.environ.get(variable)
    split = metadata.get(f"{benchmark}_split") or split
    if path is None:
        try:
            path = task.default_data()
        except (FileNotFoundError, ValueError) as err:
            # the registry's hint says `--data` (layalign evaluate's flag); here the ways in are lm_eval's
            default = (f"the default copy {task.data_path} is not there, relative to {Path.cwd()}" if task.data_path
                       else "this benchmark has no default copy")
            raise FileNotFoundError(f"no {benchmark} data: pass --metadata '{{\"{benchmark}_data\": \"DIR\"}}' or "
                                    f"set {variable}=DIR ({default})") from err
    elif not Path(path).exists():
        source = f"--metadata {benchmark}_data" if metadata.get(f"{benchmark}_data") else variable
        raise FileNotFoundError(f"{benchmark} data {path} (from {source}) not found")
    examples = task.read(path, langs=[lang], split=split if task.splits else None)[lang]
    rows = [{"id": ex.id, "lang": ex.lang, "source": ex.source, "prompt": ex.prompt, "gold": ex.gold}
            for ex in examples]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def _scorer(benchmark: str):
    def process_results(doc: dict, results: list[str]) -> dict[str, float]:
        output = results[0]
        return {name: float(is_correct(benchmark, extract_answer(benchmark, output, protocol), doc["gold"], protocol))
                for name, protocol in (("acc", "lenient"), ("acc_paper", "paper"))}

    return process_results


process_mgsm = _scorer("mgsm")
process_msvamp = _scorer("msvamp")
process_xnli = _scorer("xnli")
process_xcsqa = _scorer("xcsqa")
process_sib200 = _scorer("sib200")
