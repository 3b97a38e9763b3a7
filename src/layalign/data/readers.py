"""Readers for the training sets and benchmarks, each returning the shared record types.

Roles (see examples.py): `source` is what the multilingual encoder reads, `prompt` the LLM prompt (None in the
translation stage and for LangBridge), `target`/`gold` the English answer.

- Translation stage: source = X sentence, target = English sentence, prompt = None.
- Math task stage: source = X question, prompt = math template around it, target = English chain of thought.
  GSM8K answers are rendered MetaMath-style (`render_gsm8k_answer`): calculator annotations `<<48/2=24>>` removed and
  the final `#### 72` line replaced by "The answer is: 72" (thousands commas dropped from that number), which is
  how MetaMathQA answers - and so the answers MetaMath-7B was trained to write - end.
- X-CSQA / XNLI: source = prompt = the whole formatted prompt in language X; target = choice letter / label word.

Every reader checks its rows: a malformed one raises DataFormatError naming the file and the 1-based line number;
a missing file raises FileNotFoundError naming the path. Blank lines in JSONL and TSV files are skipped (a trailing
one is common); in line-aligned plain-text files an empty line is an error, since it would pair text with nothing.
Text is stripped and C0/C1 control characters other than tab and newline are removed (one en-fr pair file carries
NUL and ETX bytes). Lines are split only at \\n (a \\r before it is dropped): U+2028 occurs inside GSM8K questions
and the en-fr pairs, and `str.splitlines` would break the alignment there.

Languages are ISO 639-1 codes everywhere (`normalize_lang` maps Tatoeba/NTREX/FLORES codes and full names).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from layalign.data.examples import EvalExample, TrainExample
from layalign.data.prompts import math_prompt, xcsqa_prompt, xnli_label_word, xnli_prompt

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike
T = TypeVar("T")

# --- languages ---------------------------------------------------------------------------------------------------

# ISO 639-1 code -> (English name, other spellings: ISO 639-2/3 codes and the names datasets use)
_LANGUAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ar": ("Arabic", ("ara", "arb")),
    "bg": ("Bulgarian", ("bul",)),
    "bn": ("Bengali", ("ben", "bangla")),
    "de": ("German", ("deu", "ger")),
    "el": ("Greek", ("ell", "gre")),
    "en": ("English", ("eng",)),
    "es": ("Spanish", ("spa",)),
    "fr": ("French", ("fra", "fre")),
    "hi": ("Hindi", ("hin",)),
    "it": ("Italian", ("ita",)),
    "ja": ("Japanese", ("jpn", "jap")),  # X-CSR names its Japanese folder "jap"
    "nl": ("Dutch", ("nld", "dut", "flemish")),  # the release calls X-CSQA's nl "Flemish"
    "pl": ("Polish", ("pol",)),
    "pt": ("Portuguese", ("por",)),
    "ru": ("Russian", ("rus",)),
    "sw": ("Swahili", ("swa", "swh")),
    "te": ("Telugu", ("tel",)),
    "th": ("Thai", ("tha",)),
    "tr": ("Turkish", ("tur",)),
    "ur": ("Urdu", ("urd",)),
    "vi": ("Vietnamese", ("vie",)),
    "zh": ("Chinese", ("zho", "chi", "cmn", "zho_simpl")),
}
_LANG_LOOKUP = {
    spelling.lower(): code
    for code, (name, others) in _LANGUAGES.items()
    for spelling in (code, name, *others)
}


def normalize_lang(name: str) -> str:
    """The ISO 639-1 code for a language code or English name: "swh"/"swa"/"Swahili" -> "sw", "cmn"/"zho-CN" -> "zh".
    A region or script suffix ("zho-CN", "deu_Latn") is ignored. Unknown names raise ValueError listing the known."""
    key = str(name).strip().lower()
    if key in _LANG_LOOKUP:
        return _LANG_LOOKUP[key]
    base = re.split(r"[-_]", key, maxsplit=1)[0]
    if base in _LANG_LOOKUP:
        return _LANG_LOOKUP[base]
    known = ", ".join(f"{code} ({_LANGUAGES[code][0]})" for code in sorted(_LANGUAGES))
    raise ValueError(f"unknown language {name!r}; known: {known}")


def language_name(code: str) -> str:
    """The English name of a language ("sw" -> "Swahili")."""
    return _LANGUAGES[normalize_lang(code)][0]


def _is_known_lang(name: str) -> bool:
    try:
        normalize_lang(name)
    except ValueError:
        return False
    return True


# --- benchmark metadata ------------------------------------------------------------------------------------------

# Languages per benchmark, in the column order of the papers' tables (MindMerger / LayAlign).
LANGS: dict[str, tuple[str, ...]] = {
    "mgsm": ("te", "bn", "th", "sw", "ja", "zh", "de", "fr", "ru", "es", "en"),
    "msvamp": ("bn", "th", "sw", "ja", "zh", "de", "fr", "ru", "es", "en"),
    "xcsqa": ("sw", "ur", "hi", "ar", "vi", "ja", "pl", "zh", "nl", "ru", "it", "de", "pt", "fr", "es", "en"),
    "xnli": ("sw", "ur", "hi", "th", "ar", "tr", "el", "vi", "zh", "ru", "bg", "de", "fr", "es", "en"),
    # the 21 NTREX-128 / Tatoeba languages of ../shared/data/parallel
    "translation": ("bn", "th", "sw", "te", "ja", "zh", "de", "fr", "ru", "es", "ar", "bg", "el", "hi", "it", "nl",
                    "pl", "pt", "tr", "ur", "vi"),
}
# Low-resource averages: MGSM as the paper (bn th sw te); MSVAMP has no Telugu; X-CSQA and XNLI follow MindMerger,
# whose tables lead with the low-resource group sw ur hi. Translation uses the math set.
LOW_RESOURCE: dict[str, tuple[str, ...]] = {
    "mgsm": ("bn", "th", "sw", "te"),
    "msvamp": ("bn", "th", "sw"),
    "xcsqa": ("sw", "ur", "hi"),
    "xnli": ("sw", "ur", "hi"),
    "translation": ("bn", "th", "sw", "te"),
}
# Relative to the current directory (the repository root). X-CSQA has no shared copy; MSVAMP's full test sets are
# held back from this copy (msvamp_sample/ holds 20 rows per language for testing the reader).
DEFAULT_PATHS: dict[str, str] = {
    "mgsm": "../shared/data/mgsm",
    "msvamp": "../shared/data/msvamp",
    "xnli": "../shared/data/xnli",
    "translation": "../shared/data/parallel",
}

# --- errors and low-level file access ----------------------------------------------------------------------------


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


def _norm_ws(text: str) -> str:
    # str.split() also splits at U+2028, which one GSM8K question contains where QAlign's copy has a space
    return " ".join(text.split())


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def canonical_number(raw: str) -> str:
    """A gold number in plain form: thousands commas dropped, "8.0" -> "8", "2.50" -> "2.5"."""
    text = raw.strip().replace(",", "")
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"not a number: {raw!r}")
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a decimal literal
        raise ValueError(f"not a number: {raw!r}") from None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


# --- translation pairs -------------------------------------------------------------------------------------------


def read_parallel_files(src_path: PathLike, en_path: PathLike, lang: str, limit: int | None = None
                        ) -> list[TrainExample]:
    """X -> English pairs from two line-aligned plain-text files (line i of one translates line i of the other)."""
    code = normalize_lang(lang)
    sources, targets = _plain_lines(src_path), _plain_lines(en_path)
    if len(sources) != len(targets):
        raise ValueError(f"parallel files differ in length: {src_path} has {len(sources)} lines, "
                         f"{en_path} has {len(targets)}")
    pairs = [TrainExample(source=s, target=t, prompt=None, lang=code) for s, t in zip(sources, targets, strict=True)]
    return _take(pairs, limit)


def read_parallel_tsv(path: PathLike, lang: str, limit: int | None = None) -> list[TrainExample]:
    """X -> English pairs from a TSV file: `X sentence<TAB>English sentence`, no header."""
    code = normalize_lang(lang)
    pairs = [
        TrainExample(source=_text(src, path, n, "source sentence"), target=_text(en, path, n, "English sentence"),
                     prompt=None, lang=code)
        for n, (src, en) in _tsv_rows(path, 2, "X sentence, English sentence")
    ]
    return _take(pairs, limit)


def read_parallel_jsonl(path: PathLike, lang: str, src_key: str = "source", tgt_key: str = "target",
                        limit: int | None = None) -> list[TrainExample]:
    """X -> English pairs from JSONL records holding the X sentence under `src_key`, the English under `tgt_key`."""
    code = normalize_lang(lang)
    pairs = [
        TrainExample(source=_text(_get(r, src_key, path, n), path, n, src_key),
                     target=_text(_get(r, tgt_key, path, n), path, n, tgt_key), prompt=None, lang=code)
        for n, r in _json_records(path)
    ]
    return _take(pairs, limit)


def read_authors_bilingual(root: PathLike, langs: Sequence[str], stem: str = "train_100k",
                           limit: int | None = None) -> list[TrainExample]:
    """The release's translation-stage layout: `root/en-xx/{stem}.xx` with `root/en-xx/{stem}.en` (stem train_100k;
    the davidguzmanr fork uses train_9k). `limit` is per language, like the release's train_num."""
    base = _require_dir(root)
    out: list[TrainExample] = []
    for lang in langs:
        code = normalize_lang(lang)
        folder = base / f"en-{code}"
        out += read_parallel_files(folder / f"{stem}.{code}", folder / f"{stem}.en", code, limit=limit)
    return out


