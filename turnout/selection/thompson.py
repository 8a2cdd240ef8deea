"""Thompson sampling: a posterior per candidate (and per context cluster), one sample each, the best sample
wins. Beta posteriors when the reward is a quality in [0, 1] and nothing is learned on top of a prior; Gaussian
ones otherwise (rewards net of cost can be negative; a warm start learns the residual on its prior).
With `near_ties: margin` (warm and guarded only) it explores only the offline router's near ties, between its
pick and its runner-up (turnout/selection/near_ties.py)."""


from typing import Annotated

import numpy as np
from pydantic import Field

from turnout.selection.base import register
from turnout.selection.near_ties import check_near_ties, is_near_tie, near_tie_select
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

Margin = Annotated[float, Field(gt=0, le=1, description="a near tie: the router's top two predicted rewards this close")]
Outcomes = Annotated[int, Field(ge=1, le=100_000_000, description="rated outcomes the early noise lasts for")]


@register("thompson")
class ThompsonSelector(CountingSelector):
    def __init__(self, *, noise: Positive = 0.2, seed: int = 0, explore: bool = True, max_explore_share: Share = 1.0,
                 explore_window: Window = 500, warm_start: str | None = None, prior_strength: NonNegative = 50.0,
                 clusters: Count = 0, cluster_after: Warmup = 200,
                 cluster_shrink: NonNegative = 10.0, conservative: Alpha | None = None,
                 conservative_z: NonNegative = 2.0, cost_weight: float = 0.0, latency_weight: float = 0.0,
                 energy_weight: float = 0.0, latency_scale_s: Positive = 10.0,
                 price_prior: bool = False, near_ties: Margin | None = None, early_noise: Positive | None = None,
                 early_until: Outcomes = 1000) -> None:
        self.noise, self.near_ties, self.early_noise, self.early_until = noise, near_ties, early_noise, early_until
        self._common(locals())

    def current_noise(self, arms: list[str]) -> float:
        """The Gaussian posterior's scale: `early_noise` until the decision's models hold `early_until` rated
        outcomes between them (counted in the shared state, so every replica switches together), then `noise`:
        explore harder while little is known, exploit more once it is."""
        if self.early_noise is None:
            return self.noise
        seen = sum(float(self.state.view(a)[0]) for a in arms)
        return self.early_noise if seen < self.early_until else self.noise

    def prepare(self, candidates):
        check_near_ties(self)
        super().prepare(candidates)
        if self.near_ties is not None:
            self.tag_ += "n"  # statistics of near ties only: never mixed with a plain thompson's

    def select(self, ctx, candidates):
        if self.near_ties is None:
            return super().select(ctx, candidates)
        return near_tie_select(self, ctx, candidates)

    async def update(self, outcome, reward):
        if self.near_ties is not None and outcome.model and not is_near_tie(outcome.features):
            if self.clusters_ is not None:  # nothing to learn, but the online clusters still get fitted
                await self.clusters_.settle(self.state)
            return
        await super().update(outcome, reward)

    async def revise(self, outcome, old, new):
        if self.near_ties is not None and not is_near_tie(outcome.features):
            return
        await super().revise(outcome, old, new)

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
        std = self.current_noise(arms) / np.sqrt(n_eff)
        sample = mean + std * self.rng_.standard_normal(len(arms)) if explore else mean
        return mean, sample, std, [f"N({m:.3f}, {d:.3f}²) n={int(k)} → {v:.3f}"
                                   for m, d, k, v in zip(mean, std, n, sample)]
