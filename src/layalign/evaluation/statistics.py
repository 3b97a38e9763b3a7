"""Statistics of a comparison between systems evaluated on the same rows: seed summaries and a paired bootstrap.

The unit of resampling is the *item*: on XNLI one dev row translated into 15 languages. The 15 translations of an
item are not 15 independent draws (an item that is hard in English tends to be hard in Swahili), so the bootstrap
resamples item ids and keeps every language of an item together; resampling rows would understate the interval.
Seeds are averaged first (per item and language), so the interval is over items, for the seed-averaged systems.
`seed_and_item_bootstrap` also resamples each system's seeds, so that its interval holds the seed-to-seed noise too
(training noise: which seed is drawn); with two or three seeds that part is rough, and a one-seed system adds none.

numpy only; every random draw comes from a `numpy.random.Generator` seeded by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """A paired difference (a - b, as a fraction: 0.05 = 5 points) and its bootstrap interval."""

    difference: float
    low: float
    high: float
    level: float
    items: int
    languages: int
    resamples: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def item_of_id(row_id: str) -> str:
    """The item an XNLI-style row id belongs to: "xnli-sw-17" -> "17" (the dev row index shared by all languages)."""
    return str(row_id).rsplit("-", 1)[-1]


def correctness(rows: Iterable[dict], item_of: Callable[[str], str] = item_of_id,
                correct_of: Callable[[dict], bool] | None = None) -> dict[tuple[str, str], float]:
    """{(item, lang): 1.0 or 0.0} from prediction rows (their `correct`, or `correct_of(row)`)."""
    judge = correct_of or (lambda row: bool(row["correct"]))
    return {(item_of(row["id"]), str(row["lang"])): float(judge(row)) for row in rows}


def aligned(systems: Sequence[Sequence[dict[tuple[str, str], float]]], keep_seeds: bool = False
            ) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Each system's seeds averaged into one (items, languages) matrix (with keep_seeds, stacked into a (seeds,
    items, languages) one), over the items and languages that every seed of every system answered (a paired
    comparison uses the same rows only). Returns (matrices, items, languages); items and languages in sorted order
    (items numerically when they are numbers)."""
    cells = [set(c) for seeds in systems for c in seeds]
    if not cells:
        raise ValueError("no system to align")
    common = set.intersection(*cells)
    langs = sorted({lang for _, lang in common})
    # an item counts only when it has every language: its languages are resampled together
    items = sorted({item for item, _ in common if all((item, lang) in common for lang in langs)}, key=_sort_key)
    if not items:
        raise ValueError("the systems share no item answered in every language")
    stacks = [np.array([[[seed[(item, lang)] for lang in langs] for item in items] for seed in seeds])
              for seeds in systems]
    return (stacks if keep_seeds else [stack.mean(axis=0) for stack in stacks]), items, langs


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                     level: float = 0.95) -> Interval:
    """The mean difference a - b over items and languages, and its percentile bootstrap interval, resampling items
    (rows of the matrices) with replacement and keeping each item's languages (columns) together.

    a, b: (items, languages) correctness matrices, or (seeds, items, languages) ones, which are averaged over seeds
    first. Every language weighs the same (each has every item)."""
    a, b = _matrix(a), _matrix(b)
    if a.shape != b.shape:
        raise ValueError(f"the systems' matrices differ in shape: {a.shape} and {b.shape}")
    _check_level(level)
    per_item = (a - b).mean(axis=1)  # the item's difference over its languages: what is resampled
    n = per_item.shape[0]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    low, high = _percentiles(per_item[draws].mean(axis=1), level)
    return Interval(difference=float(per_item.mean()), low=low, high=high, level=level, items=n,
                    languages=a.shape[1], resamples=resamples)


def seed_and_item_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                            level: float = 0.95) -> Interval:
    """As `paired_bootstrap`, but each resample also draws each system's seeds with replacement (independently: the
    systems' seeds are not paired) before the items (the same items for both: they are paired). a, b: (seeds,
    items, languages) correctness matrices with the same items and languages; a system with one seed adds no seed
    noise. The point estimate is the same as `paired_bootstrap`'s."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:] or 0 in a.shape or 0 in b.shape:
        raise ValueError(f"expected two (seeds, items, languages) matrices on the same rows, got {a.shape} and "
                         f"{b.shape}")
    _check_level(level)
    per_seed_a, per_seed_b = a.mean(axis=2), b.mean(axis=2)  # (seeds, items): each item over its languages
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    items = rng.integers(0, n, size=(resamples, n))
    means = []
    for per_seed in (per_seed_a, per_seed_b):
        by_seed = per_seed[:, items].mean(axis=2)  # (seeds, resamples): each seed's mean over the drawn items
        drawn = rng.integers(0, per_seed.shape[0], size=(resamples, per_seed.shape[0]))
        means.append(by_seed[drawn, np.arange(resamples)[:, None]].mean(axis=1))
    low, high = _percentiles(means[0] - means[1], level)
    return Interval(difference=float(per_seed_a.mean() - per_seed_b.mean()), low=low, high=high,
                    level=level, items=n, languages=a.shape[2], resamples=resamples)


def seed_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """mean, sample standard deviation (None for one seed), min, max and n of per-seed values."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to summarise")
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else None,
            "min": float(x.min()), "max": float(x.max()), "n": int(x.size)}


def describe(interval: Interval, a: str, b: str, unit: float = 100.0) -> str:
    """One plain sentence on whether the interval excludes 0 (values in points when unit=100)."""
    d, lo, hi = (unit * v for v in (interval.difference, interval.low, interval.high))
    where = f"{d:+.1f} points, {interval.level:.0%} interval [{lo:+.1f}, {hi:+.1f}] over {interval.items} items"
    if interval.low > 0:
        return f"{a} is better than {b}: {where}; the interval excludes 0."
    if interval.high < 0:
        return f"{a} is worse than {b}: {where}; the interval excludes 0."
    return f"{a} and {b} are not distinguishable: {where}; the interval contains 0."


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")


def _percentiles(draws: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval of the bootstrap draws at `level` (0.95: the 2.5th and 97.5th percentiles)."""
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def _matrix(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 3:
        x = x.mean(axis=0)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected an (items, languages) or (seeds, items, languages) matrix, got shape {x.shape}")
    return x


def _sort_key(item: str) -> tuple[int, int | str]:
    return (0, int(item)) if item.isdigit() else (1, item)