# The corpora of ../shared/data/parallel. NTREX-128 (news, 1997 sentences per language) is held out as the
# translation test set; Tatoeba (short everyday sentences) and the MindMerger-fork pairs (en-fr, en-sw) train.
SHARED_PARALLEL_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("tatoeba", "mindmerger"),
    "test": ("ntrex",),
    "all": ("tatoeba", "mindmerger", "ntrex"),
}
_CORPUS_DIRS = {"tatoeba": "tatoeba_laser", "ntrex": "ntrex128", "mindmerger": "mindmerger_fork_pairs"}


def _tatoeba_files(folder: Path) -> dict[str, tuple[Path, Path]]:
    found = {}
    for en in sorted(folder.glob("tatoeba.*-eng.eng")):
        x = en.name[len("tatoeba."):-len("-eng.eng")]
        src = folder / f"tatoeba.{x}-eng.{x}"
        if src.is_file() and _is_known_lang(x) and normalize_lang(x) != "en":
            found[normalize_lang(x)] = (src, en)
    return found


def _ntrex_files(folder: Path) -> dict[str, tuple[Path, Path]]:
    en = folder / "newstest2019-src.eng.txt"
    if not en.is_file():
        return {}
    found = {}
    for src in sorted(folder.glob("newstest2019-ref.*.txt")):
        x = src.name[len("newstest2019-ref."):-len(".txt")]
        if _is_known_lang(x) and normalize_lang(x) != "en":  # skips eng-GB etc. and languages outside the table
            found[normalize_lang(x)] = (src, en)
    return found


