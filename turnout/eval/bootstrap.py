"""Percentile-bootstrap 95 % confidence intervals for the metrics of metrics.py.

The test prompts are resampled with replacement (1,000 resamples, seeded, the same resamples for every router
and baseline of a report, so intervals of different routers are comparable), and on each resample everything is
recomputed from scratch: the single models' means, which model is weak and which strong, the router's curve and
every metric. A router's choice for a prompt depends on that prompt alone (argmax of its predicted quality net of
its own normalised cost), so the choices at every knob setting are computed once and only their means are
resampled — a matrix product instead of re-running the router a thousand times."""

from __future__ import annotations

from typing import Any

import numpy as np

from turnout.eval.metrics import Reference, summary
from turnout.eval.table import RoutingTable

RESAMPLES = 1000
SEED = 0
METRICS = ("aiq", "apgr", "cpt50", "cpt80", "quality_at_best_single_cost", "cost_at_95pct_best_single",
           "cost_at_100pct_best_single", "cost_share_at_95pct", "cost_share_at_100pct")
METHOD = "percentile bootstrap over test prompts (resampled with replacement)"


class Resamples:
    """Prompt weights of each resample (how often each prompt was drawn) and the single models' means."""

    def __init__(self, table: RoutingTable, resamples: int = RESAMPLES, seed: int = SEED) -> None:
        n = len(table)
        rng = np.random.default_rng(seed)
        self.table, self.n, self.resamples, self.seed = table, n, resamples, seed
        self.weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)  # (B, n)
        self.model_cost = self.mean(table.costs.T)  # (models, B)
        self.model_quality = self.mean(table.scores.T)
        self.references = [self._reference(b) for b in range(resamples)]

    def mean(self, per_prompt: np.ndarray) -> np.ndarray:
        """(rows, n) per-prompt values → (rows, B) means on each resample."""
        return per_prompt @ self.weights.T / self.n

    def _reference(self, b: int) -> Reference:
        costs, quality = self.model_cost[:, b], self.model_quality[:, b]
        weak = int(np.lexsort((-quality, costs))[0])
        strong = int(np.lexsort((costs, -quality))[0])
        return Reference(weak, strong, list(zip(costs.tolist(), quality.tolist())), float(costs.min()),
                         float(costs.max()))

    def interval(self, choices: np.ndarray, two_models: bool) -> dict[str, Any]:
        """95 % intervals of every metric for a router that picks `choices` (knobs × prompts, model indices)."""
        rows = np.arange(self.n)
        cost = self.mean(self.table.costs[rows, choices])  # (knobs, B)
        quality = self.mean(self.table.scores[rows, choices])
        shares = ([self.mean((choices == m).astype(np.float64)) for m in range(len(self.table.models))]
                  if two_models else None)
        samples = [self._metrics(list(zip(cost[:, b].tolist(), quality[:, b].tolist())), b, shares)
                   for b in range(self.resamples)]
        return percentile_intervals(samples)

    def interval_of_random(self, two_models: bool) -> dict[str, Any]:
        """The random mix is an expected value between each resample's own weak and strong model."""
        mix = np.linspace(0, 1, 21)
        samples = []
        for b, ref in enumerate(self.references):
            (c_weak, q_weak), (c_strong, q_strong) = ref.single[ref.weak], ref.single[ref.strong]
            points = [(c_weak + p * (c_strong - c_weak), q_weak + p * (q_strong - q_weak)) for p in mix]
            samples.append(_summary(points, ref, mix.tolist() if two_models else None))
        return percentile_intervals(samples)

    def _metrics(self, points: list[tuple[float, float]], b: int, shares: list[np.ndarray] | None) -> dict:
        ref = self.references[b]
        return _summary(points, ref, None if shares is None else shares[ref.strong][:, b].tolist())

    def describe(self) -> dict[str, Any]:
        return {"method": METHOD, "resamples": self.resamples, "seed": self.seed, "level": 0.95}


def _summary(points: list[tuple[float, float]], ref: Reference, shares: list[float] | None) -> dict[str, Any]:
    full = summary(points, ref, shares)
    out = {k: full[k] for k in METRICS}
    out["gain_over_random_mean"] = full["gain_over_random"]["mean"]
    out["gain_over_random_min"] = full["gain_over_random"]["min"]
    return out


def percentile_intervals(samples: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """[2.5th, 97.5th] percentile of each metric. A metric that is None on a resample (a CPT or a cost never
    reached) counts as +∞ there, so an upper bound that is not reached is None."""
    out: dict[str, list[float | None]] = {}
    for key in samples[0]:
        values = np.array([np.inf if s[key] is None else s[key] for s in samples], dtype=np.float64)
        with np.errstate(invalid="ignore"):  # inf − inf between two unreached resamples: nan, read as None
            low, high = np.percentile(values, [2.5, 97.5])
        out[key] = [None if not np.isfinite(v) else round(float(v), 6) for v in (low, high)]
    return out
