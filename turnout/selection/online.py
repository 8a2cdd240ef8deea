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

Clusters (`clusters: k`): statistics per context cluster, pooled towards the arm's statistics over all requests
with `cluster_shrink` pseudo-observations (a cluster that has seen little of an arm borrows what the arm did
everywhere); the centroids come from turnout/selection/clusters.py. `conservative: α` guards a warm start: the
offline router's pick is played unless the learner's own pick keeps a pessimistic total at or above (1 − α) × the
baseline's (turnout/selection/conservative.py).

A Choice's `features` are (prior of the chosen model, *context, [cluster], [deviated, baseline estimate,
reserve]): the context is the learner's own (linucb: its feature vector), the cluster −1 before the centroids are
known, the last three only with `conservative`; so `update` needs nothing but the outcome record."""

from __future__ import annotations

import abc
from collections import deque
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from turnout.context import Choice, RoutingContext
from turnout.selection.base import BUILTIN_ROUTERS, Candidate, Selector
from turnout.selection.clusters import Clusters
from turnout.selection.conservative import ConservativeGuard
from turnout.state.bandits import BanditState, MemoryBanditState, build_bandit_state

Share = Annotated[float, Field(ge=0, le=1, description="the most of the traffic (over explore_window picks) that may explore")]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0, le=256)]
Window = Annotated[int, Field(ge=1, le=1_000_000)]
Alpha = Annotated[float, Field(gt=0, lt=1, description="the most the learner may fall below the baseline (share)")]
Warmup = Annotated[int, Field(ge=2, le=100_000, description="requests whose embeddings the clusters are fitted on")]
EXPECTED_OUTPUT_TOKENS = 256
# (cost, latency) weights per stated objective; None keeps the configured one
OBJECTIVE_WEIGHTS = {"quality": (0.0, 0.0), "cost": (2.0, None), "latency": (None, 2.0)}
COMMON = ("seed", "explore", "max_explore_share", "explore_window", "warm_start", "prior_strength", "clusters",
          "cluster_after", "cluster_shrink", "conservative", "conservative_z",
          "cost_weight", "latency_weight", "energy_weight", "latency_scale_s", "price_prior")
REWARD_SD = 0.5  # the widest sd of a reward in [0, 1]: the spread scale of learners without a posterior


class OnlineSelector(Selector):
    online = True
    encoder: str | None = None

    # ----- what each learner writes ---------------------------------------------------------------------
    @abc.abstractmethod
    def _size(self) -> int:
        """Length of one arm's statistics vector."""

    @abc.abstractmethod
    def _estimate(self, arms: list[str], ctx_vec: np.ndarray | None, cell: int | None, prior: np.ndarray,
                  explore: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(mean reward per arm, score per arm (a sample, a UCB, or the mean), spread per arm (an sd of the mean,
        for the conservative guard's lower bound), a note per arm for the reason)."""

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
        self.clusters_: Clusters | None = None
        self.guard_ = ConservativeGuard(self.conservative, self.conservative_z) if self.conservative else None
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
        elif self.conservative:
            raise ConservativeError("conservative needs warm_start: its baseline is the offline router's pick")
        if self.clusters:
            self.clusters_ = Clusters(self.clusters, self.cluster_after, self.seed, self.prior_model_)
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
        mean, score, spread, notes = self._estimate(arms, ctx_vec, cell, prior, may_explore)
        greedy = int(np.argmax(mean))
        pick = int(np.argmax(score)) if may_explore else greedy
        guarded: tuple[float, ...] = ()
        if self.guard_ is not None:
            pick, guarded, note = self.guard_.check(pick, int(np.argmax(prior)), mean, spread)
            notes = [*notes[:-1], f"{notes[-1]}; {note}"]
        explored = pick != greedy
        self.window_.append(explored)
        shown = score if may_explore else mean
        reason = self._reason(arms, notes, pick, explored, may_explore, cell, share)
        features = (float(prior[pick]), *(() if ctx_vec is None else map(float, ctx_vec)),
                    *(() if self.clusters_ is None else (float(-1 if cell is None else cell),)), *guarded)
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
        if self.clusters_ is None:
            return None
        return self.clusters_.cell(np.asarray(ctx.cache[f"embedding:{self.encoder}:last_user"]))

    def _prior(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> np.ndarray:
        """The warm-start router's predicted quality, net of normalised expected cost (zeros when cold)."""
        if self.prior_model_ is None:
            prior = np.zeros(len(candidates))
            if not self.price_prior:
                return prior
        else:
            vector = np.asarray(ctx.cache[f"embedding:{self.encoder}:last_user"])[None, :]
            quality = self.prior_model_.predict_quality(vector)[0]
            index = self.prior_model_.index_
            prior = np.array([float(quality[index[c.name]]) for c in candidates])
        if self.cost_weight:
            cost = np.array([c.cost.usd(ctx.token_estimate, EXPECTED_OUTPUT_TOKENS) for c in candidates])
            prior -= self.cost_weight * cost / max(float(cost.max()), 1e-12)
        return prior

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

    def _split(self, features: Sequence[float]) -> tuple[float, np.ndarray | None, int | None, tuple[float, ...]]:
        """(prior, context vector, cluster (None: pooled only), the guard's extras) from a Choice's features."""
        guarded = tuple(features[-3:]) if self.guard_ is not None else ()
        rest = features[:len(features) - len(guarded)]
        cell = int(rest[-1]) if self.clusters_ is not None else None
        ctx_vec = np.asarray(rest[1:len(rest) - (cell is not None)], dtype=np.float64)
        return float(rest[0]), (ctx_vec if ctx_vec.size else None), (cell if cell is None or cell >= 0 else None), guarded

    async def update(self, outcome: Any, reward: float) -> None:
        if not outcome.model or outcome.features is None:
            return  # not one of this selector's picks (direct, or routed before the selector was online)
        prior, ctx_vec, cell, guarded = self._split(outcome.features)
        if cell is not None and not 0 <= cell < self.clusters:
            return
        if self.guard_ is not None and len(guarded) == 3:
            self.guard_.settle(guarded, float(reward))
        await self.state.add(outcome.model, self._delta(ctx_vec, cell, prior, float(reward)))
        if self.clusters_ is not None:
            await self.clusters_.settle(self.state)

    async def revise(self, outcome: Any, old: float, new: float | None) -> None:
        """A changed rating: take back what reward `old` taught about this record and teach `new` instead (None:
        only take it back). Every learner's statistics are additive, so this is delta(new) − delta(old) (the count
        and linucb's xxᵀ cancel; taking back subtracts them too): a record counts once, with its latest rating."""
        if not outcome.model or outcome.features is None:
            return
        prior, ctx_vec, cell, guarded = self._split(outcome.features)
        if cell is not None and not 0 <= cell < self.clusters:
            return
        taken = self._delta(ctx_vec, cell, prior, float(old))
        delta = -taken if new is None else self._delta(ctx_vec, cell, prior, float(new)) - taken
        if self.guard_ is not None and len(guarded) == 3:
            self.guard_.revise(guarded, float(old), None if new is None else float(new))
        await self.state.add(outcome.model, delta)


class CountingSelector(OnlineSelector):
    """Learners whose statistics per arm are a count, a sum and a sum of squares of the residual reward
    (reward − prior): over all requests, then (with clusters) per cluster."""

    unseen = 0.0  # a cold arm never tried scores this (ε-greedy: 1, so that it is tried)
    pseudo = 0.0  # pseudo-observations at a zero residual on top of prior_strength (thompson: 1, keeps it finite)

    def _size(self) -> int:
        return 3 * (self.clusters + 1) if self.clusters else 3

    def _delta(self, ctx_vec: np.ndarray | None, cell: int | None, prior: float, reward: float) -> np.ndarray:
        delta = np.zeros(self._size())
        residual = reward - prior
        delta[:3] = (1.0, residual, residual * residual)
        if cell is not None:
            delta[3 * cell + 3: 3 * cell + 6] = delta[:3]
        return delta

    def _counts(self, arms: list[str], cell: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(raw count, effective count, effective residual sum) per arm: the mean residual is sum / count (an
        effective count of 0: never tried, cold). In a cluster, `cluster_shrink` pseudo-observations at the arm's
        mean over all requests."""
        stats = np.array([self.state.view(a) for a in arms])
        n, s = stats[:, 0], stats[:, 1]
        n_eff = n + self.pseudo + (self.prior_strength if self.prior_model_ is not None else 0.0)
        if cell is None:
            return n, n_eff, s
        pooled = np.where(n_eff > 0, s / np.maximum(n_eff, 1e-12), self.unseen)
        n_cell = stats[:, 3 * cell + 3]
        return n_cell, n_cell + self.cluster_shrink, stats[:, 3 * cell + 4] + self.cluster_shrink * pooled

    def _shrunk_mean(self, n_eff: np.ndarray, s: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """Prior plus the residual's mean; an arm never tried scores `unseen` (cold)."""
        return prior + np.where(n_eff > 0, s / np.maximum(n_eff, 1e-12), self.unseen)


class ConservativeError(ValueError):
    field = "conservative"  # the param a config error names


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
