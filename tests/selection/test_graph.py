"""`graph`: GraphRouter's query–task–LLM graph and learned edge prediction (turnout/selection/graph*.py)."""

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
from turnout.models.encoders import get_encoder
from turnout.selection import selectors
from turnout.selection.base import build_selector
from turnout.selection.graph_model import (
    build_nodes,
    edge_loss,
    init_params,
    query_messages,
)


def test_edge_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    queries, llm, edges = rng.normal(size=(6, 5)), rng.normal(size=(3, 4)), rng.normal(size=(6, 3, 2))
    target = rng.random((6, 3))
    params = init_params(5, 4, 7, rng)
    params[3] += rng.normal(size=7)  # biases away from 0, so no unit sits at relu's kink by construction
    params[5] += 0.3
    _, grads = edge_loss(params, queries, llm, edges, target, 0.01)
    check_gradient(lambda: edge_loss(params, queries, llm, edges, target, 0.01)[0], params, grads, rng)


def test_a_training_query_does_not_read_its_own_edges():
    x = np.eye(4)[[0, 0, 1, 1]] + 0.01
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    tasks = np.array([0, 0, 1, 1])
    nodes = build_nodes(x, tasks, 2, scores, np.ones_like(scores))
    assert np.allclose(nodes.performance, [[0.5, 0.5], [0.5, 0.5]])
    _, edges = query_messages(x, nodes, temperature=1e3, own=(tasks, scores, np.ones_like(scores)))
    # each query sees its task through the other query of that task only
    assert np.allclose(edges[:, :, 0], scores[[1, 0, 3, 2]], atol=1e-6)
    _, served = query_messages(x, nodes, temperature=1e3)
    assert np.allclose(served[:, :, 0], 0.5, atol=1e-6)  # a new query: the task's whole record


def test_graph_router_uses_the_task_column():
    # moved from test_learned.py. Two tasks; the first model wins every "alpha" prompt, the second every "beta"
    prompts = [f"alpha question number {i}" for i in range(6)] + [f"beta question number {i}" for i in range(6)]
    scores = np.array([[1.0, 0.0]] * 6 + [[0.0, 1.0]] * 6)
    table = RoutingTable(prompts, ["a", "b"], scores, np.ones_like(scores), tasks=["alpha"] * 6 + ["beta"] * 6,
                         splits=["train"] * 12)
    graph = selectors.get("graph")(epochs=200).fit(table)
    assert graph.task_names_ == ["alpha", "beta"]
    x = get_encoder().encode(["alpha question number 99", "beta question number 99"])
    predicted = graph.predict_quality(x)
    assert predicted[0, 0] > predicted[0, 1] and predicted[1, 1] > predicted[1, 0]
    weights = graph.task_weights(x)  # the request's task, inferred from its text (no label at serving)
    assert weights[0, 0] > 0.5 > weights[1, 0]


def test_without_a_task_column_clusters_stand_in():
    prompts = [f"alpha question number {i}" for i in range(6)] + [f"write a poem about {w}" for w in "abcdef"]
    scores = np.array([[1.0, 0.0]] * 6 + [[0.0, 1.0]] * 6)
    table = RoutingTable(prompts, ["a", "b"], scores, np.ones_like(scores), splits=["train"] * 12)
    graph = selectors.get("graph")(n_tasks=2, epochs=200).fit(table)
    assert graph.task_names_ == ["cluster-0", "cluster-1"]
    predicted = graph.predict_quality(get_encoder().encode(["alpha question number 42", "write a poem about z"]))
    assert predicted[0, 0] > predicted[0, 1] and predicted[1, 1] > predicted[1, 0]


def test_train_and_evaluate_end_to_end(tmp_path):
    result = train_and_evaluate("graph", {"epochs": 60}, tmp_path)
    assert not result["prompt_blind"] and 0 < result["aiq"] <= 1 and result["ci95"]["aiq"][0] is not None


def test_an_artifact_of_the_earlier_label_propagation_names_what_to_retrain(tmp_path):
    old = write_earlier_artifact(tmp_path / "g", "graph", {"neighbours": 16, "alpha": 0.5, "task_weight": 0.3,
                                                           "steps": 8, "temperature": 20.0, "n_tasks": 16,
                                                           "seed": 0, "cost_weight": 0.0})
    with pytest.raises(ValueError, match="retrain it: turnout train --router graph"):
        selectors.get("graph").load(old)
    with pytest.raises(ConfigError, match="label propagation"):
        build_selector("graph", {}, "decisions[0].algorithm", str(old), ["a", "b"])
