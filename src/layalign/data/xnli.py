"""XNLI: training rows (JSONL) and the evaluation sets (XTREME TSV or JSONL, one file per language).
source = prompt = the filled XNLI template in language X; target / gold = the label word."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from layalign.data.examples import EvalExample, TrainExample
from layalign.data.io import DataFormatError, PathLike, _get, _jsonl_records, _take, _text, _tsv_rows
from layalign.data.languages import normalize_lang
from layalign.data.layout import _files_by_lang, _select
from layalign.data.prompts import xnli_label_word, xnli_prompt


def _xnli_label(raw: Any, path: PathLike, line: int) -> str:
    try:
        return xnli_label_word(raw)
    except ValueError as e:
        raise DataFormatError(path, line, str(e)) from None


def _xnli_json_row(record: dict, path: PathLike, line: int) -> tuple[str, str, str]:
    premise = _text(_get(record, ("premise", "sentence1"), path, line), path, line, "premise")
    hypothesis = _text(_get(record, ("hypothesis", "sentence2"), path, line), path, line, "hypothesis")
    return premise, hypothesis, _xnli_label(_get(record, ("label", "gold_label"), path, line), path, line)


def _xnli_tsv_row(cells: list[str], path: PathLike, line: int) -> tuple[str, str, str]:
    premise = _text(cells[0], path, line, "premise")
    hypothesis = _text(cells[1], path, line, "hypothesis")
    return premise, hypothesis, _xnli_label(cells[2], path, line)


def read_xnli_train_jsonl(path: PathLike, lang: str, limit: int | None = None) -> list[TrainExample]:
    """XNLI training rows {"premise","hypothesis","label"} (label 0/1/2 = entailment/neutral/contradiction, or the
    word): source = prompt = the filled XNLI template, target = the label word."""
    code = normalize_lang(lang)
    examples = []
    for n, record in _jsonl_records(path):
        premise, hypothesis, label = _xnli_json_row(record, path, n)
        text = xnli_prompt(premise, hypothesis)
        examples.append(TrainExample(source=text, target=label, prompt=text, lang=code))
    return _take(examples, limit)


def _xnli_rows(path: Path) -> Iterator[tuple[int, tuple[str, str, str], dict]]:
    """(line, (premise, hypothesis, label word), record) of an XNLI TSV or JSONL file."""
    if path.suffix == ".tsv":
        for n, cells in _tsv_rows(path, 3, "premise, hypothesis, label"):
            yield n, _xnli_tsv_row(cells, path, n), {}
    else:
        for n, record in _jsonl_records(path):
            yield n, _xnli_json_row(record, path, n), record


def read_xnli_eval(dir_or_file: PathLike, split: str = "dev", langs: Sequence[str] | None = None,
                   limit: int | None = None) -> dict[str, list[EvalExample]]:
    """XNLI: `{split}-xx.tsv` (XTREME: premise<TAB>hypothesis<TAB>label word, no header) or `{split}-xx.jsonl`
    ({"premise","hypothesis","label"}), in `dir_or_file`, its `{split}/` subfolder, or given as one file.
    The paper reports the test split; this copy ships dev only. Gold = the label word."""
    base = Path(dir_or_file)
    if base.is_dir() and (base / split).is_dir():
        base = base / split
    prefix = "[A-Za-z]+" if base.is_file() else re.escape(split)  # a file given by name may be of any split
    files = _files_by_lang(base, rf"{prefix}-(?P<lang>[A-Za-z_-]+)\.(?:tsv|jsonl)", f"{split}-xx.tsv")
    out = {}
    for lang, path in _select(files, langs, "xnli", base):
        examples = []
        for _, (premise, hypothesis, label), _ in _xnli_rows(path):
            text = xnli_prompt(premise, hypothesis)
            examples.append(EvalExample(id=f"xnli-{lang}-{len(examples)}", lang=lang, source=text, gold=label,
                                        prompt=text, meta={"premise": premise, "hypothesis": hypothesis}))
        out[lang] = _take(examples, limit)
    return out
