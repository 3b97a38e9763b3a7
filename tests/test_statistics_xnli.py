"""On the committed XNLI comparison, the verdicts after Holm's correction do not depend on the bootstrap's seed."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from layalign.evaluation.statistics import (
    DEFAULT_RESAMPLES,
    aligned,
    correctness,
    holm,
    paired_bootstrap,
    seed_and_item_bootstrap,
    verdict,
)

UNITS = Path(__file__).resolve().parents[1] / "docs" / "results" / "comparison" / "units"


def _systems(scoring: str) -> dict[str, list[dict[tuple[str, str], float]]]:
    """{system: one correctness dict per seed} from the units' committed predictions (unit "layalign-s1" is seed 1
    of system "layalign"; "llm-prompted" has one unit)."""
    systems: dict[str, list[dict[tuple[str, str], float]]] = {}
    for path in sorted(UNITS.glob(f"*/eval/{scoring}/predictions.jsonl")):
        with path.open() as rows:
            cells = correctness(json.loads(line) for line in rows)
        systems.setdefault(re.sub(r"-s\d+$", "", path.parts[-4]), []).append(cells)
    return systems


@pytest.mark.parametrize("scoring", ["choices", "generate"])
def test_no_verdict_changes_with_the_bootstrap_seed(scoring):
    systems = _systems(scoring)
    assert len(systems) == 5 and sum(map(len, systems.values())) == 11
    pairs = [aligned([systems[a], systems[b]], keep_seeds=True)[0] for a, b in itertools.combinations(systems, 2)]
    for bootstrap in (paired_bootstrap, seed_and_item_bootstrap):
        by_seed = []
        for seed in range(5):
            intervals = [bootstrap(a, b, resamples=DEFAULT_RESAMPLES, seed=seed) for a, b in pairs]
            adjusted = holm([interval.p_value for interval in intervals])
            by_seed.append([verdict(p, interval) for p, interval in zip(adjusted, intervals)])
        assert all(verdicts == by_seed[0] for verdicts in by_seed), (bootstrap.__name__, by_seed)
