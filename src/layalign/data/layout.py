"""Finding a benchmark's file per language in a folder (or a single file named after its language), in the
benchmark's language order. The shared copies' default paths and the language order are facts of the benchmark
registry (`layalign.tasks`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from layalign.data.io import PathLike, _require_dir
from layalign.data.languages import _is_known_lang, normalize_lang


def _order(langs: Sequence[str], benchmark: str) -> list[str]:
    """`langs` in the registry's column order for `benchmark`, unknown ones sorted after."""
    from layalign.tasks import TASKS  # at call time: the registry imports the readers of this package

    canon = TASKS[benchmark].languages if benchmark in TASKS else ()
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