def _mindmerger_files(folder: Path) -> dict[str, tuple[Path, Path]]:
    found = {}
    for pair_dir in sorted(folder.glob("en-*")):
        x = pair_dir.name[len("en-"):]
        for en in sorted(pair_dir.glob("*.en")):
            src = en.with_suffix(f".{x}")
            if src.is_file() and _is_known_lang(x):
                found[normalize_lang(x)] = (src, en)
    return found


_CORPUS_FINDERS: dict[str, Callable[[Path], dict[str, tuple[Path, Path]]]] = {
    "tatoeba": _tatoeba_files, "ntrex": _ntrex_files, "mindmerger": _mindmerger_files,
}


def shared_parallel_files(parallel_dir: PathLike, corpus: str) -> dict[str, tuple[Path, Path]]:
    """language -> (X file, English file) of one corpus ("tatoeba", "ntrex", "mindmerger") under `parallel_dir`
    (the folder holding tatoeba_laser/, ntrex128/, mindmerger_fork_pairs/, or that corpus folder itself)."""
    if corpus not in _CORPUS_FINDERS:
        raise ValueError(f"unknown parallel corpus {corpus!r}; known: {', '.join(_CORPUS_FINDERS)}")
    base = _require_dir(parallel_dir)
    sub = base / _CORPUS_DIRS[corpus]
    return _CORPUS_FINDERS[corpus](sub if sub.is_dir() else base)


def read_shared_parallel(parallel_dir: PathLike, langs: Sequence[str] | None = None, split: str = "train",
                         limit: int | None = None) -> list[TrainExample]:
    """X -> English pairs from ../shared/data/parallel. split "train" = Tatoeba + MindMerger-fork pairs, "test" =
    NTREX-128, "all" = both (see SHARED_PARALLEL_SPLITS); keep a dev part of "train" with `split_dev`. `langs`
    defaults to every language found; `limit` caps each language's pairs per corpus."""
    if split not in SHARED_PARALLEL_SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SHARED_PARALLEL_SPLITS)}")
    corpora = {name: shared_parallel_files(parallel_dir, name) for name in SHARED_PARALLEL_SPLITS[split]}
    available = sorted({lang for files in corpora.values() for lang in files})
    if not available:
        raise FileNotFoundError(f"no {split} parallel files ({', '.join(corpora)}) under {parallel_dir}")
    wanted = available if langs is None else [normalize_lang(lang) for lang in langs]
    out: list[TrainExample] = []
    for lang in wanted:
        if lang not in available:
            raise ValueError(f"no {split} pairs for {lang!r} under {parallel_dir}; available: {', '.join(available)}")
        for files in corpora.values():
            if lang in files:
                out += read_parallel_files(*files[lang], lang, limit=limit)
    return out


