"""Files that records and models are made of: atomic writes of directories, and paths written so that a record
travels.

`replace_directory` builds the new contents beside the target, then swaps them in with renames. A crash (or Ctrl-C)
at any point leaves either the old directory or the new one under the target's name, never a half-written one. The
temporary siblings are named `.NAME-partial-*`, so a sweep of such names finds what a killed process left behind.

`relative_to_root` writes the absolute paths in a record (a path, a command line, or nested dicts and lists of
them) relative to the repository root, the current directory of the commands that wrote it: a committed record
then names `runs/...` and `../shared/data`, never the disk it was written on.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

Record = TypeVar("Record")


def replace_directory(target: Path, build: Callable[[Path], Any],
                      keep_existing: Callable[[Path], bool] | None = None) -> Path:
    """Run `build(staging)` into a new temporary sibling of `target`, then rename it to `target`, replacing what
    was there. On any failure the staging directory is removed, the old contents stay, and the error is raised.

    `keep_existing(target)` is asked when the final rename fails (another process put its own complete copy there
    meanwhile); if it answers true, that copy is kept and ours dropped instead of raising."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a plain mkdir (not tempfile.mkdtemp, which makes it private, 0700): the result gets the usual permissions
    staging = target.parent / f".{target.name}-partial-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    # the old contents are renamed aside (not deleted in place) so that a crash mid-delete cannot leave a
    # half-deleted target; the name is unique because the staging name is
    aside = staging.with_name(staging.name + "-old")
    try:
        build(staging)
        if target.exists():
            target.rename(aside)
        try:
            os.replace(staging, target)
        except OSError:
            if keep_existing is None or not keep_existing(target):
                raise
    except BaseException:
        if aside.exists() and not target.exists():
            aside.rename(target)  # the swap did not happen: put the old contents back
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful swap
        shutil.rmtree(aside, ignore_errors=True)
    return target


def relative_to_root(record: Record, root: str | Path | None = None) -> Record:
    """`record` (a path, a text such as a command line, or dicts and lists of them, keys untouched) with every
    absolute path under `root` (default: the current directory) or under its parent written relative to `root`:
    ROOT/runs/x -> runs/x, ROOT -> ., PARENT/shared/data -> ../shared/data. Other paths and relative ones stay as
    they are. A Path comes back as a Path, and a string as a string."""
    given = Path(root if root is not None else Path.cwd())
    prefixes = []
    for base in dict.fromkeys((given.absolute(), given.resolve())):  # as written, and through any symlinks
        prefixes.append((str(base), "."))
        if base.parent.parent != base.parent:  # a parent of "/" would turn every path into "../..."
            prefixes.append((str(base.parent), ".."))
    prefixes.sort(key=lambda p: -len(p[0]))  # the longest first: ROOT/runs is the root's, not its parent's
    # a prefix counts only as a whole path: not inside a longer name (ROOT-old, /x/ROOT)
    pattern = re.compile(r"(?<![\w.~/-])(" + "|".join(re.escape(p) for p, _ in prefixes) + r")(/|(?![\w.~-]))")
    names = dict(prefixes)

    def relative(match: re.Match) -> str:
        name, slash = names[match[1]], match[2]
        if name == ".":
            return "" if slash else "."  # ROOT/runs -> runs, ROOT -> .
        return name + slash  # PARENT/shared -> ../shared, PARENT -> ..

    def rewrite(value: Any) -> Any:
        if isinstance(value, Path):
            return Path(rewrite(str(value)))
        if isinstance(value, str):
            return pattern.sub(relative, value)
        if isinstance(value, dict):
            return {k: rewrite(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(rewrite(v) for v in value)
        return value

    return rewrite(record)
