"""One entry point for every benchmark: `read_benchmark(name, path, langs, limit, split)` -> {lang: examples}."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from layalign.data.examples import EvalExample
from layalign.data.io import PathLike
from layalign.data.layout import default_path
from layalign.data.maths import read_mgsm, read_msvamp
from layalign.data.parallel import read_translation_eval
from layalign.data.xcsqa import read_xcsqa_eval
from layalign.data.xnli import read_xnli_eval

_BENCHMARK_READERS: dict[str, Callable[..., dict[str, list[EvalExample]]]] = {
    "mgsm": read_mgsm,
    "msvamp": read_msvamp,
    "xcsqa": read_xcsqa_eval,
    "xnli": read_xnli_eval,
    "translation": read_translation_eval,
}


def read_benchmark(benchmark: str, path: PathLike | None = None, langs: Sequence[str] | None = None,
                   limit: int | None = None, split: str | None = None) -> dict[str, list[EvalExample]]:
    """{lang: examples} of a benchmark: "mgsm" | "msvamp" | "xcsqa" | "xnli" | "translation". `path` defaults to
    DEFAULT_PATHS; `limit` keeps the first N per language; `split` applies to xnli and xcsqa (default "dev")."""
    if benchmark not in _BENCHMARK_READERS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(_BENCHMARK_READERS)}")
    if split is not None and benchmark not in ("xnli", "xcsqa"):
        raise ValueError(f"{benchmark} has no splits to choose from")
    source = default_path(benchmark) if path is None else path
    kwargs = {"split": split} if split is not None else {}
    return _BENCHMARK_READERS[benchmark](source, langs=langs, limit=limit, **kwargs)
