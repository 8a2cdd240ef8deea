"""A fast numpy replica of benchmarks/online.py's stream, for trying learner designs on many seeds in seconds.

    python benchmarks/online_replica.py [--seeds 100-107] [--json bench-out/online-replica.json] [--shared ../shared/data]

The same data, split, reward (score − 0.1 × normalised price), offline router (the best of online.py's learned
routers on the stream) and stream orders (numpy's permutation of the seed) as online.py, but the learners are
re-implemented here in a few lines each and fed the table's rows directly, without the Router. They follow the
shipped ones closely, not exactly (their random draws differ): thompson+clusters+price gives 0.952 over
requests 2,001–3,000 of orders 0, 1, 2 here against 0.943 through the Router, and the greedy guarded linucb's end
gaps match the Router's to 0.01 % (orders 0, 1, 2: +0.14, −0.18, +0.19 %, worst running gap −0.57 %; orders
100–102: −0.00, −0.26, −0.42 %). So a design that does not move
the figure here is not worth building; one that does is then checked through the Router (online.py --orders).

Designs (cold ones report the cold goal's ratio over requests 2,001–3,000, warm ones the running gap at the end):
- ts: thompson + 16 clusters fitted on the first 200 requests + the price prior (online.py's
  thompson+clusters+price), at a few noise / cluster_shrink settings;
- ts-shape: the same with the clusters fitted on the embedding and the 8 standardised prompt-shape features
  (turnout.selection.ensemble.prompt_shape), which puts the data's tasks in purer clusters (purity 0.52 → 0.66);
- ts-hier: clusters of clusters (16 then 64 cells, each shrunk towards the level above);
- ts-eb: empirical-Bayes shrinkage, a per-model between-cluster variance estimated from the cells;
- ts-early: thompson's `early_noise` (a wider posterior until `early_until` rated outcomes, then `noise`);
- knn: Thompson on the 20 nearest earlier requests each model was played on (not state-compatible: tried to see
  whether finer neighbourhoods help);
- warm linucb: online.py's linucb+conservative+greedy (prior as a feature, prior_strength 20, z 3, α 0.01), and
  with 16 clusters as a one-hot in its context;
- warm near-tie A/B: where the offline router's margin over its runner-up is small, an A/B test of the two per
  (cluster, pick, runner-up), then the winner (class NearTieAB; variants with the guard, a lower share, a later
  start);
- warm guarded near ties: thompson's `near_ties` (class GuardedNearTies), the shipped settings and neighbours.
Seeds: the tuning seeds were 100–119 (near ties: 100–139, and `--dev`); the reported orders 0, 1, 2 and the
check seeds 200–209 were not tuned on. `--dev` streams the dev split (online.py --dev: the offline rows split
again; knn is its offline router) instead of the stream."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online import COST_WEIGHT, offline_routers, rewards_of, splits

from turnout.eval.datasets import llmrouter
from turnout.eval.table import held_out
from turnout.models.encoders import get_encoder
from turnout.selection.clusters import kmeans, unit_rows
from turnout.selection.conservative import ConservativeGuard
from turnout.selection.ensemble import prompt_shape
from turnout.selection.linucb import PROJECTION_SEED
from turnout.selection.online import load_prior

K, AFTER, WINDOW = 16, 200, (2000, 3000)


class Data:
    def __init__(self, shared: Path, directory: Path, dev: bool = False) -> None:
        train, stream = splits(llmrouter(shared))
        if dev:  # as online.py --dev: the offline rows split 40 / 60 again, by a differently salted key
            train, stream = (train.subset([i for i, p in enumerate(train.prompts) if not held_out("dev:" + p, 60)],
                                          "dev-train"),
                             train.subset([i for i, p in enumerate(train.prompts) if held_out("dev:" + p, 60)],
                                          "dev-stream"))
        encoder = get_encoder("minilm-static")
        self.x = encoder.encode(stream.prompts).astype(np.float64)
        self.shape = prompt_shape(stream.prompts).astype(np.float64)
        self.reward = rewards_of(stream)
        price = stream.costs[0] / stream.costs[0].max()
        self.price_prior = -COST_WEIGHT * price
        best, offline, artifact = offline_routers(train, stream, directory)
        self.offline = offline[best]
        model = load_prior(str(artifact))
        quality = model.predict_quality(self.x)[:, [model.index_[m] for m in stream.models]]
        self.warm_prior = quality - COST_WEIGHT * price
        self.projected = self.x @ (np.random.default_rng(PROJECTION_SEED).standard_normal((16, self.x.shape[1])) / 4.0).T


class Cells:
    """k-means cells on the first `after` requests (the embedding centred; optionally with the shape features)."""

    def __init__(self, data: Data, k: int, after: int, shape_weight: float) -> None:
        self.data, self.k, self.after, self.w = data, k, after, shape_weight
        self.sample: list[int] = []
        self.centroids: np.ndarray | None = None

    def _point(self, i: int) -> np.ndarray:
        e = unit_rows(self.data.x[i] - self.centre)
        if not self.w:
            return e
        return unit_rows(np.concatenate([e, self.w * (self.data.shape[i] - self.mu) / self.sd / np.sqrt(8)]))

    def cell(self, i: int) -> int | None:
        if self.centroids is None:
            self.sample.append(i)
            if len(self.sample) < self.after:
                return None
            rows = np.array(self.sample)
            self.centre = self.data.x[rows].mean(axis=0)
            self.mu, self.sd = self.data.shape[rows].mean(axis=0), self.data.shape[rows].std(axis=0) + 1e-6
            self.centroids = kmeans(np.array([self._point(j) for j in rows]), self.k, 0)
            return None
        return int(np.argmax(self.centroids @ self._point(i)))


class Thompson:
    """Gaussian Thompson on residuals (reward − price prior), per cell shrunk towards the model's pooled mean."""

    def __init__(self, data: Data, seed: int, noise: float = 0.3, shrink: float = 10.0, shape_weight: float = 0.0,
                 levels: tuple[int, ...] = (K,), eb: bool = False, early: tuple[float, int] | None = None) -> None:
        self.data, self.noise, self.shrink, self.eb, self.early = data, noise, shrink, eb, early
        self.late_noise = noise
        self.rng = np.random.default_rng(seed)
        self.levels = [Cells(data, k, AFTER * (1 + n), shape_weight) for n, k in enumerate(levels)]
        self.stats = [np.zeros((k, 9, 2)) for k in levels]
        self.pooled = np.zeros((9, 2))

    def select(self, i: int) -> int:
        if self.early is not None:  # thompson's early_noise / early_until: rated outcomes so far
            self.noise = self.early[0] if self.pooled[:, 0].sum() < self.early[1] else self.late_noise
        self.cells = [level.cell(i) for level in self.levels]
        n_eff = self.pooled[:, 0] + 1
        mean = self.pooled[:, 1] / n_eff
        for stats, c in zip(self.stats, self.cells):
            if c is None:
                break
            shrink = self._eb_shrink(stats, mean) if self.eb else self.shrink
            n_eff = stats[c, :, 0] + shrink
            mean = (stats[c, :, 1] + shrink * mean) / n_eff
        sample = self.data.price_prior + mean + self.noise / np.sqrt(n_eff) * self.rng.standard_normal(9)
        return int(np.argmax(sample))

    def _eb_shrink(self, stats: np.ndarray, pooled: np.ndarray, sigma2: float = 0.2) -> np.ndarray:
        n = stats[:, :, 0]
        means = np.where(n > 0, stats[:, :, 1] / np.maximum(n, 1e-12), 0.0)
        total = np.maximum(n.sum(axis=0), 1e-12)
        between = (n * (means - pooled) ** 2).sum(axis=0) / total - sigma2 * np.minimum(n, 1).sum(axis=0) / total
        return sigma2 / np.maximum(between, 0.02 ** 2)

    def update(self, i: int, arm: int, reward: float) -> None:
        residual = reward - self.data.price_prior[arm]
        self.pooled[arm] += (1.0, residual)
        for stats, c in zip(self.stats, self.cells):
            if c is not None:
                stats[c, arm] += (1.0, residual)


