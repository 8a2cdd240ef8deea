"""Selectors that weigh more than one thing: HybridLLM's quality-gap router and a Tryage-style multi-objective
scorer whose weights a request may override with `x-turnout-objective: cost|quality|latency|balanced`."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from turnout.context import Choice, RoutingContext, requested_objective
from turnout.selection.base import Candidate, register
from turnout.selection.learned import EXPECTED_OUTPUT_TOKENS, LearnedSelector, embedding_key
from turnout.selection.ranking import per_model_linear


@register("hybrid")
class QualityGapSelector(LearnedSelector):
    """HybridLLM: for each model, P(its score is within `gap` of the best model's score on this prompt) — the
    probability that the cheaper model is good enough. Logistic regressions on the embedding."""

    def __init__(self, *, gap: float = 0.0, C: float = 1.0, cost_weight: float = 0.0) -> None:
        self.gap = gap
        self.C = C
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        from sklearn.linear_model import LogisticRegression

        close_enough = (scores >= scores.max(axis=1, keepdims=True) - self.gap - 1e-9).astype(float)
        self.w_, self.b_ = per_model_linear(x, close_enough, lambda: LogisticRegression(C=self.C, max_iter=2000), 4.0)

    def predict_quality(self, x):
        return 1 / (1 + np.exp(-(x @ self.w_.T + self.b_)))


# (quality, cost, latency) weights per stated objective
OBJECTIVES = {"quality": (1.0, 0.0, 0.0), "cost": (1.0, 2.0, 0.0), "latency": (1.0, 0.0, 2.0)}


@register("multi_objective")
class MultiObjectiveSelector(LearnedSelector):
    """Predicted quality (a multi-output MLP) combined with cost and latency: score = quality − cost_weight ×
    cost − latency_weight × latency, both normalised over the candidates. A request's `x-turnout-objective`
    header picks preset weights (cost, quality, latency); `balanced` or none keeps the configured ones."""

    def __init__(self, *, cost_weight: float = 0.3, latency_weight: float = 0.0, hidden: int = 128, seed: int = 0) -> None:
        self.cost_weight = cost_weight
        self.latency_weight = latency_weight
        self.hidden = hidden
        self.seed = seed

    def fit(self, table, x=None):
        latency = getattr(table, "latencies", None)
        self.latency_ = (np.nanmean(latency, axis=0) if latency is not None and not np.isnan(latency).all()
                         else np.ones(len(table.models))).astype(np.float32)
        return super().fit(table, x)

    def _fit(self, x, scores, costs):
        from turnout.selection.algorithms import MLPSelector

        net = MLPSelector(hidden=self.hidden, seed=self.seed)
        net._fit(x, scores, costs)
        self.w1_, self.b1_, self.w2_, self.b2_ = net.w1_, net.b1_, net.w2_, net.b2_

    def predict_quality(self, x):
        return np.maximum(x @ self.w1_ + self.b1_, 0) @ self.w2_ + self.b2_

    def select(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
        objective = requested_objective(ctx)
        wq, wc, wl = OBJECTIVES.get(objective or "", (1.0, self.cost_weight, self.latency_weight))
        quality = self.predict_quality(np.asarray(ctx.cache[embedding_key(self.encoder)])[None, :])[0]
        index = {m: i for i, m in enumerate(self.models_)}
        cost = np.array([c.cost.usd(ctx.token_estimate, EXPECTED_OUTPUT_TOKENS) for c in candidates])
        latency = np.array([self.latency_[index[c.name]] for c in candidates])
        cost, latency = cost / max(float(cost.max()), 1e-12), latency / max(float(latency.max()), 1e-12)
        scores = {c.name: float(wq * quality[index[c.name]] - wc * cost[k] - wl * latency[k])
                  for k, c in enumerate(candidates)}
        best = max(candidates, key=lambda c: scores[c.name]).name
        return Choice(best, scores, f"objective {objective or 'balanced'}: quality {wq:g}, cost {wc:g}, "
                                    f"latency {wl:g}")
