"""Metric definitions checked on small hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from turnout.eval.metrics import (aiq, apgr, baselines, cost_for_quality, cpt, quality_at_cost, reference, sweep,
                                  upper_hull)
from turnout.eval.table import RoutingTable


@pytest.fixture
def table():
    # weak costs 1, strong 10; weak solves prompts 0 and 3, strong solves 0, 1, 2
    scores = np.array([[1, 1], [0, 1], [0, 1], [1, 0]], dtype=float)
    costs = np.array([[1, 10]] * 4, dtype=float)
    return RoutingTable(["p0", "p1", "p2", "p3"], ["weak", "strong"], scores, costs, splits=["test"] * 4)


def test_reference_models(table):
    ref = reference(table)
    assert (ref.weak, ref.strong) == (0, 1)
    assert ref.single == [(1.0, 0.5), (10.0, 0.75)] and (ref.c_min, ref.c_max) == (1.0, 10.0)


def test_upper_hull_drops_dominated_and_concave_points():
    assert upper_hull([(1, 0.5), (2, 0.4), (3, 0.55), (5.5, 1.0), (10, 0.75)]) == [(1, 0.5), (5.5, 1.0)]


def test_aiq(table):
    ref = reference(table)
    assert aiq([(1, 0.5)], ref) == pytest.approx(0.5)
    assert aiq([(10, 0.75)], ref) == pytest.approx(0.0, abs=1e-3)  # nothing below its own cost
    assert aiq([(5.5, 1.0)], ref) == pytest.approx(0.5, abs=1e-3)
    assert aiq([(1, 0.5), (10, 0.75)], ref) == pytest.approx(0.625)  # the straight mix: mean of the ends
    # hull (0, .5) → (.5, 1.0) then flat: .5·(.5+1)/2 + .5·1
    assert aiq([(1, 0.5), (5.5, 1.0), (10, 0.75)], ref) == pytest.approx(0.875)


def test_apgr_and_cpt_on_call_shares(table):
    ref = reference(table)
    points, shares = [(1, 0.5), (5.5, 1.0), (10, 0.75)], [0.0, 0.5, 1.0]
    # PGR = (q − .5) / .25 → 0, 2, 1; running max → 0, 2, 2; at x = k/20: min(2, 4x)
    expected = np.mean([min(2.0, 4 * k / 20) for k in range(21)])
    assert apgr(points, ref, shares) == pytest.approx(expected)
    assert cpt(points, ref, 0.5, shares) == pytest.approx(0.125)
    assert cpt(points, ref, 0.8, shares) == pytest.approx(0.2)
    assert apgr([(1, 0.5), (10, 0.75)], ref, [0.0, 1.0]) == pytest.approx(0.5)


def test_quality_at_cost_and_cost_for_quality(table):
    points = [(1, 0.5), (5.5, 1.0)]
    assert quality_at_cost(points, 3.25) == pytest.approx(0.75)
    assert cost_for_quality(points, 0.95 * 0.75) == pytest.approx(1 + 4.5 * (0.7125 - 0.5) / 0.5)
    assert cost_for_quality(points, 1.1) is None


def test_oracle_and_single_baselines(table):
    b = baselines(table)
    # the oracle picks the cheapest model that solves each prompt: weak, strong, strong, weak
    assert max(q for _, q in b["oracle"]["curve"]) == pytest.approx(1.0)
    assert [c for c, q in b["oracle"]["curve"] if q == pytest.approx(1.0)][0] == pytest.approx(5.5)
    assert b["single:weak"]["curve"] == [[1.0, 0.5]] and b["single:strong"]["curve"] == [[10.0, 0.75]]
    assert b["random"]["aiq"] <= b["oracle"]["aiq"]


def test_sweep_runs_from_quality_only_to_cheapest_over_servable_weights(table):
    from turnout.eval.metrics import KNOB_GRID

    assert KNOB_GRID.min() == 0.0  # a server rejects cost_weight < 0, so the curve has no such point
    predicted = table.scores.copy()
    points, shares = sweep(table, predicted)
    assert points[0] == (pytest.approx(5.5), pytest.approx(1.0))  # λ = 0: best model, cheapest among ties
    assert points[-1] == (pytest.approx(1.0), pytest.approx(0.5)) and shares[-1] == 0.0  # λ → ∞: the cheapest
    # a router that prefers the weak model even at λ = 0 never reaches the dearest: its curve stops there
    timid = np.array([[0.6, 0.5]] * 4)
    assert max(c for c, _ in sweep(table, timid)[0]) == pytest.approx(1.0)


def test_gain_over_random(table):
    from turnout.eval.metrics import gain_over_random, random_quality

    ref = reference(table)
    assert random_quality(ref, 5.5) == pytest.approx(0.625)
    straight = gain_over_random([(1, 0.5), (10, 0.75)], ref)  # the random mix itself: no gain anywhere
    assert straight["min"] == pytest.approx(0.0) and not straight["beats_random_everywhere"]
    better = gain_over_random([(1, 0.5), (5.5, 1.0), (10, 0.75)], ref)
    assert better["beats_random_everywhere"] and better["mean"] > 0.2
    # a router that cannot go below cost 4 scores 0 at lower budgets: it does not beat random there
    assert not gain_over_random([(4, 0.9), (10, 0.95)], ref)["beats_random_everywhere"]
    assert gain_over_random([(4, 0.9), (10, 0.95)], ref)["min"] < -0.4


def test_cost_shares_for_95_and_100_percent_of_the_best_model(table):
    from turnout.eval.metrics import summary

    # best single: strong (quality 0.75, cost 10); the curve mixes weak (1, 0.5) and an oracle-like (5.5, 1.0)
    s = summary([(1, 0.5), (5.5, 1.0)], reference(table))
    assert s["cost_at_100pct_best_single"] == pytest.approx(1 + 4.5 * 0.25 / 0.5)
    assert s["cost_share_at_100pct"] == pytest.approx(s["cost_at_100pct_best_single"] / 10)
    assert s["cost_share_at_95pct"] == pytest.approx(s["cost_at_95pct_best_single"] / 10)
    assert summary([(1, 0.5)], reference(table))["cost_share_at_100pct"] is None  # never reaches it