class NearestThompson:
    """Per model, the mean residual of the `k` nearest earlier requests it was played on (cosine on the centred
    embedding), shrunk towards its pooled mean; one Gaussian sample each."""

    def __init__(self, data: Data, seed: int, k: int = 20, noise: float = 0.3, shrink: float = 3.0) -> None:
        self.data, self.k, self.noise, self.shrink = data, k, noise, shrink
        self.rng = np.random.default_rng(seed)
        self.points: list[list[np.ndarray]] = [[] for _ in range(9)]
        self.residuals: list[list[float]] = [[] for _ in range(9)]
        self.pooled = np.zeros((9, 2))
        self.seen: list[int] = []

    def select(self, i: int) -> int:
        if len(self.seen) < AFTER:
            self.seen.append(i)
        self.point = unit_rows(self.data.x[i] - self.data.x[self.seen].mean(axis=0))
        pooled = self.pooled[:, 1] / (self.pooled[:, 0] + 1)
        mean, n_eff = np.zeros(9), np.ones(9)
        for a in range(9):
            if self.points[a]:
                similarity = np.array(self.points[a]) @ self.point
                k = min(self.k, len(similarity))
                near = np.argpartition(-similarity, k - 1)[:k]
                n_eff[a] = k + self.shrink
                mean[a] = (np.array(self.residuals[a])[near].sum() + self.shrink * pooled[a]) / n_eff[a]
        sample = self.data.price_prior + mean + self.noise / np.sqrt(n_eff) * self.rng.standard_normal(9)
        return int(np.argmax(sample))

    def update(self, i: int, arm: int, reward: float) -> None:
        residual = reward - self.data.price_prior[arm]
        self.points[arm].append(self.point)
        self.residuals[arm].append(residual)
        self.pooled[arm] += (1.0, residual)


