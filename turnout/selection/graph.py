"""`graph`: GraphRouter (Feng, Shen and You, ICLR 2025, "GraphRouter: A Graph-based Router for LLM
Selections"): a heterogeneous graph of query, task and LLM nodes whose query–LLM edges carry performance and
cost, and a learned edge predictor that, for a new query joined to the graph, predicts its edge to each LLM
(graph_model.py holds the graph, the messages and the loss).

Tasks come from the data's `task` column; without one, k-means clusters of the prompts stand in. A request's
task is never read from a label: it joins the task nodes by a softmax over its cosine to their centroids.

Simplified: the messages are parameter-free mean aggregations (as in SGC, Wu et al. 2019) and the learned part is
one layer over each edge's query state, LLM state and edge features with a logistic read-out, where the paper
stacks two learned heterogeneous GNN layers (GeneralConv, hidden size 32); the task and LLM node features are the
task's query centroid and the LLM's per-task record instead of LLM-written descriptions; the edge predictor
regresses each model's score (binary cross-entropy), and the performance–cost trade-off is `cost_weight` at
serving time, where the paper trains one predictor per trade-off (its label is the LLM with the best reward).
`task_temperature` (50) was chosen by 3-fold cross-validation on the GSM8K and LLMRouter train splits
(benchmarks/paper_routers_cv.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from turnout.selection.base import register
from turnout.selection.graph_model import (
    GraphNodes,
    build_nodes,
    edge_logits,
    edge_loss,
    init_params,
    query_messages,
)
from turnout.selection.learned import Adam, LearnedSelector, normalise_rows
from turnout.selection.paper_methods import check_method

METHOD = "graphrouter-edge-prediction-v1"


@register("graph")
class GraphRouterSelector(LearnedSelector):
    """GraphRouter's edge prediction over a query–task–LLM graph (see the module's docstring)."""

    method = METHOD

    def __init__(self, *, hidden: int = 32, epochs: int = 300, lr: float = 0.01, l2: float = 1e-4,
                 task_temperature: float = 50.0, n_tasks: int = 16, seed: int = 0, cost_weight: float = 0.0) -> None:
        self.hidden = hidden  # the paper's hidden size
        self.epochs = epochs
        self.lr = lr
        self.l2 = l2
        self.task_temperature = task_temperature  # sharpness of a query's softmax over the task centroids
        self.n_tasks = n_tasks  # k-means clusters standing in for tasks when the data has no task column
        self.seed = seed
        self.cost_weight = cost_weight

    def fit(self, table: Any, x: np.ndarray | None = None) -> GraphRouterSelector:
        self._tasks = list(table.tasks)
        return super().fit(table, x)  # type: ignore[return-value]

    def _task_ids(self, points: np.ndarray) -> np.ndarray:
        names = getattr(self, "_tasks", [])
        if names and all(names):
            self.task_names_ = sorted(set(names))
            return np.array([self.task_names_.index(t) for t in names])
        from sklearn.cluster import KMeans

        k = max(1, min(self.n_tasks, len(points)))
        self.task_names_ = [f"cluster-{i}" for i in range(k)]
        return KMeans(n_clusters=k, random_state=self.seed, n_init=4).fit(points).labels_

    def _fit(self, x, scores, costs):
        rng = np.random.default_rng(self.seed)
        x = x.astype(np.float64)
        tasks = self._task_ids(normalise_rows(x))
        self.cost_scale_ = float(max(costs.mean(axis=0).max(), 1e-12))
        cost = costs / self.cost_scale_
        nodes = build_nodes(x, tasks, len(self.task_names_), scores, cost)
        queries, edges = query_messages(x, nodes, self.task_temperature, own=(tasks, scores, cost))
        target = np.clip(scores, 0.0, 1.0)
        params = init_params(queries.shape[1], nodes.llm.shape[1], self.hidden, rng)
        adam = Adam(params, self.lr)
        for _ in range(self.epochs):
            adam.update(edge_loss(params, queries, nodes.llm, edges, target, self.l2)[1])
        self.centroids_, self.performance_ = nodes.centroids.astype(np.float32), nodes.performance.astype(np.float32)
        self.task_cost_, self.counts_ = nodes.cost.astype(np.float32), nodes.counts.astype(np.float32)
        self.llm_, self.prior_ = nodes.llm.astype(np.float32), nodes.prior.astype(np.float32)
        self.wq_, self.wm_, self.we_, self.b1_, self.w2_, self.b2_ = (p.astype(np.float32) for p in params)
        self.method_ = METHOD

    def _nodes(self) -> GraphNodes:
        return GraphNodes(self.centroids_, self.performance_, self.task_cost_, self.counts_, self.llm_, self.prior_)

    def task_weights(self, x: np.ndarray) -> np.ndarray:
        """Each request's weight on each task node (rows sum to 1), inferred from its embedding alone."""
        logits = self.task_temperature * normalise_rows(np.asarray(x, dtype=np.float32)) @ self.centroids_.T
        logits = np.where(self.counts_ > 0, logits, -np.inf)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        return weights / weights.sum(axis=1, keepdims=True)

    def predict_quality(self, x):
        queries, edges = query_messages(np.asarray(x, dtype=np.float32), self._nodes(), self.task_temperature)
        params = [self.wq_, self.wm_, self.we_, self.b1_, self.w2_, self.b2_]
        return 1 / (1 + np.exp(-edge_logits(params, queries, self.llm_, edges)[1]))

    @classmethod
    def load(cls, directory: str | Path, **overrides: Any) -> GraphRouterSelector:
        check_method(directory, cls.name, METHOD, "the earlier label propagation (no learned edge prediction)")
        return super().load(directory, **overrides)  # type: ignore[return-value]
