"""`mf`: RouteLLM's matrix factorisation learned from pairwise wins (turnout/selection/mf.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.selection.paper_helpers import (
    check_gradient,
    train_and_evaluate,
    write_earlier_artifact,
)
from turnout.config import ConfigError
from turnout.eval.table import RoutingTable
from turnout.selection import selectors
from turnout.selection.base import build_selector
from turnout.selection.mf import MatrixFactorizationSelector, battles, pairwise_loss


def test_battles_from_scores_drop_or_halve_ties():
    scores = np.array([[1.0, 0.0, 1.0], [0.2, 0.7, 0.7]])
    rows, a, b, label = battles(scores, "drop")
    assert list(zip(rows, a, b, label)) == [(0, 0, 1, 1.0), (0, 1, 2, 0.0), (1, 0, 1, 0.0), (1, 0, 2, 0.0)]
    rows, a, b, label = battles(scores, "half")
    assert len(rows) == 6 and label[(rows == 0) & (a == 0) & (b == 2)] == 0.5 and label[(rows == 1) & (a == 1)] == 0.5


def test_pairwise_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 5))
    scores = rng.integers(0, 2, size=(7, 3)).astype(float)
    pairs = battles(scores, "half")
    params = [rng.normal(size=(5, 4)), rng.normal(size=4), rng.normal(size=(3, 4)), rng.normal(size=4)]
    _, grads = pairwise_loss(params, x, pairs, 0.01)
    check_gradient(lambda: pairwise_loss(params, x, pairs, 0.01)[0], params, grads, rng)


def test_winner_ranks_above_loser_on_a_toy_set():
    # three models; "b" beats "a" and "c" on even prompts, "c" beats both on odd ones; "a" never wins
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 16))
    x = np.vstack([centres[i % 2] + 0.1 * rng.normal(size=16) for i in range(40)]).astype(np.float32)
    scores = np.array([[0, 1, 0] if i % 2 == 0 else [0, 0, 1] for i in range(40)], dtype=float)
    table = RoutingTable([f"p{i}" for i in range(40)], ["a", "b", "c"], scores, np.ones_like(scores),
                         splits=["train"] * 40)
    mf = MatrixFactorizationSelector(dim=8, epochs=200).fit(table, x)
    delta, quality = mf.delta(x), mf.predict_quality(x)
    even, odd = np.arange(40) % 2 == 0, np.arange(40) % 2 == 1
    assert (delta[even, 1] > delta[even, 0]).all() and (delta[even, 1] > delta[even, 2]).all()
    assert (delta[odd, 2] > delta[odd, 0]).all() and (delta[odd, 2] > delta[odd, 1]).all()
    assert (np.argsort(quality, axis=1) == np.argsort(delta, axis=1)).all()  # predict_quality keeps δ's order
    assert np.allclose(quality.mean(axis=1), 0.5)  # win rates against the others: they average to ½


def test_two_models_quality_gap_is_the_win_rate():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 8)).astype(np.float32)
    scores = rng.integers(0, 2, size=(12, 2)).astype(float)
    table = RoutingTable([f"p{i}" for i in range(12)], ["strong", "weak"], scores, np.ones_like(scores),
                         splits=["train"] * 12)
    mf = MatrixFactorizationSelector(dim=4, epochs=20).fit(table, x)
    delta, quality = mf.delta(x), mf.predict_quality(x)
    win = 1 / (1 + np.exp(-(delta[:, 0] - delta[:, 1])))
    assert np.allclose(quality[:, 0] - quality[:, 1], 2 * win - 1, atol=1e-6)


def test_train_and_evaluate_end_to_end(tmp_path):
    result = train_and_evaluate("mf", {"epochs": 60, "dim": 16}, tmp_path)
    assert not result["prompt_blind"] and 0 < result["aiq"] <= 1 and result["ci95"]["aiq"][0] is not None


def test_an_artifact_of_the_earlier_pointwise_mf_names_what_to_retrain(tmp_path):
    old = write_earlier_artifact(tmp_path / "mf", "mf", {"dim": 64, "epochs": 300, "lr": 0.05, "l2": 1e-4,
                                                          "seed": 0, "cost_weight": 0.0})
    with pytest.raises(ValueError, match="retrain it: turnout train --router mf"):
        selectors.get("mf").load(old)
    with pytest.raises(ConfigError, match="pointwise"):
        build_selector("mf", {}, "decisions[0].algorithm", str(old), ["a", "b"])