class WarmLinUCB:
    """online.py's linucb+conservative+greedy: per model a ridge regression of the residual on (projected
    embedding, 1, prior[, cluster one-hot]), greedy, behind the conservative guard."""

    def __init__(self, data: Data, seed: int, prior_strength: float = 20.0, z: float = 3.0, clusters: int = 0) -> None:
        self.data, self.clusters = data, clusters
        self.cells = Cells(data, clusters, AFTER, 0.0) if clusters else None
        d = 16 + 2 + clusters
        self.a_inv = np.stack([np.eye(d) / (1.0 + prior_strength)] * 9)
        self.b = np.zeros((9, d))
        self.guard = ConservativeGuard(0.01, z)

    def select(self, i: int) -> int:
        prior = self.data.warm_prior[i]
        onehot = np.zeros(self.clusters)
        cell = self.cells.cell(i) if self.cells else None
        if cell is not None:
            onehot[cell] = 1.0
        x = np.array([np.concatenate([self.data.projected[i], [1.0, p], onehot]) for p in prior])
        ax = np.einsum("kij,kj->ki", self.a_inv, x)
        mean = prior + np.einsum("ki,ki->k", ax, self.b)
        spread = 0.5 * np.sqrt(np.maximum(np.einsum("ki,ki->k", x, ax), 0.0))
        pick, self.extras, _ = self.guard.check(int(np.argmax(mean)), int(np.argmax(prior)), mean, spread)
        self.x, self.prior = x[pick], prior[pick]
        return pick

    def update(self, i: int, arm: int, reward: float) -> None:
        self.guard.settle(self.extras, reward)
        ax = self.a_inv[arm] @ self.x
        self.a_inv[arm] -= np.outer(ax, ax) / (1.0 + self.x @ ax)
        self.b[arm] += (reward - self.prior) * self.x


