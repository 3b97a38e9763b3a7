"""Shared by the tests/test_data_*.py files: where the shared data copy and the fixtures are, and file writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
DATA = REPO / ".." / "shared" / "data"
FIXTURES = Path(__file__).parent / "fixtures"
needs_data = pytest.mark.skipif(not (DATA / "MANIFEST.md").is_file(),
                                reason=f"the shared data copy is not at {DATA} (expected beside the repository)")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
