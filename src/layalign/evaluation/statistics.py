"""Statistics of a comparison between systems evaluated on the same rows: seed summaries, a paired bootstrap, a
seed-level t-interval, Holm's correction across a table's pairs and the verdict drawn from them.

The unit of resampling is the *item*: on XNLI one dev row translated into 15 languages. The 15 translations of an
item are not 15 independent draws (an item that is hard in English tends to be hard in Swahili), so the bootstrap
resamples item ids and keeps every language of an item together; resampling rows would understate the interval.
Seeds are averaged first (per item and language), so the interval is over items, for the seed-averaged systems.
`seed_and_item_bootstrap` also resamples each system's seeds, so that its interval holds the seed-to-seed noise too
(training noise: which seed is drawn); with two or three seeds it understates that part, and a one-seed system adds
none. `seed_level_interval` is the honest interval for the seed noise with 2-5 seeds (its docstring says why).

A table of pairs makes many comparisons: `holm` adjusts their p-values together, and `verdict` says "differs" only
when the adjusted p-value is below alpha.

numpy and the standard library only (the t distribution is computed here, so scipy is not a dependency); every random
draw comes from a `numpy.random.Generator` seeded by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000


DIFFERS, NO_DIFFERENCE = "differs", "no difference shown"


@dataclass(frozen=True)
class Interval:
    """A difference a - b (as a fraction: 0.05 = 5 points), its interval and the two-sided p-value for "a - b == 0".

    A bootstrap interval names its items, languages and resamples; a seed-level one (`seed_level_interval`) has
    None there and names its seeds and degrees of freedom instead."""

    difference: float
    low: float
    high: float
    level: float
    items: int | None
    languages: int | None
    resamples: int | None
    p_value: float | None = None
    seeds: tuple[int, int] | None = None
    df: float | None = None

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
    first. Every language weighs the same (each has every item). The p-value is `_bootstrap_p`'s."""
    a, b = _matrix(a), _matrix(b)
    if a.shape != b.shape:
        raise ValueError(f"the systems' matrices differ in shape: {a.shape} and {b.shape}")
    _check_level(level)
    per_item = (a - b).mean(axis=1)  # the item's difference over its languages: what is resampled
    n = per_item.shape[0]
    differences = _item_counts(n, resamples, np.random.default_rng(seed)) @ per_item / n
    return _from_draws(float(per_item.mean()), differences, level, items=n, languages=a.shape[1])


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
    counts = _item_counts(n, resamples, rng)
    means = []
    for per_seed in (per_seed_a, per_seed_b):
        by_seed = per_seed @ counts.T / n  # (seeds, resamples): each seed's mean over the drawn items
        drawn = rng.integers(0, per_seed.shape[0], size=(resamples, per_seed.shape[0]))
        means.append(by_seed[drawn, np.arange(resamples)[:, None]].mean(axis=1))
    return _from_draws(float(per_seed_a.mean() - per_seed_b.mean()), means[0] - means[1], level, items=n,
                       languages=a.shape[2], seeds=(a.shape[0], b.shape[0]))