class NearTieAB:
    """Warm: an A/B test of the offline router's near ties. Where the router's margin over its runner-up is under
    `margin`, the request belongs to the group (cluster, router's pick, runner-up); in each group the two are
    played at random, half each, until the difference of their mean rewards is `z` standard errors from zero,
    and then the better one is played. Elsewhere the router's pick. With `guard`, every runner-up pick goes
    through the conservative guard (α 0.01, z = guard) first, its estimate the router's prediction."""

    def __init__(self, data: Data, seed: int, margin: float = 0.01, z: float = 1.0, guard: float | None = None,
                 share: float = 0.5, start: int = 0) -> None:
        self.data, self.margin, self.z, self.share, self.start, self.t = data, margin, z, share, start, 0
        self.rng = np.random.default_rng(seed)
        self.cells = Cells(data, K, AFTER, 0.0)
        self.groups: dict[tuple[int, int, int], np.ndarray] = {}
        self.guard = ConservativeGuard(0.01, guard) if guard is not None else None

    def select(self, i: int) -> int:
        prior = self.data.warm_prior[i]
        lead, runner = (int(a) for a in np.argsort(-prior)[:2])
        cell = self.cells.cell(i)
        self.group, self.extras = None, (0.0, 0.0, 0.0)
        self.t += 1
        if cell is None or prior[lead] - prior[runner] >= self.margin or self.t <= self.start:
            return lead
        stats = self.groups.setdefault((cell, lead, runner), np.zeros(4))  # n, sum for the lead; n, sum for the runner
        wanted = runner if self.rng.random() < self.share else lead
        if min(stats[0], stats[2]) >= 2:
            difference = stats[3] / stats[2] - stats[1] / stats[0]
            error = np.sqrt(0.25 / stats[2] + 0.25 / stats[0])
            if abs(difference) > self.z * error:
                wanted = runner if difference > 0 else lead
        if self.guard is not None:
            wanted, self.extras, _ = self.guard.check(wanted, lead, prior, np.zeros(len(prior)))
        self.group, self.side = (cell, lead, runner), int(wanted == runner)
        return wanted

    def update(self, i: int, arm: int, reward: float) -> None:
        if self.guard is not None:
            self.guard.settle(self.extras, reward)
        if self.group is not None:
            self.groups[self.group][2 * self.side: 2 * self.side + 2] += (1.0, reward)


class GuardedNearTies:
    """thompson's `near_ties` (turnout/selection/near_ties.py): where the router's top two predicted rewards are
    within `margin`, Thompson between them on the residual (reward − prediction) each earned on near ties in the
    request's cell, shrunk towards its residual over all near ties (`shrink` pseudo-observations, 1 at the pooled
    level); every runner-up pick goes through the conservative guard (α 0.01, z), whose slack accrues on every
    request (`all_slack`; False: on near ties only, as NearTieAB's guard did). Elsewhere the router's pick, and
    nothing learned."""

    def __init__(self, data: Data, seed: int, margin: float = 0.005, z: float = 2.5, noise: float = 0.2,
                 shrink: float = 30.0, all_slack: bool = True) -> None:
        self.data, self.margin, self.noise, self.shrink, self.all_slack = data, margin, noise, shrink, all_slack
        self.rng = np.random.default_rng(seed)
        self.cells = Cells(data, K, AFTER, 0.0)
        self.guard = ConservativeGuard(0.01, z)
        self.cell_stats = np.zeros((K, 9, 2))
        self.pooled = np.zeros((9, 2))

    def select(self, i: int) -> int:
        prior = self.data.warm_prior[i]
        lead, runner = (int(a) for a in np.argsort(-prior)[:2])
        self.cell, self.extras, self.near = self.cells.cell(i), (0.0, 0.0, 0.0), False
        if self.cell is None or prior[lead] - prior[runner] >= self.margin:
            if self.all_slack:
                self.guard.check(lead, lead, prior, np.zeros(9))
            return lead
        pair = [lead, runner]
        pooled = self.pooled[pair, 1] / (self.pooled[pair, 0] + 1.0)
        n_eff = self.cell_stats[self.cell, pair, 0] + self.shrink
        mean, spread = prior.copy(), np.zeros(9)
        mean[pair] += (self.cell_stats[self.cell, pair, 1] + self.shrink * pooled) / n_eff
        spread[pair] = self.noise / np.sqrt(n_eff)
        want = pair[int(np.argmax(mean[pair] + spread[pair] * self.rng.standard_normal(2)))]
        pick, self.extras, _ = self.guard.check(want, lead, mean, spread)
        self.near = True
        return pick

    def update(self, i: int, arm: int, reward: float) -> None:
        self.guard.settle(self.extras, reward)
        if self.near:
            residual = reward - self.data.warm_prior[i][arm]
            self.pooled[arm] += (1.0, residual)
            self.cell_stats[self.cell, arm] += (1.0, residual)


