"""A conservative guard for a warm-started learner: the offline router's pick is the baseline action, and the
learner's own pick is played only while a pessimistic running total of what the learner has earned stays at or
above (1 − α) × what the baseline is estimated to have earned over the same requests.

After Kazerouni et al. 2017, "Conservative Contextual Linear Bandits" (CLUCB), simplified in three ways:
- the baseline's reward on each request is estimated by the learner's own model (prior + learned residual),
  not known;
- the learner's past deviations count with the reward they actually earned (observed), not with their
  lower confidence bounds recomputed at every step; a deviation whose feedback has not come yet counts with its
  lower bound (reserved at the pick, released when the reward arrives; never released if it never arrives);
- the lower bound is the learner's mean − z × its spread (posterior sd, or the UCB width's scale), for any of
  the four learners, not the linear model's confidence ellipsoid.

The ledger (`slack_`) lives in this process: each replica keeps the constraint over its own picks, so the sum
over replicas keeps it too; a restart starts again from no slack, which is the safe side."""

from __future__ import annotations

import numpy as np

NO_DEVIATION = (0.0, 0.0, 0.0)


class ConservativeGuard:
    def __init__(self, alpha: float, z: float) -> None:
        self.alpha, self.z = alpha, z
        self.slack_ = 0.0  # α·Σ baseline estimate + Σ over own deviations (earned − baseline estimate − reserves)

    def check(self, pick: int, baseline: int, mean: np.ndarray, spread: np.ndarray) -> tuple[int, tuple[float, ...], str]:
        """The arm to play, what `settle` needs back with the reward (deviated, baseline estimate, reserve), and a
        note for the reason."""
        estimate = float(mean[baseline])
        self.slack_ += self.alpha * estimate
        if pick == baseline:
            return pick, NO_DEVIATION, f"conservative: the baseline's pick (slack {self.slack_:.2f})"
        reserve = max(estimate - (float(mean[pick]) - self.z * float(spread[pick])), 0.0)
        if self.slack_ < reserve:
            return baseline, NO_DEVIATION, (f"conservative: held to the baseline (slack {self.slack_:.2f} < "
                                            f"worst-case loss {reserve:.2f})")
        self.slack_ -= reserve
        return pick, (1.0, estimate, reserve), f"conservative: own pick (slack {self.slack_:.2f} after {reserve:.2f})"

    def settle(self, extras: tuple[float, ...], reward: float) -> None:
        deviated, estimate, reserve = extras
        if deviated:
            self.slack_ += reserve + (reward - estimate)