def seed_level_interval(a_seed_values: Sequence[float], b_seed_values: Sequence[float], level: float = 0.95, *,
                        a_deterministic: bool = False, b_deterministic: bool = False) -> Interval:
    """The difference of two systems' mean accuracies over seeds, mean(a) - mean(b), with Welch's t-interval on the
    per-seed values (Welch-Satterthwaite degrees of freedom) and the two-sided p-value of the same t distribution.
    The values are each seed's accuracy on the same rows, in one unit (fractions or points); so is the interval.

    Why not bootstrap the seeds: with n seeds the bootstrap draws from those n values, whose spread is the sample
    variance times (n - 1) / n (half of it with two seeds), and it treats that spread as known. With two seeds it can
    only reach the two seeds' own means, however far apart the next seed would land. Welch's interval widens by the
    t quantile for the few degrees of freedom (12.7 for one, 4.3 for two, against 1.96 for a known spread), which is
    what estimating a spread from 2-5 values costs; it does not assume the two systems' spreads are equal.

    A system evaluated once that has no seed noise (`a_deterministic` or `b_deterministic`: a prompted LLM with
    greedy decoding) contributes zero variance and no degrees of freedom. A trained system with one seed has an
    unknown seed variance, so there is no seed-level interval: ValueError, as for two systems with no seed
    variance at all (the item bootstrap is the interval then). The interval holds the seed noise on the evaluated
    rows only; the item bootstraps hold the row noise."""
    _check_level(level)
    parts = []  # (values, variance of their mean) per system
    for name, values, deterministic in (("a", a_seed_values, a_deterministic), ("b", b_seed_values, b_deterministic)):
        x = np.asarray(values, dtype=float)
        if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError(f"system {name}: expected a list of finite per-seed values, got {values!r}")
        if x.size == 1 and not deterministic:
            raise ValueError(f"system {name} has one seed: its seed variance is unknown, so there is no seed-level "
                             f"interval ({name}_deterministic=True is only for a system without seed noise)")
        parts.append((x, x.var(ddof=1) / x.size if x.size > 1 else 0.0))
    (a, var_a), (b, var_b) = parts
    difference, variance = float(a.mean() - b.mean()), float(var_a + var_b)
    if variance == 0:
        raise ValueError("neither system varies over its seeds: a seed-level interval needs seed variance")
    # Welch-Satterthwaite; a deterministic system (one value) adds no term
    df = float(variance ** 2 / sum(v ** 2 / (x.size - 1) for x, v in parts if x.size > 1))
    se = math.sqrt(variance)
    half = _t_quantile(level, df) * se
    return Interval(difference=difference, low=difference - half, high=difference + half, level=level, items=None,
                    languages=None, resamples=None, p_value=_t_two_sided_p(difference / se, df),
                    seeds=(a.size, b.size), df=df)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order: the k-th smallest of m is multiplied by m - k + 1,
    then each is raised to the largest adjusted value before it (so the order of the p-values is kept) and capped at
    1. Rejecting where the adjusted p-value is below alpha keeps the chance of any false "differs" in the whole table
    at most alpha, under any dependence between the pairs (they share systems and rows)."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any(~((p >= 0) & (p <= 1))):
        raise ValueError(f"p-values must be a list of numbers in [0, 1], got {list(p_values)}")
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (p.size - np.arange(p.size)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted.tolist()


def verdict(adjusted_p: float, interval: Interval, alpha: float = 0.05) -> str:
    """"differs" when the pair's Holm-adjusted p-value is below alpha and its interval excludes 0, else "no difference
    shown" (never "the same": a difference can be there and too small for these rows and seeds).

    The interval is the one shown beside the p-value, at level 1 - alpha. Its p-value and bounds come from the same
    draws (or t distribution), so an adjusted p-value below alpha, never smaller than the raw one, goes with an
    interval that excludes 0; requiring both keeps the verdict from reading more than either shows where the two
    disagree at the last draw. (A wider, Bonferroni interval at 1 - alpha / pairs makes the verdict Bonferroni's,
    stricter than Holm's.) An adjusted p-value below the interval's own raw one is a mismatch: ValueError."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if interval.p_value is not None and adjusted_p < interval.p_value:
        raise ValueError(f"the adjusted p-value {adjusted_p} is below the interval's raw p-value "
                         f"{interval.p_value}: they belong to different comparisons")
    return DIFFERS if adjusted_p < alpha and interval.excludes_zero else NO_DIFFERENCE


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
    over = (f"{interval.items} items" if interval.items is not None
            else f"seeds ({interval.seeds[0]} vs {interval.seeds[1]})" if interval.seeds else "seeds")
    where = f"{d:+.1f} points, {interval.level:.0%} interval [{lo:+.1f}, {hi:+.1f}] over {over}"
    if interval.low > 0:
        return f"{a} is better than {b}: {where}; the interval excludes 0."
    if interval.high < 0:
        return f"{a} is worse than {b}: {where}; the interval excludes 0."
    return f"{a} and {b} are not distinguishable: {where}; the interval contains 0."


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")


def _item_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n): how often each of n items is drawn (with replacement, n draws) in each resample, so that a
    resample's mean of per-item values is `counts @ values / n` (one product instead of a gathered copy)."""
    draws = rng.integers(0, n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)


def _from_draws(difference: float, differences: np.ndarray, level: float, **sizes) -> Interval:
    """The Interval of a bootstrap: its point estimate, percentile bounds and p-value from the resampled
    differences; `sizes` are its items, languages and seeds."""
    low, high = _percentiles(differences, level)
    return Interval(difference=difference, low=low, high=high, level=level, resamples=differences.size,
                    p_value=_bootstrap_p(differences), **sizes)


def _bootstrap_p(differences: np.ndarray) -> float:
    """Two-sided p-value for "difference == 0" from the bootstrap's differences: twice the share of draws on the far
    side of 0 (at or beyond it) from the point estimate's side, each count + 1 over draws + 1 so that it is never 0,
    capped at 1. It inverts the percentile interval: p < 1 - level where that interval excludes 0. Swapping the
    systems negates the draws and leaves it unchanged. A draw within 1e-12 of 0 counts as 0: a draw that is not 0 is
    at least 1 / (items x languages x seeds of a x seeds of b) away, and rounding must not move a tie."""
    n = differences.size + 1
    at_or_below = np.count_nonzero(differences <= 1e-12) + 1
    at_or_above = np.count_nonzero(differences >= -1e-12) + 1
    return min(1.0, 2 * min(at_or_below, at_or_above) / n)


def _t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df (any positive real) degrees of freedom: I_x(df/2, 1/2), x = df/(df+t²)."""
    return _incomplete_beta(df / 2, 0.5, df / (df + t * t))


def _t_quantile(level: float, df: float) -> float:
    """The t with P(|T| <= t) = level (0.95 and df=4: 2.776), by bisection on `_t_two_sided_p`, which falls in t."""
    low, high = 0.0, 1.0
    while _t_two_sided_p(high, df) > 1 - level:
        low, high = high, 2 * high
    while high - low > 1e-12 * high:
        mid = (low + high) / 2
        low, high = (mid, high) if _t_two_sided_p(mid, df) > 1 - level else (low, mid)
    return (low + high) / 2


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz), on the side of
    x where the fraction converges fast (I_x(a, b) = 1 - I_{1-x}(b, a))."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    front = math.exp(a * math.log(x) + b * math.log1p(-x) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)) / a
    tiny, f, c, d = 1e-300, 1.0, 1.0, 0.0
    for i in range(1000):
        m = i // 2
        if i == 0:
            term = 1.0
        elif i % 2:
            term = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            term = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d, c = 1.0 + term * d, 1.0 + term / c
        d, c = 1.0 / (d if abs(d) > tiny else tiny), (c if abs(c) > tiny else tiny)  # Lentz: never divide by 0
        f *= c * d
        if abs(1.0 - c * d) < 1e-15:
            return front * (f - 1.0)
    raise ArithmeticError(f"the incomplete beta I_{x}({a}, {b}) did not converge")


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
