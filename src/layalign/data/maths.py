"""Maths data. Training: English GSM8K, QAlign's translated GSM8K questions joined to their answers, MindMerger's
translated MetaMathQA. Benchmarks: MGSM and MSVAMP (gold = the number in plain form, see numbers.canonical_number).

Math task stage: source = X question, prompt = math template around it, target = English chain of thought.
GSM8K answers are rendered MetaMath-style (`render_gsm8k_answer`): calculator annotations `<<48/2=24>>` removed and
the final `#### 72` line replaced by "The answer is: 72" (thousands commas dropped from that number), which is how
MetaMathQA answers - and so the answers MetaMath-7B was trained to write - end.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from layalign.data.examples import EvalExample, TrainExample
from layalign.data.io import (
    DataFormatError,
    PathLike,
    _get,
    _json_records,
    _jsonl_records,
    _require_dir,
    _take,
    _text,
    _tsv_rows,
)
from layalign.data.languages import normalize_lang
from layalign.data.layout import _files_by_lang, _select
from layalign.data.numbers import canonical_number
from layalign.data.parallel import read_parallel_files
from layalign.data.prompts import math_prompt

logger = logging.getLogger(__name__)

# --- training data -----------------------------------------------------------------------------------------------

_CALCULATOR = re.compile(r"<<[^<>]*>>")


def render_gsm8k_answer(answer: str) -> str:
    """A GSM8K answer as the LLM target: `<<...>>` calculator annotations removed and the final `#### n` line
    replaced by "The answer is: n" (MetaMath style; commas dropped from n)."""
    body, sep, final = answer.rpartition("####")
    if not sep:
        raise ValueError("GSM8K answer has no final '#### n' line")
    number = canonical_number(final)
    body = _CALCULATOR.sub("", body).strip()
    return f"{body}\nThe answer is: {number}" if body else f"The answer is: {number}"


def _gsm8k_rows(path: PathLike) -> Iterator[tuple[int, str, str]]:
    """(line, question, rendered answer) of a GSM8K JSONL file."""
    for n, record in _jsonl_records(path):
        question = _text(_get(record, "question", path, n), path, n, "question")
        answer = _text(_get(record, "answer", path, n), path, n, "answer")
        try:
            yield n, question, render_gsm8k_answer(answer)
        except ValueError as e:
            raise DataFormatError(path, n, str(e)) from None


def read_gsm8k_english(path: PathLike, limit: int | None = None, with_prompt: bool = False) -> list[TrainExample]:
    """English GSM8K as task data (the LangBridge variant: English-only, no LLM prompt unless `with_prompt`)."""
    examples = [
        TrainExample(source=q, target=a, prompt=math_prompt(q) if with_prompt else None, lang="en")
        for _, q, a in _gsm8k_rows(path)
    ]
    return _take(examples, limit)


def _norm_ws(text: str) -> str:
    # str.split() also splits at U+2028, which one GSM8K question contains where QAlign's copy has a space
    return " ".join(text.split())


def _qalign_root(math_train_dir: PathLike) -> Path:
    base = _require_dir(math_train_dir)
    sub = base / "qalign_question_translation"
    return sub if sub.is_dir() else base


def read_qalign_math(math_train_dir: PathLike, gsm8k_train_path: PathLike, langs: Sequence[str] | None = None,
                     limit: int | None = None, stats: dict[str, dict[str, int]] | None = None) -> list[TrainExample]:
    """Math task-stage data: QAlign's translated GSM8K questions (`{l}-en/train.{l}` line-aligned with
    `{l}-en/train.en`) joined to their GSM8K train answers by the English question (whitespace-normalised).
    `math_train_dir` is the folder holding qalign_question_translation/ (or that folder). Unjoined questions are
    dropped and logged; pass a dict as `stats` to receive {lang: {"pairs": n, "joined": k}}. `limit` is per
    language (the recipe uses up to 30k)."""
    root = _qalign_root(math_train_dir)
    answers = {}
    for _, question, answer in _gsm8k_rows(gsm8k_train_path):
        answers.setdefault(_norm_ws(question), answer)
    if langs is None:
        langs = sorted(d.name[:-len("-en")] for d in root.glob("*-en") if d.is_dir())
    out: list[TrainExample] = []
    for lang in langs:
        code = normalize_lang(lang)
        folder = root / f"{code}-en"
        pairs = read_parallel_files(folder / f"train.{code}", folder / "train.en", code)
        joined = [
            TrainExample(source=p.source, target=answers[_norm_ws(p.target)], prompt=math_prompt(p.source), lang=code)
            for p in pairs if _norm_ws(p.target) in answers
        ]
        if stats is not None:
            stats[code] = {"pairs": len(pairs), "joined": len(joined)}
        level = logging.WARNING if len(joined) < len(pairs) else logging.INFO
        logger.log(level, "qalign math %s: %d of %d questions joined to GSM8K answers", code, len(joined), len(pairs))
        out += _take(joined, limit)
    return out


_METAMATH_QUERY = ("query", "question", "instruction", "input")
_METAMATH_RESPONSE = ("response", "answer", "output")
_METAMATH_LANG = ("lang", "language", "source_language")


def read_metamath_json(path: PathLike, langs: Sequence[str] | None = None, limit_per_lang: int | None = None,
                       default_lang: str | None = None) -> list[TrainExample]:
    """MindMerger's question-translated MetaMathQA (`metamath_615k.json`): a JSON list (or JSONL) of records with the
    X-language question, the English MetaMath answer and the language, under "query"/"response"/"lang" (also
    accepted: question|instruction|input, answer|output, language|source_language). Languages may be names
    ("Bengali") or codes. A file without a language field (plain MetaMathQA) needs `default_lang`. The first
    `limit_per_lang` records of each language are kept, like the release's train_num."""
    wanted = None if langs is None else {normalize_lang(lang) for lang in langs}
    counts: dict[str, int] = {}
    out: list[TrainExample] = []
    for n, record in _json_records(path):
        lang = _metamath_lang(record, path, n, default_lang)
        if (wanted is not None and lang not in wanted) or counts.get(lang, 0) == limit_per_lang:
            continue
        query = _text(_get(record, _METAMATH_QUERY, path, n), path, n, "query")
        response = _text(_get(record, _METAMATH_RESPONSE, path, n), path, n, "response")
        out.append(TrainExample(source=query, target=response, prompt=math_prompt(query), lang=lang))
        counts[lang] = counts.get(lang, 0) + 1
    return out


