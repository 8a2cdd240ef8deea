"""A conservative guard for a warm-started learner: the offline router's pick is the baseline action, and the
learner's own pick is played only while a lower confidence bound on what the learner has earned (with that
pick) stays at or above (1 − α) × what the baseline is estimated to have earned over the same requests.

After Kazerouni et al. 2017, "Conservative Contextual Linear Bandits" (CLUCB), simplified:
- the baseline's reward on each request is estimated by the learner's own model (prior + learned residual),
  not known;
- the learner's past deviations count with the reward they actually earned (observed), less z × the sd of
  their total against the baseline's (REWARD_SD·√2 per deviation: neither side's reward on a request is known
  in advance, and the baseline's on a deviation is never seen), instead of lower confidence bounds recomputed
  at every step. That √(deviations) term is what keeps the realised total, not only its expectation, above the
  line: early on, when α × the baseline's total is a reward or two, it allows no deviation at all;
- the pick being considered counts with its lower bound, the learner's mean − z × its spread (posterior sd, or
  the ridge estimate's sd), for any of the four learners, not the linear model's confidence ellipsoid; it is
  reserved at the pick and replaced by the earned reward when the feedback comes (never, if it never comes).

The ledger lives in this process: each replica keeps the constraint over its own picks, so the sum over
replicas keeps it too; a restart starts again from no slack, which is the safe side."""

from __future__ import annotations

import math

import numpy as np

NO_DEVIATION = (0.0, 0.0, 0.0)
DEVIATION_SD = 0.5 * math.sqrt(2.0)  # the sd of a difference of two rewards in [0, 1], at most


class ConservativeGuard:
    def __init__(self, alpha: float, z: float) -> None:
        self.alpha, self.z = alpha, z
        self.slack_ = 0.0  # α·Σ baseline estimate + Σ over own deviations (earned − baseline estimate − reserves)
        self.deviations_ = 0

    def check(self, pick: int, baseline: int, mean: np.ndarray,
              spread: np.ndarray) -> tuple[int, tuple[float, ...], str]:
        """The arm to play, what `settle` needs back with the reward (deviated, baseline estimate, reserve), and a
        note for the reason."""
        estimate = float(mean[baseline])
        self.slack_ += self.alpha * estimate
        if pick == baseline:
            return pick, NO_DEVIATION, f"conservative: the baseline's pick (slack {self.slack_:.2f})"
        reserve = max(estimate - (float(mean[pick]) - self.z * float(spread[pick])), 0.0)
        noise = self.z * DEVIATION_SD * math.sqrt(self.deviations_ + 1)
        if self.slack_ < reserve + noise:
            return baseline, NO_DEVIATION, (f"conservative: held to the baseline (slack {self.slack_:.2f} < "
                                            f"bound {reserve:.2f} + noise {noise:.2f})")
        self.slack_ -= reserve
        self.deviations_ += 1
        return pick, (1.0, estimate, reserve), f"conservative: own pick (slack {self.slack_:.2f} after {reserve:.2f})"

    def settle(self, extras: tuple[float, ...], reward: float) -> None:
        deviated, estimate, reserve = extras
        if deviated:
            self.slack_ += reserve + (reward - estimate)

    def revise(self, extras: tuple[float, ...], old: float, new: float | None) -> None:
        """A deviation's reward changed (None: taken back, as if its feedback never came: the reserve stays)."""
        deviated, estimate, reserve = extras
        if deviated:
            self.slack_ += (-(reserve + old - estimate)) if new is None else new - old
