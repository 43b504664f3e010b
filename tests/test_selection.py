"""Selection rules with injected scores: margins (negative scores too), SimANS kernel, seeded sampling."""

import numpy as np
import pytest

from negforge.config import SelectionConfig
from negforge.mining.pool import query_rng, random_rows
from negforge.mining.selection import margin_advice, margin_reason, sample, simans_weights


def test_relative_margin_on_positive_scores():
    cfg = SelectionConfig(relative_margin=0.05)
    assert margin_reason(0.96, 1.0, cfg) == "relative_margin"  # above 95% of the positive
    assert margin_reason(0.94, 1.0, cfg) is None


def test_relative_margin_stays_right_for_negative_scores():
    # Naive pos * (1 - r) would put the threshold *above* a negative positive score (-2 * 0.95 = -1.9).
    cfg = SelectionConfig(relative_margin=0.05)
    assert margin_reason(-1.95, -2.0, cfg) == "relative_margin"  # scores above the positive are never safe
    assert margin_reason(-2.05, -2.0, cfg) == "relative_margin"  # threshold is -2.1
    assert margin_reason(-2.2, -2.0, cfg) is None


def test_absolute_margin_and_score_bounds():
    cfg = SelectionConfig(absolute_margin=0.1, max_score=0.9, min_score=0.2)
    assert margin_reason(0.95, 2.0, cfg) == "above_max_score"
    assert margin_reason(0.1, 2.0, cfg) == "below_min_score"
    assert margin_reason(0.55, 0.6, cfg) == "absolute_margin"
    assert margin_reason(0.45, 0.6, cfg) is None


def test_nan_positive_score_skips_margins_only():
    cfg = SelectionConfig(relative_margin=0.05, max_score=0.5)
    assert margin_reason(0.4, float("nan"), cfg) is None
    assert margin_reason(0.6, float("nan"), cfg) == "above_max_score"


def test_simans_kernel_peaks_at_positive_score_plus_b():
    scores = np.linspace(0, 1, 101)
    w = simans_weights(scores, 0.7, a=20, b=-0.1)
    assert pytest.approx(w.sum()) == 1.0
    assert scores[int(np.argmax(w))] == pytest.approx(0.6)
    assert w[60] > w[90] and w[60] > w[10]


def test_sampling_top_uniform_simans():
    scores = np.linspace(1, 0, 30)
    cfg = SelectionConfig(num_negatives=5)
    assert list(sample(scores, 5, cfg, 1.0, np.random.default_rng(0))) == [0, 1, 2, 3, 4]
    cfg_u = SelectionConfig(sampling="uniform")
    a = sample(scores, 5, cfg_u, 1.0, query_rng(13, "q1"))
    b = sample(scores, 5, cfg_u, 1.0, query_rng(13, "q1"))
    c = sample(scores, 5, cfg_u, 1.0, query_rng(14, "q1"))
    assert list(a) == list(b) and len(set(a)) == 5 and list(a) == sorted(a)
    assert list(a) != list(c)
    cfg_s = SelectionConfig(sampling="simans", simans={"a": 200.0, "b": 0.0})
    picks = np.concatenate([sample(scores, 3, cfg_s, 0.5, query_rng(s, "q")) for s in range(50)])
    # the kernel concentrates around the positive's score (0.5 sits at index ~14.5), not at the top
    assert abs(np.median(picks) - 14.5) <= 3
    assert (picks < 5).mean() < 0.05


def test_simans_underflow_still_returns_k():
    scores = np.array([100.0, 50.0, 0.5, -100.0])
    cfg = SelectionConfig(sampling="simans", simans={"a": 1000.0})
    out = sample(scores, 3, cfg, 0.5, np.random.default_rng(0))
    assert len(out) == 3 and len(set(out)) == 3


def test_fewer_candidates_than_asked_returns_all():
    assert list(sample(np.array([0.3, 0.2]), 5, SelectionConfig(), 1.0, np.random.default_rng(0))) == [0, 1]


def test_random_rows_are_distinct_seeded_and_exclude():
    rng = np.random.default_rng(1)
    rows = random_rows(50, 10, {1, 2, 3}, rng)
    assert len(set(rows)) == 10 and not ({1, 2, 3} & set(rows))
    assert random_rows(5, 10, {0, 1}, np.random.default_rng(0)) != []
    assert sorted(random_rows(5, 10, {0, 1}, np.random.default_rng(0))) == [2, 3, 4]


def test_margin_advice_fires_only_when_margins_starve_the_run():
    sel = SelectionConfig(depth=100)
    # NFCorpus with SciFact's recipe (benchmarks/quality.py): 432 of 500 short, margins dropped 45,392 of 50,000
    starved = {"pool": 74262, "below_window": 24262, "relative_margin": 44051, "relative_margin_dense": 1341,
               "window": 4608, "selected": 343}  # fmt: skip
    note = margin_advice(starved, 432, 500, sel)
    assert note is not None
    assert "432 of 500 queries" in note and "45392 of the 50000" in note and "(91%)" in note
    assert "selection.depth (now 100)" in note
    # SciFact with the same recipe: 50 of 809 short, margins dropped 14,415 of 80,900: no note
    healthy = {"relative_margin": 8484, "relative_margin_dense": 5931, "window": 66485}
    assert margin_advice(healthy, 50, 809, sel) is None
    # many short queries for another reason (a tiny corpus, not the margins): no note
    assert margin_advice({"relative_margin": 10, "window": 90}, 400, 500, sel) is None
    assert margin_advice({}, 0, 0, sel) is None