def _metamath_lang(record: dict, path: PathLike, line: int, default_lang: str | None) -> str:
    raw = next((record[k] for k in _METAMATH_LANG if k in record), default_lang)
    if raw is None:
        raise DataFormatError(path, line, f"missing language key ({' or '.join(_METAMATH_LANG)}); pass default_lang "
                                          "for a single-language file")
    try:
        return normalize_lang(raw)
    except ValueError as e:
        raise DataFormatError(path, line, str(e)) from None


# --- benchmarks --------------------------------------------------------------------------------------------------


def read_mgsm(dir_or_file: PathLike, langs: Sequence[str] | None = None, limit: int | None = None
              ) -> dict[str, list[EvalExample]]:
    """MGSM: `mgsm_xx.tsv` files, `question<TAB>answer`, no header. Gold = the number without thousands commas."""
    files = _files_by_lang(dir_or_file, r"mgsm_(?P<lang>[A-Za-z_-]+)\.tsv", "mgsm_xx.tsv")
    out = {}
    for lang, path in _select(files, langs, "mgsm", dir_or_file):
        examples = []
        for n, (question, answer) in _tsv_rows(path, 2, "question, answer"):
            question = _text(question, path, n, "question")
            gold = _number(answer, path, n)
            examples.append(EvalExample(id=f"mgsm-{lang}-{len(examples)}", lang=lang, source=question, gold=gold,
                                        prompt=math_prompt(question)))
        out[lang] = _take(examples, limit)
    return out


def _number(raw: Any, path: PathLike, line: int) -> str:
    try:
        return canonical_number(str(raw))
    except ValueError as e:
        raise DataFormatError(path, line, f"gold answer: {e}") from None


def read_msvamp(dir_or_file: PathLike, langs: Sequence[str] | None = None, limit: int | None = None
                ) -> dict[str, list[EvalExample]]:
    """MSVAMP: `test_{Language}.json` (JSONL despite the suffix; .jsonl accepted) with "m_query" (the question in
    that language) and "response" (e.g. "8.0"). Gold = the number in plain form ("8")."""
    files = _files_by_lang(dir_or_file, r"test_(?P<lang>[A-Za-z_-]+)\.jsonl?", "test_Swahili.json")
    out = {}
    for lang, path in _select(files, langs, "msvamp", dir_or_file):
        examples = []
        for n, record in _json_records(path):
            question = _text(_get(record, "m_query", path, n), path, n, "m_query")
            gold = _number(_get(record, "response", path, n), path, n)
            meta = {k: record[k] for k in ("equation", "query") if k in record}
            examples.append(EvalExample(id=f"msvamp-{lang}-{len(examples)}", lang=lang, source=question, gold=gold,
                                        prompt=math_prompt(question), meta=meta))
        out[lang] = _take(examples, limit)
    return out
