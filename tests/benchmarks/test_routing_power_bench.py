"""benchmarks/routing_power.py: test-sized samples keep the test split's size and task mix, an oracle's cost
share is what the arithmetic says, and the percentiles count "not reached" as a value."""

from __future__ import annotations

from collections import Counter

import numpy as np

from tests.benchmarks import load_benchmark
from turnout.eval.table import RoutingTable


def table(n: int, tasks: list[str], seed: int = 0) -> RoutingTable:
    """Two models: `cheap` (cost 1) right on half the prompts, `dear` (cost 10) right on all."""
    rng = np.random.default_rng(seed)
    cheap = (rng.random(n) < 0.5).astype(float)
    scores = np.stack([cheap, np.ones(n)], axis=1)
    costs = np.tile([1.0, 10.0], (n, 1))
    return RoutingTable([f"p{i}" for i in range(n)], ["cheap", "dear"], scores, costs, tasks, ["train"] * n)


def test_samples_have_the_test_splits_size_and_prompts_per_task():
    b = load_benchmark("routing_power")
    train = table(300, ["a"] * 200 + ["b"] * 100)
    test = table(30, ["a"] * 10 + ["b"] * 20)
    for rows in b.samples_like(train, test, 20):
        assert len(rows) == 30
        assert Counter(train.tasks[i] for i in rows) == {"a": 10, "b": 20}


def test_an_oracle_pays_the_dear_model_only_where_the_cheap_one_fails():
    b = load_benchmark("routing_power")
    data = table(400, ["a"] * 400)
    shares = b.cost_shares(data, data.scores.copy())  # predicts every outcome
    wrong = 1 - data.scores[:, 0].mean()
    # 100 % of the dear model's quality: the cheap model where it is right, the dear one elsewhere
    assert abs(shares[1.0] - (1 * (1 - wrong) + 10 * wrong) / 10) < 1e-9
    assert shares[0.95] < shares[1.0]
    blind = b.cost_shares(data, np.tile([0.5, 0.9], (400, 1)))  # prompt-blind: only mixes of the two models
    assert blind[1.0] == 1.0 and blind[0.95] > shares[0.95]


def test_percentiles_count_not_reached_as_the_highest_value():
    b = load_benchmark("routing_power")
    s = b.summary([0.1] * 90 + [float("inf")] * 10)
    assert s["median"] == 0.1 and s["p5"] == 0.1 and s["p95"] == float("inf")


def test_power_reports_each_target_against_its_goal():
    b = load_benchmark("routing_power")
    train = table(300, ["a"] * 300)
    test = table(50, ["a"] * 50, seed=1)
    result = b.power(train, test, train.scores.copy(), 30)
    assert result["0.95"]["goal"] == 0.15 and result["1.0"]["goal"] == 0.40
    assert 0 <= result["0.95"]["share_meeting_goal"] <= 1
    assert result["cheapest_share"]["test"] == test.scores[:, 0].mean()
