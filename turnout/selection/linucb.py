"""LinUCB (Li et al. 2010), disjoint: a ridge regression per candidate from a context vector to the reward, and
the pick with the highest θᵀx + α·√(xᵀA⁻¹x). The context is the request embedding projected to `dim` dimensions
(a fixed seeded projection, the same in every replica), the scores of the signals named in `signals`, and 1.
A⁻¹ follows each own update by Sherman–Morrison; it is recomputed only when other replicas' updates arrive.
Warm-started, the regression learns the residual on the prior, so it starts from the offline router's choice."""


import numpy as np

from turnout.selection.base import register
from turnout.selection.learned import embedding_key
from turnout.selection.online import (
    REWARD_SD,
    Alpha,
    Count,
    NonNegative,
    OnlineSelector,
    Positive,
    Share,
    Warmup,
    Window,
)

PROJECTION_SEED = 20101  # fixed, not `seed`: every replica must map a request to the same context


@register("linucb")
class LinUCBSelector(OnlineSelector):
    def __init__(self, *, alpha: NonNegative = 0.1, ridge: Positive = 1.0, dim: Count = 16,
                 signals: list[str] = [], seed: int = 0, explore: bool = True,  # noqa: B006 - validated, copied
                 max_explore_share: Share = 1.0, explore_window: Window = 500, warm_start: str | None = None,
                 prior_strength: NonNegative = 50.0, clusters: Count = 0, cluster_after: Warmup = 200,
                 cluster_shrink: NonNegative = 10.0, conservative: Alpha | None = None,
                 conservative_z: NonNegative = 2.0, cost_weight: float = 0.0,
                 latency_weight: float = 0.0, energy_weight: float = 0.0, latency_scale_s: Positive = 10.0,
                 price_prior: bool = False) -> None:
        self.alpha, self.ridge, self.dim, self.signals = alpha, ridge, dim, list(signals)
        self._common(locals())
        # warm: the prior itself is a feature, so the regression learns its calibration (a raw residual per model
        # is biased: a model is observed where the prior ranked it first, i.e. where the prior overrates it)
        # clusters: a one-hot of the request's cluster too (all zeros before the clusters are fitted), so each
        # cluster gets its own offset per model on top of the shared linear part
        self.d_ = dim + len(self.signals) + 1 + (warm_start is not None) + clusters
        self.upper_ = np.triu_indices(self.d_)  # A is symmetric: its upper triangle is kept
        self.projection_: np.ndarray | None = None
        self.cache_: dict[str, tuple[int, np.ndarray, np.ndarray, int]] = {}  # arm → (state version, A⁻¹, b, n)
        self.stacked_: tuple[tuple, np.ndarray, np.ndarray] | None = None

    def _needs_embedding(self) -> bool:
        return self.dim > 0

    def _size(self) -> int:
        return 1 + len(self.upper_[0]) + self.d_  # n, A's upper triangle (without the ridge), b

    def _context(self, ctx):
        parts = []
        if self.dim:
            vector = np.asarray(ctx.cache[embedding_key(self.encoder)], dtype=np.float64)
            if self.projection_ is None:
                rng = np.random.default_rng(PROJECTION_SEED)
                self.projection_ = rng.standard_normal((self.dim, len(vector))) / np.sqrt(self.dim)
            parts.append(self.projection_ @ vector)
        parts.append([ctx.signals[s].score if s in ctx.signals else 0.0 for s in self.signals])
        parts.append([1.0])
        return np.concatenate(parts)

    def _inverse(self, arm: str) -> tuple[int, np.ndarray, np.ndarray, int]:
        """(state version, A⁻¹, b, n) for the arm, recomputed only when its statistics changed underneath."""
        version = self.state.version(arm)
        found = self.cache_.get(arm)
        if found is None or found[0] != version:
            d, m = self.d_, len(self.upper_[0])
            stats = self.state.view(arm)
            a = np.zeros((d, d))
            a[self.upper_] = stats[1:1 + m]
            a = a + np.triu(a, 1).T
            # warm: the prior is worth `prior_strength` observations of a zero residual
            a += (self.ridge + (self.prior_strength if self.prior_model_ is not None else 0.0)) * np.eye(d)
            found = self.cache_[arm] = (version, np.linalg.inv(a), stats[1 + m:].copy(), int(stats[0]))
        return found

    def _stacked(self, arms: list[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Every arm's A⁻¹ and b stacked, so one pick is a few batched products, not a loop over arms."""
        entries = [self._inverse(arm) for arm in arms]
        key = (tuple(arms), tuple(e[0] for e in entries))
        if self.stacked_ is None or self.stacked_[0] != key:
            self.stacked_ = (key, np.stack([e[1] for e in entries]), np.stack([e[2] for e in entries]))
        return self.stacked_[1], self.stacked_[2], [e[3] for e in entries]

    def _x(self, ctx_vec: np.ndarray, prior: float, cell: int | None) -> np.ndarray:
        parts = [ctx_vec, [prior] if self.warm_start is not None else [], self._onehot(cell)]
        return np.concatenate(parts)

    def _onehot(self, cell: int | None) -> np.ndarray:
        found = np.zeros(self.clusters)
        if cell is not None:
            found[cell] = 1.0
        return found

    def _estimate(self, arms, ctx_vec, cell, prior, explore):
        a_inv, b, counts = self._stacked(arms)
        x = np.tile(ctx_vec, (len(arms), 1))
        if self.warm_start is not None:
            x = np.hstack([x, prior[:, None]])
        if self.clusters:
            x = np.hstack([x, np.tile(self._onehot(cell), (len(arms), 1))])
        ax = np.einsum("kij,kj->ki", a_inv, x)
        mean = prior + np.einsum("ki,ki->k", ax, b)  # θᵀx = (A⁻¹b)ᵀx = bᵀ(A⁻¹x): A⁻¹ is symmetric
        root = np.sqrt(np.maximum(np.einsum("ki,ki->k", x, ax), 0.0))
        spread = REWARD_SD * root  # the ridge estimate's sd at noise REWARD_SD
        width = self.alpha * root
        ucb = mean + width
        return mean, ucb, spread, [f"θᵀx {m:.3f} + α·width {w:.3f} (n={n}) = {u:.3f}"
                           for m, w, n, u in zip(mean, width, counts, ucb)]

    def _delta(self, ctx_vec, cell, prior, reward):
        x = self._x(np.asarray(ctx_vec, dtype=np.float64), prior, cell)
        if x.shape != (self.d_,):
            raise ValueError(f"linucb: a context of {x.shape} for a model of {self.d_} dimensions")
        return np.concatenate(([1.0], np.outer(x, x)[self.upper_], (reward - prior) * x))

    async def update(self, outcome, reward):
        arm = outcome.model
        before = self.state.version(arm) if arm else None
        cached = self.cache_.get(arm) if arm else None
        await super().update(outcome, reward)
        if cached is None or cached[0] != before or self.state.version(arm) != before + 1 or outcome.features is None:
            return  # others' updates came in too: A⁻¹ is recomputed from the statistics on the next select
        prior, ctx_vec, cell, _ = self._split(outcome.features)
        x = self._x(np.asarray(ctx_vec, dtype=np.float64), prior, cell)
        a_inv, b = cached[1], cached[2]
        ax = a_inv @ x
        a_inv = a_inv - np.outer(ax, ax) / (1.0 + float(x @ ax))  # Sherman–Morrison: (A + xxᵀ)⁻¹
        self.cache_[arm] = (before + 1, a_inv, b + (reward - prior) * x, cached[3] + 1)
