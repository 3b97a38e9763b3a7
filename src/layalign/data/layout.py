"""Finding a benchmark's file per language in a folder (or a single file named after its language). The languages
come in the order asked for, else sorted by code: the papers' column order is a fact of the benchmark registry
(`layalign.tasks`), which puts a reader's result in it; a reader never looks the registry up."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from layalign.data.io import PathLike, _require_dir
from layalign.data.languages import _is_known_lang, normalize_lang


def _select(files: dict[str, Path], langs: Sequence[str] | None, benchmark: str, where: PathLike
            ) -> list[tuple[str, Path]]:
    """(lang, file) pairs for the requested languages, in their order (all found, sorted, when langs is None);
    `benchmark` names the files in errors."""
    if not files:
        raise FileNotFoundError(f"no {benchmark} files found in {where}")
    if langs is None:
        return [(lang, files[lang]) for lang in sorted(files)]
    selected = []
    for lang in langs:
        code = normalize_lang(lang)
        if code not in files:
            found = ", ".join(sorted(files))
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
