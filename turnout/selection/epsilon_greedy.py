"""ε-greedy: the best mean reward, except a share ε of picks (seeded) go to a candidate drawn at random."""

from typing import Annotated

import numpy as np
from pydantic import Field

from turnout.selection.base import register
from turnout.selection.online import (
    REWARD_SD,
    Alpha,
    Count,
    CountingSelector,
    NonNegative,
    Positive,
    Share,
    Warmup,
    Window,
)


@register("epsilon_greedy")
class EpsilonGreedySelector(CountingSelector):
    def __init__(self, *, epsilon: Annotated[float, Field(ge=0, le=1)] = 0.1, seed: int = 0, explore: bool = True,
                 max_explore_share: Share = 1.0, explore_window: Window = 500, warm_start: str | None = None,
                 prior_strength: NonNegative = 50.0, clusters: Count = 0, cluster_after: Warmup = 200,
                 cluster_shrink: NonNegative = 10.0, conservative: Alpha | None = None,
                 conservative_z: NonNegative = 2.0, cost_weight: float = 0.0,
                 latency_weight: float = 0.0, energy_weight: float = 0.0, latency_scale_s: Positive = 10.0,
                 price_prior: bool = False) -> None:
        self.epsilon = epsilon
        self._common(locals())

    unseen = 1.0  # cold: an untried candidate looks good until tried

    def _estimate(self, arms, ctx_vec, cell, prior, explore):
        n, n_eff, s = self._counts(arms, cell)
        mean = self._shrunk_mean(n_eff, s, prior)
        score = mean.copy()
        if explore and self.rng_.random() < self.epsilon:
            score[int(self.rng_.integers(len(arms)))] = np.inf
        spread = REWARD_SD / np.sqrt(np.maximum(n_eff, 1.0))
        return mean, score, spread, [f"mean {m:.3f} (n={int(k)})" for m, k in zip(mean, n)]
