"""X-CSQA in X-CSR format: training rows and the evaluation sets (`xx/{split}.jsonl` or `{split}-xx.jsonl`).
source = prompt = the filled X-CSQA template in language X; target / gold = the choice letter."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from layalign.data.examples import EvalExample, TrainExample
from layalign.data.io import DataFormatError, PathLike, _get, _jsonl_records, _require_dir, _take, _text
from layalign.data.languages import _is_known_lang, normalize_lang
from layalign.data.layout import _files_by_lang, _select
from layalign.data.prompts import xcsqa_prompt


def _xcsqa_row(record: dict, path: PathLike, line: int) -> tuple[str, str, dict]:
    """(formatted prompt, gold letter, meta) of an X-CSR record. The gold letter is the position letter of the
    choice whose label is answerKey, so it matches the letters the prompt shows."""
    question = _get(record, "question", path, line)
    if not isinstance(question, dict):
        raise DataFormatError(path, line, "'question' must be an object with 'stem' and 'choices'")
    stem = _text(_get(question, "stem", path, line), path, line, "question stem")
    choices = _get(question, "choices", path, line)
    if not isinstance(choices, list) or not choices:
        raise DataFormatError(path, line, "'choices' must be a non-empty list")
    labels, texts = [], []
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise DataFormatError(path, line, f"choice {i + 1} must be an object with 'label' and 'text'")
        labels.append(str(_get(choice, "label", path, line)).strip())
        texts.append(_text(_get(choice, "text", path, line), path, line, f"text of choice {i + 1}"))
    key = str(_get(record, "answerKey", path, line)).strip()
    if key not in labels:
        raise DataFormatError(path, line, f"answerKey {key!r} is not one of the choice labels {', '.join(labels)}")
    letter = chr(ord("A") + labels.index(key))
    return xcsqa_prompt(stem, texts), letter, {"choices": texts}


def read_xcsqa_jsonl(path: PathLike, lang: str, limit: int | None = None) -> list[TrainExample]:
    """X-CSQA rows in X-CSR format ({"id", "question": {"stem", "choices": [{"label","text"}...]}, "answerKey"}):
    source = prompt = the filled X-CSQA template, target = the choice letter."""
    code = normalize_lang(lang)
    examples = []
    for n, record in _jsonl_records(path):
        text, letter, _ = _xcsqa_row(record, path, n)
        examples.append(TrainExample(source=text, target=letter, prompt=text, lang=code))
    return _take(examples, limit)


def _xcsqa_files(path: PathLike, split: str) -> dict[str, Path]:
    """X-CSR layouts: `{lang}/{split}.jsonl` (as in X-CSR_datasets/X-CSQA) or `{split}-{lang}.jsonl`."""
    p = Path(path)
    if p.is_file():
        m = re.fullmatch(r"[A-Za-z]+-(?P<lang>[A-Za-z_-]+)\.jsonl", p.name)
        lang = m["lang"] if m else p.parent.name
        if not _is_known_lang(lang):
            raise ValueError(f"cannot tell the language of {p}: expected {split}-xx.jsonl or xx/{split}.jsonl")
        return {normalize_lang(lang): p}
    found = _files_by_lang(p, rf"{re.escape(split)}-(?P<lang>[A-Za-z_-]+)\.jsonl", f"{split}-xx.jsonl")
    for sub in sorted(_require_dir(p).iterdir()):
        if (sub / f"{split}.jsonl").is_file() and _is_known_lang(sub.name):
            code = normalize_lang(sub.name)
            if code in found:
                raise ValueError(f"two X-CSQA {split} files for {code!r}: {found[code]} and {sub / f'{split}.jsonl'}")
            found[code] = sub / f"{split}.jsonl"
    return found


def read_xcsqa_eval(path_or_dir: PathLike, split: str = "dev", langs: Sequence[str] | None = None,
                    limit: int | None = None) -> dict[str, list[EvalExample]]:
    """X-CSQA (X-CSR format, see read_xcsqa_jsonl), per-language files `xx/{split}.jsonl` or `{split}-xx.jsonl`
    (X-CSR names Japanese "jap"). Gold = the choice letter; the X-CSR public test split has no answerKey."""
    out = {}
    for lang, path in _select(_xcsqa_files(path_or_dir, split), langs, "xcsqa", path_or_dir):
        examples = []
        for n, record in _jsonl_records(path):
            text, letter, meta = _xcsqa_row(record, path, n)
            qid = str(record.get("id") or f"xcsqa-{lang}-{len(examples)}")
            examples.append(EvalExample(id=qid, lang=lang, source=text, gold=letter, prompt=text, meta=meta))
        out[lang] = _take(examples, limit)
    return out
