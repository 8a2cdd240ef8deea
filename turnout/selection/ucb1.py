"""UCB1 (Auer et al. 2002): the mean reward plus c·√(2 ln N / n); each candidate is tried once first (cold)."""


import numpy as np

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


@register("ucb1")
class UCB1Selector(CountingSelector):
    def __init__(self, *, c: NonNegative = 1.0, seed: int = 0, explore: bool = True, max_explore_share: Share = 1.0,
                 explore_window: Window = 500, warm_start: str | None = None, prior_strength: NonNegative = 50.0,
                 clusters: Count = 0, cluster_after: Warmup = 200,
                 cluster_shrink: NonNegative = 10.0, conservative: Alpha | None = None,
                 conservative_z: NonNegative = 2.0, cost_weight: float = 0.0, latency_weight: float = 0.0,
                 energy_weight: float = 0.0, latency_scale_s: Positive = 10.0,
                 price_prior: bool = False) -> None:
        self.c = c
        self._common(locals())

    def _estimate(self, arms, ctx_vec, cell, prior, explore):
        n, pseudo, s = self._counts(arms, cell)
        mean = self._shrunk_mean(pseudo, s, prior)
        total = max(float(pseudo.sum()), 1.0)
        with np.errstate(divide="ignore"):
            bonus = np.where(pseudo > 0, self.c * np.sqrt(2 * np.log(total) / np.maximum(pseudo, 1e-12)), np.inf)
        spread = REWARD_SD / np.sqrt(np.maximum(pseudo, 1.0))
        ucb = mean + bonus
        return mean, ucb, spread, [f"mean {m:.3f} + bonus {b:.3f} (n={int(k)}) = {u:.3f}"
                                   for m, b, k, u in zip(mean, bonus, n, ucb)]
