"""benchmarks/online_bounds.py's bounds on tables whose answer is known: two groups of requests, each with its own
best model, against a baseline that gets one group wrong."""

from __future__ import annotations

import numpy as np

from tests.benchmarks import load_benchmark


def bounds():
    return load_benchmark("online_bounds")


def two_groups(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, group, reward): group 0 near one direction, where model 0 earns 1 and model 1 nothing;
    group 1 near another, the reverse; model 2 earns 0.1 everywhere."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, size=n)
    x = np.eye(4)[group] * 3.0 + 0.05 * rng.standard_normal((n, 4))
    reward = np.zeros((n, 3))
    reward[group == 0, 0] = 1.0
    reward[group == 1, 1] = 1.0
    reward[:, 2] = 0.1
    return x, group, reward


def test_cold_full_information_finds_each_groups_model():
    module = bounds()
    x, _, reward = two_groups(3200)
    offline = reward[:, 0]  # a router that always picks model 0: right on group 0 only
    found = module.cold_full_information(x, reward, offline)
    lo, hi = module.WINDOW
    for seed, ratio, single in zip(module.ORDERS, found["clusters_greedy"], found["best_single_model"]):
        window = np.random.default_rng(seed).permutation(len(x))[lo:hi]
        assert ratio == round(len(window) / offline[window].sum(), 4)  # every window row earns 1
        assert single < 0.6 * ratio  # one model for both groups earns about what the router does: half the rows
    assert module.cold_full_information(x[:2999], reward[:2999], offline[:2999]) is None  # shorter than the window


def test_router_or_model_keeps_the_router_where_it_is_right():
    module = bounds()
    _, group, reward = two_groups(400)
    baseline = reward[:, 0]
    halves = np.random.default_rng(1).permutation(400)
    a, b = halves[:200], halves[200:]
    # per group: on group 1 model 1 beats the baseline, on group 0 the baseline (model 0) is best already
    assert module.router_or_model(group, reward, baseline, a, b) == len(group) / baseline.sum()
    # a baseline that is right on every row is kept in every group
    oracle = reward.max(axis=1)
    assert module.router_or_model(group, reward, oracle, a, b) == 1.0
    assert module.router_or_model(np.zeros(400, dtype=int), reward, oracle, a, b) == 1.0


def test_near_ties_flipped_only_where_the_runner_up_pays():
    module = bounds()
    _, group, reward = two_groups(400)
    prior = np.zeros((400, 3))
    prior[:, 0] = 0.5
    prior[:, 1] = np.where(group == 1, 0.495, 0.2)  # a near tie on group 1, where the runner-up is right
    halves = np.random.default_rng(2).permutation(400)
    found = module.flip_near_ties(group, reward, prior, halves[:200], halves[200:])
    baseline = reward[:, 0].sum()
    assert found["margin<0.01"] == round(len(group) / baseline, 4)  # every group-1 row flipped, and right
    prior[:, 1] = np.where(group == 1, 0.45, 0.2)  # no near tie under 0.05: nothing flipped
    assert module.flip_near_ties(group, reward, prior, halves[:200], halves[200:])["margin<0.02"] == 1.0
