"""Atomic writes of directories: build the new contents beside the target, then swap them in with renames.

A crash (or Ctrl-C) at any point leaves either the old directory or the new one under the target's name, never a
half-written one. The temporary siblings are named `.NAME-partial-*`, so a sweep of such names finds what a
killed process left behind.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
