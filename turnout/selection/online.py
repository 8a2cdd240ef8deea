"""What the online selectors (thompson, linucb, epsilon_greedy, ucb1) share: the reward, the warm-start prior,
context clusters, the exploration cap, the learned state and the shape of their Choice.

Reward = quality − λ·cost − μ·latency − ν·energy, with λ μ ν = `cost_weight`, `latency_weight`,
`energy_weight` (the request's `x-turnout-objective` swaps in presets: quality → λ μ = 0; cost → λ = 2; latency
→ μ = 2). Cost is normalised by the dearest of the decision's models for the same token counts (1 = the dearest
model's price), latency by `latency_scale_s`, energy (models.X.joules_per_token) like cost.

Warm start: an offline artifact (`turnout train` output or builtin:NAME) predicts each candidate's quality for
the request; that prediction, net of the candidate's normalised expected cost, is the prior, and the learners
learn the residual (reward − prior) on top of it, so they keep the artifact's per-prompt knowledge and correct
it. `prior_strength` is how many observations the prior is worth.

A Choice's `features` are (prior of the chosen model, *context): the context is the learner's own (linucb: its
feature vector; clustered learners: the cluster index), so `update` needs nothing but the outcome record."""

from __future__ import annotations

import abc
from collections import deque
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from turnout.context import Choice, RoutingContext
from turnout.selection.base import BUILTIN_ROUTERS, Candidate, Selector
from turnout.state.bandits import BanditState, MemoryBanditState, build_bandit_state

Share = Annotated[float, Field(ge=0, le=1, description="the most of the traffic (over explore_window picks) that may explore")]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0, le=256)]
Window = Annotated[int, Field(ge=1, le=1_000_000)]
EXPECTED_OUTPUT_TOKENS = 256
# (cost, latency) weights per stated objective; None keeps the configured one
OBJECTIVE_WEIGHTS = {"quality": (0.0, 0.0), "cost": (2.0, None), "latency": (None, 2.0)}
COMMON = ("seed", "explore", "max_explore_share", "explore_window", "warm_start", "prior_strength", "clusters",
          "cost_weight", "latency_weight", "energy_weight", "latency_scale_s")


