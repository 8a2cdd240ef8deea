"""Thompson sampling: a posterior per candidate (and per context cluster), one sample each, the best sample
wins. Beta posteriors when the reward is a quality in [0, 1] and nothing is learned on top of a prior; Gaussian
ones otherwise (rewards net of cost can be negative; a warm start learns the residual on its prior)."""


import numpy as np

from turnout.selection.base import register
from turnout.selection.online import (
    Alpha,
    Count,
    CountingSelector,
    NonNegative,
    Positive,
    Share,
    Warmup,
    Window,
)


@register("thompson")
class ThompsonSelector(CountingSelector):
    def __init__(self, *, noise: Positive = 0.2, seed: int = 0, explore: bool = True, max_explore_share: Share = 1.0,
                 explore_window: Window = 500, warm_start: str | None = None, prior_strength: NonNegative = 50.0,
                 clusters: Count = 0, cluster_after: Warmup = 200,
                 cluster_shrink: NonNegative = 10.0, conservative: Alpha | None = None,
                 conservative_z: NonNegative = 2.0, cost_weight: float = 0.0, latency_weight: float = 0.0,
                 energy_weight: float = 0.0, latency_scale_s: Positive = 10.0,
                 price_prior: bool = False) -> None:
        self.noise = noise
        self._common(locals())

    @property
    def beta(self) -> bool:
        """Beta posteriors: rewards are qualities in [0, 1] and there is no prior to learn a residual on."""
        return self.prior_model_ is None and not (self.cost_weight or self.latency_weight or self.energy_weight)

    pseudo = 1.0  # one pseudo-observation at the prior keeps a cold arm's Gaussian finite

    def _estimate(self, arms, ctx_vec, cell, prior, explore):
        n, n_eff, s = self._counts(arms, cell)
        if self.beta:
            pseudo = self.pseudo if cell is None else 0.0  # what n_eff counts beyond the observations
            a, b = 1.0 + s, 1.0 + np.maximum(n_eff - pseudo - s, 0.0)
            mean = a / (a + b)
            sample = self.rng_.beta(a, b) if explore else mean
            spread = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
            return mean, sample, spread, [f"Beta({x:.1f}, {y:.1f}) mean {m:.3f} → {v:.3f}"
                                          for x, y, m, v in zip(a, b, mean, sample)]
        mean = prior + s / n_eff
        std = self.noise / np.sqrt(n_eff)
        sample = mean + std * self.rng_.standard_normal(len(arms)) if explore else mean
        return mean, sample, std, [f"N({m:.3f}, {d:.3f}²) n={int(k)} → {v:.3f}"
                                   for m, d, k, v in zip(mean, std, n, sample)]