COLD = {
    "ts (noise 0.3, shrink 10)": lambda d, s: Thompson(d, s),
    "ts (noise 0.3, shrink 4)": lambda d, s: Thompson(d, s, shrink=4.0),
    "ts (noise 0.4, shrink 4)": lambda d, s: Thompson(d, s, noise=0.4, shrink=4.0),
    "ts (noise 0.2, shrink 10)": lambda d, s: Thompson(d, s, noise=0.2),
    "ts-shape (w 0.5)": lambda d, s: Thompson(d, s, shape_weight=0.5),
    "ts-shape (w 1)": lambda d, s: Thompson(d, s, shape_weight=1.0),
    "ts-hier (16, 64)": lambda d, s: Thompson(d, s, levels=(16, 64), shrink=5.0),
    "ts-eb (noise 0.7·σ)": lambda d, s: Thompson(d, s, noise=0.7 * np.sqrt(0.2), eb=True),
    "knn (k 20)": lambda d, s: NearestThompson(d, s),
    # thompson's early_noise: a wider posterior for the first rated outcomes, then `noise`
    "ts (noise 0.45 until 1000, then 0.2)": lambda d, s: Thompson(d, s, noise=0.2, early=(0.45, 1000)),
    "ts (noise 0.45 until 1000, then 0.15)": lambda d, s: Thompson(d, s, noise=0.15, early=(0.45, 1000)),
    "ts (noise 0.4 until 700, then 0.2)": lambda d, s: Thompson(d, s, noise=0.2, early=(0.4, 700)),
    "ts (noise 0.6 until 1000, then 0.2)": lambda d, s: Thompson(d, s, noise=0.2, early=(0.6, 1000)),
    "ts (noise 0.3 until 1000, then 0.2)": lambda d, s: Thompson(d, s, noise=0.2, early=(0.3, 1000)),
}
WARM = {
    "warm linucb greedy guarded": lambda d, s: WarmLinUCB(d, s),
    "warm linucb greedy guarded + 16 clusters": lambda d, s: WarmLinUCB(d, s, clusters=16),
    "warm near-tie A/B (margin 0.01, z 1)": lambda d, s: NearTieAB(d, s),
    "warm near-tie A/B (margin 0.01, z 2)": lambda d, s: NearTieAB(d, s, z=2.0),
    "warm near-tie A/B (margin 0.02, z 1)": lambda d, s: NearTieAB(d, s, margin=0.02),
    "warm near-tie A/B (margin 0.01, z 1, guard 0.5)": lambda d, s: NearTieAB(d, s, guard=0.5),
    "warm near-tie A/B (margin 0.01, z 1, share 0.25)": lambda d, s: NearTieAB(d, s, share=0.25),
    "warm near-tie A/B (margin 0.01, z 1, from 500)": lambda d, s: NearTieAB(d, s, start=500),
    "warm near-tie A/B (margin 0.01, z 1, share 0.25, from 500)": lambda d, s: NearTieAB(d, s, share=0.25, start=500),
    # thompson near_ties: the shipped settings (benchmarks/online.py NEAR_TIES), then the neighbours tried
    "warm guarded near ties (margin 0.005, z 2.5, shrink 30, noise 0.2)": lambda d, s: GuardedNearTies(d, s),
    "warm guarded near ties (z 2.5, slack on near ties only)": lambda d, s: GuardedNearTies(d, s, all_slack=False),
    "warm guarded near ties (z 2)": lambda d, s: GuardedNearTies(d, s, z=2.0),
    "warm guarded near ties (z 3)": lambda d, s: GuardedNearTies(d, s, z=3.0),
    "warm guarded near ties (z 4)": lambda d, s: GuardedNearTies(d, s, z=4.0),
    "warm guarded near ties (margin 0.0075, z 3)": lambda d, s: GuardedNearTies(d, s, margin=0.0075, z=3.0),
    "warm guarded near ties (margin 0.01, z 3)": lambda d, s: GuardedNearTies(d, s, margin=0.01, z=3.0),
    "warm guarded near ties (margin 0.01, z 1)": lambda d, s: GuardedNearTies(d, s, margin=0.01, z=1.0),
    "warm guarded near ties (z 3, shrink 10)": lambda d, s: GuardedNearTies(d, s, z=3.0, shrink=10.0),
    "warm guarded near ties (z 3, noise 0.3)": lambda d, s: GuardedNearTies(d, s, z=3.0, noise=0.3),
}