def split_dev(examples: Sequence[T], n_dev: int, seed: int = 0) -> tuple[list[T], list[T]]:
    """(train, dev): `n_dev` examples drawn at random (reproducibly from `seed`) as dev, the rest as train. Both keep
    the original order. The recipe holds out 3,000 translation pairs to pick the checkpoint by dev perplexity."""
    if not 0 <= n_dev <= len(examples):
        raise ValueError(f"n_dev must be between 0 and {len(examples)} (the number of examples), got {n_dev}")
    dev_index = set(random.Random(seed).sample(range(len(examples)), n_dev))
    train = [e for i, e in enumerate(examples) if i not in dev_index]
    dev = [e for i, e in enumerate(examples) if i in dev_index]
    return train, dev


# --- math training data ------------------------------------------------------------------------------------------

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


# --- XNLI and X-CSQA rows ----------------------------------------------------------------------------------------


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


# --- benchmarks --------------------------------------------------------------------------------------------------


def _order(langs: Sequence[str], benchmark: str) -> list[str]:
    canon = LANGS.get(benchmark, ())
    return [c for c in canon if c in langs] + sorted(c for c in langs if c not in canon)


def _select(files: dict[str, Path], langs: Sequence[str] | None, benchmark: str, where: PathLike
            ) -> list[tuple[str, Path]]:
    """(lang, file) pairs for the requested languages (all found, in the benchmark's order, when langs is None)."""
    if not files:
        raise FileNotFoundError(f"no {benchmark} files found in {where}")
    if langs is None:
        return [(lang, files[lang]) for lang in _order(list(files), benchmark)]
    selected = []
    for lang in langs:
        code = normalize_lang(lang)
        if code not in files:
            found = ", ".join(_order(list(files), benchmark))
            raise ValueError(f"no {benchmark} file for {code!r} in {where}; found: {found}")
        selected.append((code, files[code]))
    return selected


def _files_by_lang(path: PathLike, pattern: str, layout: str) -> dict[str, Path]:
    """lang -> file for a directory (files whose name matches `pattern`, with a `lang` group) or for a single file
    (its name must match). Languages whose code is unknown are an error for a single file, skipped in a folder."""
    p = Path(path)
    regex = re.compile(pattern)
    if p.is_file():
        m = regex.fullmatch(p.name)
        if not m:
            raise ValueError(f"cannot tell the language of {p}: expected a name like {layout}")
        return {normalize_lang(m["lang"]): p}
    found = {}
    for f in sorted(_require_dir(p).iterdir()):
        m = regex.fullmatch(f.name)
        if m and f.is_file() and _is_known_lang(m["lang"]):
            found[normalize_lang(m["lang"])] = f
    return found


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


def read_translation_eval(path: PathLike | None = None, langs: Sequence[str] | None = None, limit: int | None = None,
                          corpus: str = "ntrex") -> dict[str, list[EvalExample]]:
    """X -> English sentence pairs for chrF/BLEU from the shared parallel folder (NTREX-128 by default: held out from
    training by read_shared_parallel's "train" split). source = X sentence, gold = English sentence, prompt = None
    (format a bare LLM's prompt with prompts.format_prompt("translation", ...))."""
    base = DEFAULT_PATHS["translation"] if path is None else path
    files = shared_parallel_files(base, corpus)
    out = {}
    for lang, (src, en) in _select(files, langs, "translation", base):
        pairs = read_parallel_files(src, en, lang, limit=limit)
        out[lang] = [EvalExample(id=f"{corpus}-{lang}-{i}", lang=lang, source=p.source, gold=p.target, prompt=None,
                                 meta={"corpus": corpus}) for i, p in enumerate(pairs)]
    return out


_BENCHMARK_READERS: dict[str, Callable[..., dict[str, list[EvalExample]]]] = {
    "mgsm": read_mgsm,
    "msvamp": read_msvamp,
    "xcsqa": read_xcsqa_eval,
    "xnli": read_xnli_eval,
    "translation": read_translation_eval,
}


def default_path(benchmark: str) -> Path:
    """The shared copy of a benchmark (relative to the current directory), or a clear error where there is none."""
    if benchmark == "xcsqa":
        raise ValueError("X-CSQA has no copy in ../shared/data (X-CSR is distributed only through Google Drive); "
                         "pass --data with the X-CSQA folder (xx/dev.jsonl per language) or a dev-xx.jsonl file")
    path = Path(DEFAULT_PATHS[benchmark])
    if not path.exists():
        hint = ""
        if benchmark == "msvamp" and path.with_name("msvamp_sample").is_dir():
            hint = (f"; the full test sets are held back from this copy, {path.with_name('msvamp_sample')} holds the "
                    "first 20 rows per language (for testing only)")
        raise FileNotFoundError(f"default {benchmark} data {path} not found (relative to {Path.cwd()}){hint}; "
                                "pass --data")
    return path


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