class OnlineSelector(Selector):
    online = True
    encoder: str | None = None

    # ----- what each learner writes ---------------------------------------------------------------------
    @abc.abstractmethod
    def _size(self) -> int:
        """Length of one arm's statistics vector."""

    @abc.abstractmethod
    def _estimate(self, arms: list[str], ctx_vec: np.ndarray | None, cell: int, prior: np.ndarray,
                  explore: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(mean reward per arm, score per arm (a sample, a UCB, or the mean), a note per arm for the reason)."""

    @abc.abstractmethod
    def _delta(self, ctx_vec: np.ndarray | None, cell: int, prior: float, reward: float) -> np.ndarray:
        """What one observation adds to the chosen arm's statistics."""

    def _context(self, ctx: RoutingContext) -> np.ndarray | None:
        """The learner's context vector (contextual learners); None otherwise."""
        return None

    # ----- set-up ---------------------------------------------------------------------------------------
    def _common(self, values: dict[str, Any]) -> None:
        for name in COMMON:
            setattr(self, name, values[name])
        self.rng_ = np.random.default_rng(self.seed)
        self.window_: deque[bool] = deque(maxlen=self.explore_window)
        self.prior_model_: Any = None
        self.centroids_: np.ndarray | None = None
        self.models_cfg_: dict[str, Any] = {}
        self.state_: BanditState | None = None
        self.tag_ = ""
        if self.warm_start or self.clusters or self._needs_embedding():
            self.encoder = "minilm-static"

    def _needs_embedding(self) -> bool:
        return False

    def prepare(self, candidates: Sequence[str]) -> None:
        """Load the warm-start artifact and the clusters; a ValueError names what is wrong."""
        if self.warm_start:
            self.prior_model_ = load_prior(self.warm_start)
            self.encoder = self.prior_model_.encoder
            unknown = self.prior_model_.check_models(candidates)
            if unknown:
                raise ValueError(f"the warm-start router was trained on {', '.join(self.prior_model_.models_)}; "
                                 f"it knows nothing of {', '.join(unknown)}")
        if self.clusters:
            self.centroids_ = cluster_centroids(self.prior_model_, self.clusters, self.seed)
        self.tag_ = f"{'w' if self.warm_start else 'c'}{self.clusters}"

    def bind_state(self, state_config: Any, namespace: str) -> None:
        self.state_ = build_bandit_state(state_config, f"{namespace}:{self.name}:{self.tag_}:{self._size()}", self._size())

    def bind_models(self, models: dict[str, Any]) -> None:
        self.models_cfg_ = dict(models)
        self.state.track(list(models))

    @property
    def state(self) -> BanditState:
        if self.state_ is None:
            self.state_ = MemoryBanditState(self._size())
        return self.state_

    async def aclose(self) -> None:
        if self.state_ is not None:
            await self.state_.aclose()

    # ----- selecting ------------------------------------------------------------------------------------
    def select(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
        arms = [c.name for c in candidates]
        ctx_vec = self._context(ctx)
        cell = self._cell(ctx)
        prior = self._prior(ctx, candidates)
        share = self._explore_share()
        may_explore = self.explore and (self.max_explore_share >= 1 or share < self.max_explore_share)
        mean, score, notes = self._estimate(arms, ctx_vec, cell, prior, may_explore)
        greedy = int(np.argmax(mean))
        pick = int(np.argmax(score)) if may_explore else greedy
        explored = pick != greedy
        self.window_.append(explored)
        shown = score if may_explore else mean
        reason = self._reason(arms, notes, pick, explored, may_explore, cell, share)
        features = (float(prior[pick]), *(() if ctx_vec is None else map(float, ctx_vec)),
                    *(() if cell is None else (float(cell),)))
        return Choice(arms[pick], {a: float(s) for a, s in zip(arms, shown)}, reason, features, explored)

    def _reason(self, arms: list[str], notes: list[str], pick: int, explored: bool, may_explore: bool,
                cell: int | None, share: float) -> str:
        if not self.explore:
            how = "exploit only (explore: false)"
        elif not may_explore:
            how = f"exploit: explore share {share:.0%} at its cap {self.max_explore_share:.0%}"
        else:
            how = "explore" if explored else "exploit"
        where = f" in cluster {cell}" if cell is not None else ""
        text = f"{self.name} {how}{where}: {arms[pick]}; " + "; ".join(f"{a} {n}" for a, n in zip(arms, notes))
        down = self.state.unavailable
        return f"{text} ({down})" if down else text

    def _explore_share(self) -> float:
        return sum(self.window_) / len(self.window_) if self.window_ else 0.0

    def _cell(self, ctx: RoutingContext) -> int | None:
        if self.centroids_ is None:
            return None
        vector = np.asarray(ctx.cache[f"embedding:{self.encoder}:last_user"], dtype=np.float32)
        return int(np.argmax(self.centroids_ @ vector))

    def _prior(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> np.ndarray:
        """The warm-start router's predicted quality, net of normalised expected cost (zeros when cold)."""
        if self.prior_model_ is None:
            return np.zeros(len(candidates))
        vector = np.asarray(ctx.cache[f"embedding:{self.encoder}:last_user"])[None, :]
        quality = self.prior_model_.predict_quality(vector)[0]
        index = self.prior_model_.index_
        prior = np.array([float(quality[index[c.name]]) for c in candidates])
        if self.cost_weight:
            cost = np.array([c.cost.usd(ctx.token_estimate, EXPECTED_OUTPUT_TOKENS) for c in candidates])
            prior -= self.cost_weight * cost / max(float(cost.max()), 1e-12)
        return prior

    def _stats(self, arm: str, cell: int | None) -> np.ndarray:
        view = self.state.view(arm)
        return view if cell is None else view[3 * cell: 3 * cell + 3]

    # ----- learning -------------------------------------------------------------------------------------
    def reward(self, outcome: Any, quality: float, ctx_objective: str | None = None) -> float:
        cost_w, latency_w = OBJECTIVE_WEIGHTS.get(ctx_objective or "", (None, None))
        cost_w = self.cost_weight if cost_w is None else cost_w
        latency_w = self.latency_weight if latency_w is None else latency_w
        prompt, completion = int(outcome.prompt_tokens or 0), int(outcome.completion_tokens or 0)
        value = float(quality)
        if cost_w:
            value -= cost_w * self._normalised_cost(outcome, prompt, completion)
        if latency_w:
            value -= latency_w * min(float(outcome.latency_s or 0.0) / self.latency_scale_s, 3.0)
        if self.energy_weight:
            value -= self.energy_weight * self._normalised_energy(outcome.model, prompt + completion)
        return value

    def _normalised_cost(self, outcome: Any, prompt: int, completion: int) -> float:
        dearest = max((m.cost.usd(prompt, completion) for m in self.models_cfg_.values()), default=0.0)
        return float(outcome.cost_usd or 0.0) / dearest if dearest > 0 else float(outcome.cost_usd or 0.0)

    def _normalised_energy(self, model: str | None, tokens: int) -> float:
        per_token = {n: m.joules_per_token for n, m in self.models_cfg_.items() if m.joules_per_token is not None}
        if model not in per_token or not tokens:
            return 0.0
        return per_token[model] / max(max(per_token.values()), 1e-12)

    async def update(self, outcome: Any, reward: float) -> None:
        if not outcome.model or outcome.features is None:
            return  # not one of this selector's picks (direct, or routed before the selector was online)
        features = outcome.features
        cell = int(features[-1]) if self.centroids_ is not None else None
        ctx_vec = np.asarray(features[1:len(features) - (cell is not None)], dtype=np.float64)
        if cell is not None and not 0 <= cell < self.clusters:
            return
        await self.state.add(outcome.model, self._delta(ctx_vec if ctx_vec.size else None, cell or 0,
                                                        float(features[0]), float(reward)))


class CountingSelector(OnlineSelector):
    """Learners whose statistics per (cluster, arm) are a count, a sum and a sum of squares of the residual
    reward (reward − prior)."""

    def _size(self) -> int:
        return 3 * max(self.clusters, 1)

    def _delta(self, ctx_vec: np.ndarray | None, cell: int, prior: float, reward: float) -> np.ndarray:
        delta = np.zeros(self._size())
        residual = reward - prior
        delta[3 * cell: 3 * cell + 3] = (1.0, residual, residual * residual)
        return delta

    def _counts(self, arms: list[str], cell: int | None) -> tuple[np.ndarray, np.ndarray]:
        stats = np.array([self._stats(a, cell) for a in arms])
        return stats[:, 0], stats[:, 1]

    def _shrunk_mean(self, n: np.ndarray, s: np.ndarray, prior: np.ndarray, unseen: float) -> np.ndarray:
        """Prior plus the residual's mean, shrunk by `prior_strength` pseudo-observations when warm; an arm never
        tried scores `unseen` when cold."""
        if self.prior_model_ is not None:
            return prior + s / (n + self.prior_strength)
        return np.where(n > 0, s / np.maximum(n, 1e-12), unseen)


def load_prior(spec: str) -> Any:
    """A fitted learned selector from an artifact directory or builtin:NAME."""
    import json
    from pathlib import Path

    from turnout.selection.base import selectors
    from turnout.selection.learned import ARTIFACT_FILE

    directory = Path(str(BUILTIN_ROUTERS / spec[len("builtin:"):]) if spec.startswith("builtin:") else spec)
    try:
        name = json.loads((directory / ARTIFACT_FILE).read_text())["name"]
        model = selectors.get(name).load(directory)
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"cannot load the warm-start router {spec}: {exc}") from None
    model.index_ = {m: i for i, m in enumerate(model.models_)}
    return model


def cluster_centroids(prior_model: Any, k: int, seed: int) -> np.ndarray:
    """k unit centroids: the warm-start router's own (a `cluster` router), k-means on its training points (knn,
    sw_ranking, graph), or else k seeded random directions — the same in every replica, which online k-means
    would not be."""
    found = getattr(prior_model, "centroids_", None)
    points = getattr(prior_model, "points_", None)
    if found is not None and len(found) == k:
        centroids = np.asarray(found, dtype=np.float32)
    elif points is not None and len(points) >= k:
        from sklearn.cluster import KMeans

        centroids = KMeans(k, n_init=4, random_state=seed).fit(points).cluster_centers_
    else:
        from turnout.models.encoders import get_encoder

        dim = int(get_encoder("minilm-static").encode(["x"]).shape[1])
        centroids = np.random.default_rng(seed).standard_normal((k, dim))
    centroids = np.asarray(centroids, dtype=np.float32)
    return centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
