"""`routerdc`: RouterDC's two contrastive losses over a frozen encoder (turnout/selection/contrastive*.py)."""

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
from turnout.selection.contrastive import RouterDCSelector
from turnout.selection.contrastive_loss import (
    contrastive_masks,
    dual_contrastive_loss,
    sample_pairs,
)
from turnout.selection.learned import normalise_rows


def test_masks_take_the_best_and_worst_and_skip_ties():
    scores = np.array([[1.0, 0.0, 0.5, 0.2], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    positive, negative = contrastive_masks(scores, top_k=3, last_k=3)  # at most half of 4 models each
    assert positive[0].tolist() == [True, False, True, False] and negative[0].tolist() == [False, True, False, True]
    assert not positive[1].any() and not negative[1].any()  # every model the same: nothing to learn
    assert positive[2].tolist() == [False, True, True, False] and negative[2].tolist() == [True, False, False, True]


def test_sample_pairs_stay_within_and_across_clusters():
    clusters = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    positive, negatives = sample_pairs(clusters, 3, np.random.default_rng(0))
    for i, p in enumerate(positive):
        if clusters[i] == 3:
            assert p == -1 and (negatives[i] == -1).all()  # alone in its cluster: no positive
            continue
        assert p != i and clusters[p] == clusters[i]
        assert len(set(negatives[i])) == 3 and (clusters[negatives[i]] != clusters[i]).all()


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_dual_contrastive_gradient_matches_finite_differences(weight):
    rng = np.random.default_rng(3)
    x, w, k = rng.normal(size=(10, 6)), rng.normal(size=(6, 4)), rng.normal(size=(5, 4))
    positive, negative = contrastive_masks(rng.integers(0, 3, size=(10, 5)).astype(float), 2, 2)
    pair_pos, pair_neg = sample_pairs(np.array([0, 0, 1, 1, 1, 2, 2, 0, 1, 2]), 3, rng)

    def loss():
        llm, sample, _, _ = dual_contrastive_loss(w, k, x, positive, negative, pair_pos, pair_neg, 0.5, weight)
        return llm + weight * sample

    _, sample, grad_w, grad_k = dual_contrastive_loss(w, k, x, positive, negative, pair_pos, pair_neg, 0.5, weight)
    assert sample > 0
    check_gradient(loss, [w, k], [grad_w, grad_k], rng)


def test_the_sample_sample_loss_changes_the_fit():
    # two well-separated groups of prompts whose scores do not follow the groups: only the sample–sample loss
    # can pull a group together in the learned space
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 32))
    x = np.vstack([centres[i % 2] + 0.6 * rng.normal(size=32) for i in range(60)]).astype(np.float32)
    scores = rng.integers(0, 2, size=(60, 4)).astype(float)
    table = RoutingTable([f"p{i}" for i in range(60)], list("abcd"), scores, np.ones_like(scores),
                         splits=["train"] * 60)

    def within_cluster_cosine(weight):
        dc = RouterDCSelector(dim=16, steps=60, n_clusters=2, sample_weight=weight, lr=0.01).fit(table, x)
        q = normalise_rows(x @ dc.w_)
        same = dc.clusters_[:, None] == dc.clusters_[None, :]
        return dc, (q @ q.T)[same].mean() - (q @ q.T)[~same].mean()

    plain, plain_gap = within_cluster_cosine(0.0)
    dual, dual_gap = within_cluster_cosine(1.0)
    assert not np.allclose(plain.w_, dual.w_)
    assert dual_gap > plain_gap + 0.1


def test_train_and_evaluate_end_to_end(tmp_path):
    result = train_and_evaluate("routerdc", {"steps": 30, "dim": 16}, tmp_path)
    assert not result["prompt_blind"] and 0 < result["aiq"] <= 1 and result["ci95"]["aiq"][0] is not None


def test_an_artifact_of_the_earlier_routerdc_names_what_to_retrain(tmp_path):
    old = write_earlier_artifact(tmp_path / "dc", "routerdc", {"dim": 64, "temperature": 0.2, "top_k": 3,
                                                               "epochs": 300, "lr": 0.01, "l2": 1e-4, "seed": 0,
                                                               "cost_weight": 0.0})
    with pytest.raises(ValueError, match="retrain it: turnout train --router routerdc"):
        selectors.get("routerdc").load(old)
    with pytest.raises(ConfigError, match="sample–LLM-only"):
        build_selector("routerdc", {}, "decisions[0].algorithm", str(old), ["a", "b"])