def replay(data: Data, make: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(data.x))
    learner = make(data, seed)
    got = np.empty(len(order))
    for t, i in enumerate(order):
        arm = learner.select(i)
        got[t] = data.reward[i, arm]
        learner.update(i, arm, got[t])
    return got, data.offline[order]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="100-107", help="stream orders: a range a-b or a comma list")
    ap.add_argument("--only", default="", help="design names separated by ; (default: all)")
    ap.add_argument("--json", type=Path, default=Path("bench-out/online-replica.json"))
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--dev", action="store_true", help="stream the dev split (the offline rows split again)")
    args = ap.parse_args()
    lo_hi = args.seeds.split("-")
    seeds = list(range(int(lo_hi[0]), int(lo_hi[1]) + 1)) if len(lo_hi) == 2 else [int(s) for s in args.seeds.split(",")]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = Data(args.shared, Path(tmp), args.dev)
    lo, hi = WINDOW if len(data.x) >= WINDOW[1] else (700, len(data.x))  # --dev: 1,420 requests
    report: dict[str, Any] = {"seeds": seeds, "cold_window_2001_3000": {}, "warm_gap_at_end": {}}
    for name, make in {**COLD, **WARM}.items():
        if args.only and name not in args.only.split(";"):
            continue
        runs = [replay(data, make, s) for s in seeds]
        if name in COLD:
            ratios = [float(g[lo:hi].sum() / o[lo:hi].sum()) for g, o in runs]
            pooled = float(sum(g[lo:hi].sum() for g, _ in runs) / sum(o[lo:hi].sum() for _, o in runs))
            report["cold_window_2001_3000"][name] = {"pooled": round(pooled, 4), "per_seed": [round(r, 3) for r in ratios]}
            print(f"{name:45s} {lo + 1}–{hi} / offline {pooled:.4f}  per seed {' '.join(f'{r:.3f}' for r in ratios)}")
        else:
            ends = [float(g.sum() / o.sum() - 1) for g, o in runs]
            worst = min(float((np.cumsum(g) / np.cumsum(o) - 1)[200:].min()) for g, o in runs)
            report["warm_gap_at_end"][name] = {"mean": round(float(np.mean(ends)), 5), "above": sum(e > 0 for e in ends),
                                              "per_seed": [round(e, 5) for e in ends], "worst_from_200": round(worst, 5)}
            print(f"{name:45s} end gap mean {np.mean(ends):+.3%}, above in {sum(e > 0 for e in ends)}/{len(ends)}, "
                  f"worst running gap {worst:+.2%}  per seed {' '.join(f'{e:+.2%}' for e in ends)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
