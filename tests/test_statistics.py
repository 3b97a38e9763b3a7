"""The comparison's statistics: known answers of the paired bootstrap, item-level resampling, determinism, the
seed-level Welch interval, Holm's correction and the verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layalign.evaluation.statistics import (
    DEFAULT_RESAMPLES,
    Interval,
    _t_quantile,
    _t_two_sided_p,
    aligned,
    correctness,
    describe,
    holm,
    item_of_id,
    paired_bootstrap,
    seed_and_item_bootstrap,
    seed_level_interval,
    seed_summary,
    verdict,
)


def test_identical_systems_differ_by_zero_with_an_interval_of_width_zero():
    a = np.random.default_rng(1).integers(0, 2, size=(50, 15)).astype(float)
    result = paired_bootstrap(a, a.copy(), resamples=500)
    assert result.difference == 0 and result.low == 0 and result.high == 0
    assert not result.excludes_zero
    assert "not distinguishable" in describe(result, "A", "B")


def test_right_on_every_item_against_wrong_on_every_item_is_a_difference_of_one():
    right, wrong = np.ones((30, 15)), np.zeros((30, 15))
    result = paired_bootstrap(right, wrong, resamples=500)
    assert (result.difference, result.low, result.high) == (1.0, 1.0, 1.0)
    assert result.excludes_zero and "A is better than B" in describe(result, "A", "B")
    assert "worse" in describe(paired_bootstrap(wrong, right, resamples=500), "B", "A")


def test_resampling_keeps_the_languages_of_an_item_together():
    # every item: A right in language 0 and wrong in language 1, B the opposite. Per item the difference is 0, so
    # resampling whole items gives 0 every time; resampling single rows would not
    a = np.tile([1.0, 0.0], (40, 1))
    b = np.tile([0.0, 1.0], (40, 1))
    result = paired_bootstrap(a, b, resamples=2000, seed=3)
    assert result.low == result.high == result.difference == 0.0
    assert (result.items, result.languages) == (40, 2)


def test_a_noisy_difference_gets_an_interval_around_it():
    rng = np.random.default_rng(0)
    a = (rng.random((200, 15)) < 0.6).astype(float)
    b = (rng.random((200, 15)) < 0.4).astype(float)
    result = paired_bootstrap(a, b, resamples=2000)
    assert result.low < result.difference < result.high
    assert result.low > 0.1 and result.high < 0.3 and result.excludes_zero


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    rng = np.random.default_rng(0)
    a, b = (rng.random((60, 15)) < 0.5).astype(float), (rng.random((60, 15)) < 0.5).astype(float)
    first, again = paired_bootstrap(a, b, seed=7, resamples=1000), paired_bootstrap(a, b, seed=7, resamples=1000)
    assert first == again
    assert paired_bootstrap(a, b, seed=8, resamples=1000) != first


def test_seeds_are_averaged_before_resampling():
    seeds = np.stack([np.ones((10, 3)), np.zeros((10, 3))])  # (seeds, items, languages): mean 0.5 everywhere
    result = paired_bootstrap(seeds, np.full((10, 3), 0.5), resamples=200)
    assert result.difference == result.low == result.high == 0.0
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap(np.ones((10, 3)), np.ones((9, 3)))


def test_rows_become_item_by_language_matrices_over_the_shared_cells():
    def rows(lang_right):
        return [{"id": f"xnli-{lang}-{i}", "lang": lang, "correct": right(i)} for lang, right in lang_right.items()
                for i in range(4)]

    a = correctness(rows({"en": lambda i: True, "sw": lambda i: i % 2 == 0}))
    b = correctness(rows({"en": lambda i: False, "sw": lambda i: True}))
    b.pop(("3", "sw"))  # b never answered item 3 in Swahili: item 3 leaves the paired comparison
    (ma, mb), items, langs = aligned([[a], [b]])
    assert items == ["0", "1", "2"] and langs == ["en", "sw"]
    assert ma.tolist() == [[1, 1], [1, 0], [1, 1]] and mb.tolist() == [[0, 1], [0, 1], [0, 1]]
    assert item_of_id("xnli-zh-17") == "17"


def test_resampling_seeds_too_keeps_the_estimate_and_adds_the_seed_noise():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 2, size=(3, 80, 15)).astype(float), rng.integers(0, 2, size=(2, 80, 15)).astype(float)
    items, both = paired_bootstrap(a, b, resamples=2000), seed_and_item_bootstrap(a, b, resamples=2000)
    assert both.difference == pytest.approx(items.difference) and (both.items, both.languages) == (80, 15)
    # one seed each: no seed noise, and the same item draws, so the same interval
    one, ref = seed_and_item_bootstrap(a[:1], b[:1], resamples=2000), paired_bootstrap(a[:1], b[:1], resamples=2000)
    assert (one.low, one.high) == pytest.approx((ref.low, ref.high))
    # seeds that disagree completely: averaged first they look like a sure tie; resampled, anything between
    split = np.stack([np.ones((40, 15)), np.zeros((40, 15))])
    tie = np.full((1, 40, 15), 0.5)
    assert paired_bootstrap(split, tie, resamples=2000).high == 0.0
    wide = seed_and_item_bootstrap(split, tie, resamples=2000)
    assert (wide.difference, wide.low, wide.high) == (0.0, -0.5, 0.5) and not wide.excludes_zero
    with pytest.raises(ValueError, match="same rows"):
        seed_and_item_bootstrap(a, b[:, :40], resamples=10)


def test_aligned_can_keep_the_seeds_apart():
    seeds = [{("1", "en"): 1.0, ("2", "en"): 0.0}, {("1", "en"): 0.0, ("2", "en"): 0.0}]
    (kept,), items, langs = aligned([seeds], keep_seeds=True)
    assert kept.shape == (2, 2, 1) and kept[:, 0, 0].tolist() == [1.0, 0.0] and (items, langs) == (["1", "2"], ["en"])
    (mean,), _, _ = aligned([seeds])
    assert mean.tolist() == [[0.5], [0.0]]


def test_seed_summary():
    assert seed_summary([40.0, 42.0, 44.0]) == {"mean": 42.0, "std": 2.0, "min": 40.0, "max": 44.0, "n": 3}
    assert seed_summary([33.0])["std"] is None


def test_the_default_resamples_are_at_least_ten_thousand():
    assert DEFAULT_RESAMPLES >= 10_000


def test_the_bootstrap_p_value_counts_the_draws_across_zero_and_is_never_zero():
    # no draw reaches 0: p is (0 + 1) / (draws + 1), twice (two-sided)
    right, wrong = np.ones((30, 15)), np.zeros((30, 15))
    assert paired_bootstrap(right, wrong, resamples=999).p_value == 2 / 1000
    # every draw is 0: nothing points away from "no difference", p = 1
    a = np.random.default_rng(1).integers(0, 2, size=(50, 15)).astype(float)
    assert paired_bootstrap(a, a.copy(), resamples=500).p_value == 1.0
    # by hand: 3 items with differences +1, 0, 0 (one language). A resample's mean is <= 0 only when it never
    # draws the first item, with chance (2/3)^3 = 8/27, and always >= 0: p = 2 x 8/27 = 0.593
    result = paired_bootstrap(np.array([[1.0], [0.0], [0.0]]), np.zeros((3, 1)), resamples=20_000, seed=5)
    assert result.p_value == pytest.approx(16 / 27, abs=0.03)  # the draws' share has a standard error of 0.0065


def test_p_values_lie_in_zero_one_and_do_not_depend_on_the_order_of_the_systems():
    rng = np.random.default_rng(4)
    for shift in (0.0, 0.05, 0.1, 0.3):
        a = (rng.random((3, 80, 15)) < 0.5 + shift).astype(float)
        b = (rng.random((2, 80, 15)) < 0.5).astype(float)
        ab, ba = paired_bootstrap(a, b, resamples=3000, seed=2), paired_bootstrap(b, a, resamples=3000, seed=2)
        assert 0 < ab.p_value <= 1 and ab.p_value == ba.p_value
        assert (ab.low, ab.high) == pytest.approx((-ba.high, -ba.low))
        both = seed_and_item_bootstrap(a, b, resamples=3000, seed=2)
        assert 0 < both.p_value <= 1 and both.seeds == (3, 2)
        # the seeds' draws go to the other system when swapped: the same up to the bootstrap's noise
        assert seed_and_item_bootstrap(b, a, resamples=3000, seed=2).p_value == pytest.approx(both.p_value, abs=0.05)
        accs_a, accs_b = a.mean(axis=(1, 2)), b.mean(axis=(1, 2))
        t_ab, t_ba = seed_level_interval(accs_a, accs_b), seed_level_interval(accs_b, accs_a)
        assert 0 < t_ab.p_value <= 1 and t_ab.p_value == pytest.approx(t_ba.p_value, abs=1e-15)


def test_the_p_value_agrees_with_the_percentile_interval():
    # p < 1 - level exactly where the interval at that level excludes 0 (away from the edge, where the two count
    # the same draws differently by one)
    rng = np.random.default_rng(11)
    for shift in np.linspace(0, 0.12, 13):
        a = (rng.random((120, 5)) < 0.5 + shift).astype(float)
        b = (rng.random((120, 5)) < 0.5).astype(float)
        result = paired_bootstrap(a, b, resamples=4000, seed=1)
        if abs(result.p_value - 0.05) > 0.005:
            assert (result.p_value < 0.05) == result.excludes_zero


def test_holm_on_a_hand_worked_example():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # 0.5 x 2 capped at 1; 0.6 raised to it
    assert holm([0.02]) == [0.02] and holm([]) == []
    assert holm([0.01, 0.01, 0.2]) == pytest.approx([0.03, 0.03, 0.2])  # ties: 0.03, then max(0.03, 0.02)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([float("nan")])


def test_holm_never_lowers_a_p_value_and_keeps_their_order():
    p = np.random.default_rng(2).random(30) ** 3
    adjusted = np.array(holm(p))
    assert np.all(adjusted >= p) and np.all(adjusted <= 1)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)


def test_the_t_distribution_matches_its_closed_forms():
    # one degree of freedom (Cauchy): P(|T| >= t) = 1 - 2 atan(t) / pi; two: 1 - t / sqrt(2 + t^2)
    for t in (0.0, 0.3, 1.0, 4.0, 50.0):
        assert _t_two_sided_p(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-10, abs=1e-14)
        assert _t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10, abs=1e-14)
    for level in (0.8, 0.95, 0.99):
        assert _t_quantile(level, 1) == pytest.approx(math.tan(math.pi * level / 2), rel=1e-10)
        assert _t_quantile(level, 2) == pytest.approx(level * math.sqrt(2 / (1 - level * level)), rel=1e-10)
    # the printed tables' 97.5 % points, and the normal's at many degrees of freedom
    for df, t in ((4, 2.776), (10, 2.228), (30, 2.042), (100_000, 1.960)):
        assert _t_quantile(0.95, df) == pytest.approx(t, abs=5e-4)


def test_the_t_distribution_matches_scipy_at_fractional_degrees_of_freedom():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1.3, 2.59, 4.7, 17.2):
        assert _t_quantile(0.95, df) == pytest.approx(scipy_stats.t.ppf(0.975, df), rel=1e-9)
        for t in (0.2, 1.5, 6.0):
            assert _t_two_sided_p(t, df) == pytest.approx(2 * scipy_stats.t.sf(t, df), rel=1e-9)


def test_the_seed_level_interval_is_welchs_by_hand():
    # a: 40, 42, 44 %; b: 35, 37, 39 %: both sample variances s^2 = 0.0004, so each mean's v = 0.0004 / 3,
    # SE^2 = 2v and the Welch-Satterthwaite df = (2v)^2 / (v^2 / 2 + v^2 / 2) = 4; t(0.975, 4) = 2.7764451
    result = seed_level_interval([0.40, 0.42, 0.44], [0.35, 0.37, 0.39])
    half = 2.7764451 * math.sqrt(2 * 0.0004 / 3)
    assert result.difference == pytest.approx(0.05)
    assert (result.low, result.high) == pytest.approx((0.05 - half, 0.05 + half), abs=1e-7)
    assert result.df == pytest.approx(4.0) and result.seeds == (3, 3) and result.items is None
    # p from the same t: t = 0.05 / SE = 3.0619 on 4 df; P(|T| >= t) for 4 df is, in closed form,
    # 1 - (3/2 u - 1/2 u^3) with u = t / sqrt(4 + t^2)
    t = 0.05 / math.sqrt(2 * 0.0004 / 3)
    u = t / math.sqrt(4 + t * t)
    assert result.p_value == pytest.approx(1 - (1.5 * u - 0.5 * u ** 3), rel=1e-9)
    assert "over seeds (3 vs 3)" in describe(result, "A", "B")


def test_a_deterministic_system_adds_no_variance_and_a_one_seed_trained_one_no_interval():
    # b evaluated once without seed noise: SE^2 = s_a^2 / 3, df = 3 - 1 = 2, t(0.975, 2) = 4.3026527
    result = seed_level_interval([0.40, 0.42, 0.44], [0.30], b_deterministic=True)
    half = 4.3026527 * math.sqrt(0.0004 / 3)
    assert (result.difference, result.df, result.seeds) == (pytest.approx(0.12), pytest.approx(2.0), (3, 1))
    assert (result.low, result.high) == pytest.approx((0.12 - half, 0.12 + half), abs=1e-7)
    with pytest.raises(ValueError, match="system b has one seed"):
        seed_level_interval([0.40, 0.42, 0.44], [0.30])
    with pytest.raises(ValueError, match="seed variance"):
        seed_level_interval([0.40], [0.30], a_deterministic=True, b_deterministic=True)
    with pytest.raises(ValueError, match="per-seed values"):
        seed_level_interval([], [0.30, 0.31])
    with pytest.raises(ValueError, match="system a: expected a list of finite"):
        seed_level_interval([0.4, float("nan")], [0.30, 0.31])


def test_two_seeds_get_a_wider_seed_interval_than_their_bootstrap():
    # the case the Welch interval is for: two seeds per system. Resampling them gives at most their range; t with
    # about 2 degrees of freedom widens it
    split_a = np.stack([np.full((40, 15), 0.5), np.full((40, 15), 0.6)])
    split_b = np.stack([np.full((40, 15), 0.45), np.full((40, 15), 0.5)])
    boot = seed_and_item_bootstrap(split_a, split_b, resamples=4000)
    welch = seed_level_interval(split_a.mean(axis=(1, 2)), split_b.mean(axis=(1, 2)))
    assert welch.difference == pytest.approx(boot.difference)
    assert welch.high - welch.low > 3 * (boot.high - boot.low)


def test_a_verdict_needs_the_adjusted_p_value_below_alpha_and_an_interval_without_zero():
    clear = Interval(0.05, 0.02, 0.08, 0.95, 200, 15, 10_000, p_value=0.001)
    assert verdict(0.01, clear) == "differs"
    assert verdict(0.06, clear) == "no difference shown"  # survived alone, not after the table's correction
    assert verdict(0.01, clear, alpha=0.005) == "no difference shown"
    straddles = Interval(0.01, -0.01, 0.03, 0.95, 200, 15, 10_000, p_value=0.03)
    assert verdict(0.04, straddles) == "no difference shown"
    with pytest.raises(ValueError, match="different comparisons"):
        verdict(0.0001, clear)
    with pytest.raises(ValueError, match="alpha"):
        verdict(0.01, clear, alpha=1.5)
