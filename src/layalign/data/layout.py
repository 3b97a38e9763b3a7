"""Where benchmark files are: the shared copies (`DEFAULT_PATHS`, `default_path`) and finding one file per language
in a folder (or a single file named after its language), in the benchmark's language order."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from layalign.data.io import PathLike, _require_dir
from layalign.data.languages import LANGS, _is_known_lang, normalize_lang

# Relative to the current directory (the repository root). X-CSQA has no shared copy; MSVAMP's full test sets are
# held back from this copy (msvamp_sample/ holds 20 rows per language for testing the reader).
DEFAULT_PATHS: dict[str, str] = {
    "mgsm": "../shared/data/mgsm",
    "msvamp": "../shared/data/msvamp",
    "xnli": "../shared/data/xnli",
    "translation": "../shared/data/parallel",
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
