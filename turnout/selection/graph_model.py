"""The graph and edge predictor behind `graph` (GraphRouter): message passing over a heterogeneous graph of
query, task and LLM nodes, and a learned prediction of each query–LLM edge, in numpy.

Graph. Task nodes carry the centroid of their training queries' embeddings (GraphRouter: an LLM-written task
description); each training query–LLM edge carries the model's score (performance) and its normalised cost.
Messages (mean aggregation, SGC-style: the propagation has no weights of its own):
- query → task: each task node aggregates its queries' edges into per-LLM mean performance and cost;
- task → LLM: each LLM node gathers its performance on every task (plus its overall mean performance and cost
  and a one-hot identity, GraphRouter's LLM-description feature has no counterpart in a routing table);
- task → query: a query joins the tasks by a softmax over its cosine to their centroids (inferred from the
  request's text, at training and at serving alike; the data's task label only builds the task nodes), and
  receives their centroid, performance and cost;
- the query–task–LLM path gives each query–LLM edge an edge feature: the expected performance and cost of that
  LLM on the query's tasks.
For a training query the messages of its own task leave its own edges out (leave-one-out), so it cannot read
its own label.

Edge prediction (learned): z = relu(h_q Wq + h_m Wm + e_qm We + b1), P(edge) = σ(z · w2 + b2), fitted by binary
cross-entropy against the edge's score (full-batch Adam)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from turnout.selection.learned import normalise_rows


@dataclass
class GraphNodes:
    centroids: np.ndarray  # T × d, unit rows
    performance: np.ndarray  # T × M: mean score of each LLM on each task's queries
    cost: np.ndarray  # T × M: mean normalised cost
    counts: np.ndarray  # T: training queries per task
    llm: np.ndarray  # M × (M + T + 2): LLM node states
    prior: np.ndarray  # 2 × M: mean score and normalised cost over all training queries


def build_nodes(x: np.ndarray, tasks: np.ndarray, n_tasks: int, scores: np.ndarray, cost: np.ndarray) -> GraphNodes:
    points = normalise_rows(x)
    m = scores.shape[1]
    centroids = np.zeros((n_tasks, x.shape[1]))
    performance = np.tile(scores.mean(axis=0), (n_tasks, 1))
    mean_cost = np.tile(cost.mean(axis=0), (n_tasks, 1))
    counts = np.zeros(n_tasks)
    for t in range(n_tasks):
        rows = tasks == t
        counts[t] = rows.sum()
        if counts[t]:
            centroids[t] = points[rows].mean(axis=0)
            performance[t], mean_cost[t] = scores[rows].mean(axis=0), cost[rows].mean(axis=0)
    llm = np.hstack([np.eye(m), performance.T, scores.mean(axis=0)[:, None], cost.mean(axis=0)[:, None]])
    prior = np.stack([scores.mean(axis=0), cost.mean(axis=0)])
    return GraphNodes(normalise_rows(centroids), performance, mean_cost, counts, llm, prior)


def query_messages(x: np.ndarray, nodes: GraphNodes, temperature: float, own: tuple | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Query node states (n × (2d + 2M)) and query–LLM edge features (n × M × 2). `own` = (task of each row,
    its scores, its costs) for training rows: their own edges are taken out of their task's messages."""
    points = normalise_rows(x)
    logits = temperature * points @ nodes.centroids.T
    logits = np.where(nodes.counts > 0, logits, -np.inf)
    assign = np.exp(logits - logits.max(axis=1, keepdims=True))
    assign /= assign.sum(axis=1, keepdims=True)
    performance, cost = assign @ nodes.performance, assign @ nodes.cost
    centroid = assign @ nodes.centroids
    if own is not None:
        tasks, scores, costs = own
        n_t = nodes.counts[tasks][:, None]
        weight = assign[np.arange(len(x)), tasks][:, None]
        left = np.maximum(n_t - 1, 1)  # a task of one query: its own edges are all it has, so the prior instead
        loo_performance = np.where(n_t > 1, (n_t * nodes.performance[tasks] - scores) / left, nodes.prior[0])
        loo_cost = np.where(n_t > 1, (n_t * nodes.cost[tasks] - costs) / left, nodes.prior[1])
        performance = performance + weight * (loo_performance - nodes.performance[tasks])
        cost = cost + weight * (loo_cost - nodes.cost[tasks])
    states = np.hstack([points, centroid, performance, cost])
    return states, np.stack([performance, cost], axis=2)


def init_params(query_dim: int, llm_dim: int, hidden: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.normal(0, 1 / np.sqrt(query_dim), (query_dim, hidden)), rng.normal(0, 1 / np.sqrt(llm_dim), (llm_dim, hidden)),
            rng.normal(0, 1, (2, hidden)), np.zeros(hidden), rng.normal(0, 1 / np.sqrt(hidden), hidden), np.zeros(1)]


def edge_logits(params: list[np.ndarray], queries: np.ndarray, llm: np.ndarray, edges: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    wq, wm, we, b1, w2, b2 = params
    pre = (queries @ wq)[:, None, :] + (llm @ wm)[None, :, :] + edges @ we + b1
    return pre, np.maximum(pre, 0) @ w2 + b2[0]


def edge_loss(params: list[np.ndarray], queries: np.ndarray, llm: np.ndarray, edges: np.ndarray, target: np.ndarray,
              l2: float) -> tuple[float, list[np.ndarray]]:
    """Mean binary cross-entropy of the predicted edges against the scores (+ L2 on the weight matrices) and
    its gradient for params = [Wq, Wm, We, b1, w2, b2]."""
    wq, wm, we, _, w2, _ = params
    pre, logit = edge_logits(params, queries, llm, edges)
    p = 1 / (1 + np.exp(-logit))
    eps = 1e-12
    count = target.size
    loss = -np.sum(target * np.log(p + eps) + (1 - target) * np.log(1 - p + eps)) / count
    loss += 0.5 * l2 * (np.sum(wq * wq) + np.sum(wm * wm) + np.sum(we * we))
    g = (p - target) / count  # n × M
    z = np.maximum(pre, 0)
    grad_pre = g[:, :, None] * w2 * (pre > 0)
    return float(loss), [queries.T @ grad_pre.sum(axis=1) + l2 * wq, llm.T @ grad_pre.sum(axis=0) + l2 * wm,
                         np.einsum("nmi,nmh->ih", edges, grad_pre) + l2 * we, grad_pre.sum(axis=(0, 1)),
                         np.einsum("nmh,nm->h", z, g), np.array([g.sum()])]
