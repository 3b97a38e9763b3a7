"""SIB-200: topic classification of Flores-200 sentences, 7 labels, 205 languages (Adelani et al., EACL 2024).

A folder holds `{lang}/{split}.tsv` per language (Flores-200 codes, `layalign.data.flores`): a header
`index_id<TAB>category<TAB>text`, then one row per item. Quote characters are text (the files are read without any
quoting rules: some sentences hold an unbalanced '"'), so every row has exactly three tab-separated fields.

Evaluation and task-stage rows: source = the sentence (what the encoder reads), prompt = the SIB-200 template around
it, target / gold = the category. Translation pairs: the files are multi-parallel (row i of every language is a
translation of English row i, and rows with the same index_id are one item), so a non-English train row and the
English row of the same index_id make an X -> English pair; train items never overlap dev or test items.

Readers take the folder and the languages as arguments; the registry (`layalign.tasks`) names the default folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from layalign.data.examples import EvalExample, TrainExample
from layalign.data.flores import HOW_TO_LIST, resolve_languages
from layalign.data.io import DataFormatError, PathLike, _require_dir, _take, _text, _tsv_rows
from layalign.data.prompts import SIB200_LABELS, sib200_prompt

SPLITS = ("train", "dev", "test")
HEADER = ["index_id", "category", "text"]
ENGLISH = "eng_Latn"


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown SIB-200 split {split!r}; choose one of {', '.join(SPLITS)}")
    return split


def sib200_rows(path: PathLike) -> Iterator[tuple[int, str, str, str]]:
    """(line, index_id, category, text) of one SIB-200 TSV file; a malformed row raises DataFormatError (file:line)."""
    header_seen = False
    for n, cells in _tsv_rows(path, 3, "index_id, category, text"):
        if not header_seen:
            if cells != HEADER:
                raise DataFormatError(path, n, f"expected the header {chr(9).join(HEADER)!r}, found {cells!r}")
            header_seen = True
            continue
        index_id = _text(cells[0], path, n, "index_id")
        category = _text(cells[1], path, n, "category")
        if category not in SIB200_LABELS:
            raise DataFormatError(path, n, f"unknown category {category!r}; expected one of {', '.join(SIB200_LABELS)}")
        yield n, index_id, category, _text(cells[2], path, n, "text")


def sib200_languages(folder: PathLike, split: str) -> list[str]:
    """The languages of `folder` that have a `{split}.tsv`, sorted (the order of `layalign.data.flores`)."""
    base = _require_dir(folder)
    return sorted(d.name for d in base.iterdir() if (d / f"{_check_split(split)}.tsv").is_file())


def _files(folder: PathLike, split: str, langs: Iterable[str] | str | None) -> list[tuple[str, Path]]:
    """(lang, file) for the requested languages (every one found when langs is None), each checked to exist."""
    found = sib200_languages(folder, split)
    if not found:
        raise FileNotFoundError(f"no SIB-200 files {{lang}}/{split}.tsv in {folder}")
    wanted = found if langs is None else resolve_languages(langs)
    for lang in wanted:
        if lang not in found:
            raise ValueError(f"no SIB-200 {split} file for {lang!r} in {folder} ({lang}/{split}.tsv); {len(found)} "
                             f"languages there have one; {HOW_TO_LIST}")
    return [(lang, Path(folder) / lang / f"{split}.tsv") for lang in wanted]


def read_sib200_eval(folder: PathLike, split: str = "dev", langs: Iterable[str] | None = None,
                     limit: int | None = None) -> dict[str, list[EvalExample]]:
    """{lang: examples} of one split, languages sorted (or as given); gold = the category. Ids are
    `sib200-{lang}-{index_id}`, the same item in every language."""
    out = {}
    for lang, path in _files(folder, split, langs):
        out[lang] = _take([EvalExample(id=f"sib200-{lang}-{index_id}", lang=lang, source=text, gold=category,
                                       prompt=sib200_prompt(text), meta={"index_id": index_id})
                           for _, index_id, category, text in sib200_rows(path)], limit)
    return out


def read_sib200_train(folder: PathLike, langs: Iterable[str] | str, split: str = "train",
                      limit: int | None = None) -> list[TrainExample]:
    """Task-stage rows (text -> category) in each of `langs` (codes, or a set name of `layalign.data.flores` such
    as "task"); `limit` is per language."""
    examples: list[TrainExample] = []
    for lang, path in _files(folder, split, langs):
        examples += _take([TrainExample(source=text, target=category, prompt=sib200_prompt(text), lang=lang)
                           for _, _, category, text in sib200_rows(path)], limit)
    return examples


def read_sib200_pairs(folder: PathLike, langs: Iterable[str] | str, split: str = "train",
                      limit: int | None = None) -> list[TrainExample]:
    """X -> English translation pairs from the multi-parallel `split` (default train, which never overlaps dev):
    each row of language X with the English row of the same index_id; `limit` is per language. English itself is
    skipped (it would pair a sentence with itself); an index_id English does not have is an error."""
    english = {index_id: text for _, index_id, _, text in sib200_rows(Path(folder) / ENGLISH / f"{split}.tsv")}
    pairs: list[TrainExample] = []
    for lang, path in _files(folder, split, langs):
        if lang == ENGLISH:
            continue
        rows = []
        for n, index_id, _, text in sib200_rows(path):
            if index_id not in english:
                raise DataFormatError(path, n, f"index_id {index_id} has no row in {ENGLISH}/{split}.tsv")
            rows.append(TrainExample(source=text, target=english[index_id], prompt=None, lang=lang))
        pairs += _take(rows, limit)
    return pairs
