"""Translation pairs (X -> English): line-aligned files, TSV, JSONL, the release's bilingual layout, the corpora of
../shared/data/parallel (Tatoeba and MindMerger-fork pairs train, NTREX-128 is held out), and the translation test
set for chrF/BLEU. Pairs have source = X sentence, target (or gold) = English sentence, prompt = None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from layalign.data.examples import EvalExample, TrainExample
from layalign.data.io import PathLike, _get, _json_records, _plain_lines, _require_dir, _take, _text, _tsv_rows
from layalign.data.languages import _is_known_lang, normalize_lang
from layalign.data.layout import _select


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


def read_translation_eval(path: PathLike, langs: Sequence[str] | None = None, limit: int | None = None,
                          corpus: str = "ntrex") -> dict[str, list[EvalExample]]:
    """X -> English sentence pairs for chrF/BLEU from the shared parallel folder (NTREX-128 by default: held out from
    training by read_shared_parallel's "train" split). source = X sentence, gold = English sentence, prompt = None
    (format a bare LLM's prompt with prompts.format_prompt("translation", ...)). `path`: the shared parallel
    folder (`get_task("translation").read()` reads the registry's copy)."""
    base = path
    files = shared_parallel_files(base, corpus)
    out = {}
    for lang, (src, en) in _select(files, langs, "translation", base):
        pairs = read_parallel_files(src, en, lang, limit=limit)
        out[lang] = [EvalExample(id=f"{corpus}-{lang}-{i}", lang=lang, source=p.source, gold=p.target, prompt=None,
                                 meta={"corpus": corpus}) for i, p in enumerate(pairs)]
    return out
