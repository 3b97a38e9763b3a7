"""File access shared by every reader: the file:line error, checked line iteration, JSONL / JSON-array / TSV
records, text cleaning, and small list helpers (`_take`, `split_dev`).

Every reader checks its rows: a malformed one raises DataFormatError naming the file and the 1-based line number;
a missing file raises FileNotFoundError naming the path. Blank lines in JSONL and TSV files are skipped (a trailing
one is common); in line-aligned plain-text files an empty line is an error, since it would pair text with nothing.
Text is stripped and C0/C1 control characters other than tab and newline are removed (one en-fr pair file carries
NUL and ETX bytes). Lines are split only at \\n (a \\r before it is dropped): U+2028 occurs inside GSM8K questions
and the en-fr pairs, and `str.splitlines` would break the alignment there.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

PathLike = str | os.PathLike
T = TypeVar("T")


class DataFormatError(ValueError):
    """A malformed row; the message names the file and the 1-based line number."""

    def __init__(self, path: PathLike, line: int, message: str) -> None:
        self.path = Path(path)
        self.line = line
        super().__init__(f"{path}, line {line}: {message}")


def _require_file(path: PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"expected a file, found a directory: {p}")
    if not p.is_file():
        raise FileNotFoundError(f"file not found: {p}")
    return p


def _require_dir(path: PathLike) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"directory not found: {p}")
    return p


def _lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its line break). Read as bytes and split at b"\\n" only, so that the line
    numbers of decoding errors are exact and U+2028 inside a line never splits it."""
    p = _require_file(path)
    with p.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataFormatError(p, n, f"not valid UTF-8 ({e.reason} at byte {e.start + 1})") from None
            if n == 1:
                line = line.removeprefix("\ufeff")  # byte-order mark
            yield n, line.rstrip("\r\n")


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0/C1 controls except tab and newline


def _clean(text: str) -> str:
    return _CONTROL.sub("", text).strip()


def _text(value: Any, path: PathLike, line: int, what: str) -> str:
    """A non-empty cleaned string, or a DataFormatError."""
    if not isinstance(value, str):
        raise DataFormatError(path, line, f"{what} must be a string, got {type(value).__name__}")
    text = _clean(value)
    if not text:
        raise DataFormatError(path, line, f"empty {what}")
    return text


def _get(record: dict, keys: str | Sequence[str], path: PathLike, line: int) -> Any:
    """The value of the first of `keys` present in `record`."""
    names = (keys,) if isinstance(keys, str) else tuple(keys)
    for key in names:
        if key in record:
            return record[key]
    wanted = " or ".join(repr(k) for k in names)
    raise DataFormatError(path, line, f"missing key {wanted} (keys present: {', '.join(map(repr, record)) or 'none'})")


def _jsonl_records(path: PathLike) -> Iterator[tuple[int, dict]]:
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(path, n, f"invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise DataFormatError(path, n, f"expected a JSON object, got {type(record).__name__}")
        yield n, record


def _json_array_records(path: PathLike, text: str) -> Iterator[tuple[int, dict]]:
    """Records of a JSON array file with the line each starts on (json.load would lose the positions)."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, text.index("[") + 1).end()
    line, counted = 1, 0
    if text.startswith("]", pos):
        return
    while True:
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataFormatError(path, e.lineno, f"invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise DataFormatError(path, line, f"expected a JSON object, got {type(record).__name__}")
        yield line, record
        pos = ws.match(text, pos).end()
        if text.startswith(",", pos):
            pos = ws.match(text, pos + 1).end()
        elif text.startswith("]", pos):
            return
        else:
            bad_line = line + text.count("\n", counted, pos)
            raise DataFormatError(path, bad_line, "invalid JSON (expected ',' or ']' between records)")


def _json_records(path: PathLike) -> Iterator[tuple[int, dict]]:
    """Records of a JSON-array file or a JSONL file (whatever the suffix says: MSVAMP's .json files are JSONL)."""
    p = _require_file(path)
    with p.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        data = p.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataFormatError(p, data.count(b"\n", 0, e.start) + 1, f"not valid UTF-8 ({e.reason})") from None
        yield from _json_array_records(p, text)
    else:
        yield from _jsonl_records(p)


def _tsv_rows(path: PathLike, columns: int, layout: str) -> Iterator[tuple[int, list[str]]]:
    for n, line in _lines(path):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != columns:
            raise DataFormatError(path, n, f"expected {columns} tab-separated columns ({layout}), found {len(cells)}")
        yield n, cells


def _plain_lines(path: PathLike) -> list[str]:
    """Every line of a line-aligned text file, cleaned; an empty line is an error."""
    out = []
    for n, line in _lines(path):
        out.append(_text(line, path, n, "line"))
    return out


def _take(items: list[T], limit: int | None) -> list[T]:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return items if limit is None else items[:limit]


def split_dev(examples: Sequence[T], n_dev: int, seed: int = 0) -> tuple[list[T], list[T]]:
    """(train, dev): `n_dev` examples drawn at random (reproducibly from `seed`) as dev, the rest as train. Both keep
    the original order. The recipe holds out 3,000 translation pairs to pick the checkpoint by dev perplexity."""
    if not 0 <= n_dev <= len(examples):
        raise ValueError(f"n_dev must be between 0 and {len(examples)} (the number of examples), got {n_dev}")
    dev_index = set(random.Random(seed).sample(range(len(examples)), n_dev))
    train = [e for i, e in enumerate(examples) if i not in dev_index]
    dev = [e for i, e in enumerate(examples) if i in dev_index]
    return train, dev
