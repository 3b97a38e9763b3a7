"""The comparison's statistics: known answers of the paired bootstrap, item-level resampling, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from layalign.evaluation.statistics import (
    aligned,
    correctness,
    describe,
    item_of_id,
    paired_bootstrap,
    seed_and_item_bootstrap,
    seed_summary,
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
