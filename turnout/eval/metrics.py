"""Cost–quality curves of routers and baselines on a RoutingTable, and the metrics of DESIGN.md.

A router is judged by its *curve*: for every setting of its one knob, the mean cost and mean quality of the
models it picks on the test prompts. From the curves:
- AIQ (RouterBench): area under the non-decreasing convex hull of the curve, cost normalised to [0, 1]
  between the cheapest and the most expensive single model; flat beyond the curve's most expensive point,
  zero below its cheapest (a router earns nothing for budgets it cannot meet).
- APGR (RouteLLM): mean performance gap recovered, PGR = (quality − weak) / (strong − weak), over 21 evenly
  spaced positions between the weak and the strong model. With two models the position is the share of calls
  to the strong model (as RouteLLM); with more, cost normalised between weak and strong. Weak = the cheapest
  single model, strong = the best single model.
- CPT(x%): the smallest such position at which PGR reaches x%.
- quality at the best single model's cost, and the cost at which 95 % of its quality is reached."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from turnout.eval.table import RoutingTable

Curve = list[tuple[float, float]]  # (mean cost USD, mean quality), one point per knob setting


@dataclass(frozen=True)
class Reference:
    weak: int  # index of the cheapest single model
    strong: int  # index of the best single model (cheapest among equals)
    single: list[tuple[float, float]]  # (cost, quality) per model
    c_min: float
    c_max: float


def reference(table: RoutingTable) -> Reference:
    costs, quality = table.costs.mean(axis=0), table.scores.mean(axis=0)
    weak = int(np.lexsort((-quality, costs))[0])
    strong = int(np.lexsort((costs, -quality))[0])
    return Reference(weak, strong, list(zip(costs.tolist(), quality.tolist())), float(costs.min()), float(costs.max()))


def curve_of_choices(table: RoutingTable, choices: np.ndarray) -> tuple[float, float, float]:
    """(mean cost, mean quality, share of calls to the strong model) of one choice per prompt."""
    rows = np.arange(len(table))
    strong = reference(table).strong
    return (float(table.costs[rows, choices].mean()), float(table.scores[rows, choices].mean()),
            float((choices == strong).mean()))


# cost_weight settings swept: the ones a server accepts (cost_weight ≥ 0), from quality only to 1e9, "always the
# cheapest". A router whose quality-only choice is not the dearest model cannot be pushed past it — its curve
# ends there, as its served behaviour does (a negative weight, paying for the dearer model, is rejected).
KNOB_GRID = np.concatenate([[0.0], np.geomspace(1e-3, 1e3, 61), [1e9]])


def choices_at(table: RoutingTable, predicted: np.ndarray, cost_weight: float) -> np.ndarray:
    """The models a selector picks at one knob setting: argmax(predicted − cost_weight × cost / max cost of
    the row) — the same normalisation the server applies over a request's candidates."""
    cost = table.costs / np.maximum(table.costs.max(axis=1, keepdims=True), 1e-12)
    return np.argmax(predicted - cost_weight * cost, axis=1)


def sweep_choices(table: RoutingTable, predicted: np.ndarray, knobs: np.ndarray = KNOB_GRID) -> np.ndarray:
    """The model picked for each prompt at each knob setting (knobs × prompts)."""
    return np.stack([choices_at(table, predicted, float(knob)) for knob in knobs])


def curve_of_sweep(table: RoutingTable, choices: np.ndarray) -> tuple[Curve, list[float]]:
    """The curve and the strong-call shares of choices per knob setting (knobs × prompts)."""
    points, shares = [], []
    for row in choices:
        c, q, share = curve_of_choices(table, row)
        points.append((c, q))
        shares.append(share)
    return points, shares


def sweep(table: RoutingTable, predicted: np.ndarray, knobs: np.ndarray = KNOB_GRID) -> tuple[Curve, list[float]]:
    """The curve of a router that predicts a quality per (prompt, model), over its `cost_weight` knob from 0
    (quality only) to where only cost counts. Returns the curve and the strong-call shares."""
    return curve_of_sweep(table, sweep_choices(table, predicted, knobs))


def prompt_blind(predicted: np.ndarray) -> bool:
    """True when a router predicts the same qualities for every prompt (best_single, elo): it cannot route
    by the prompt, so it is a baseline, not one of the routers that "beat random"."""
    return bool(len(predicted) > 1 and np.ptp(predicted, axis=0).max() <= 1e-9)


def upper_hull(points: Curve) -> Curve:
    """The non-decreasing convex hull: the best quality reachable at each cost by mixing the points."""
    ordered = sorted(set(points))
    frontier: Curve = []
    for c, q in ordered:  # non-decreasing: drop points that cost more and give no more
        if frontier and q <= frontier[-1][1]:
            continue
        frontier.append((c, q))
    hull: Curve = []
    for p in frontier:  # upper convex hull (monotone chain)
        while len(hull) >= 2:
            (c1, q1), (c2, q2) = hull[-2], hull[-1]
            if (q2 - q1) * (p[0] - c1) <= (p[1] - q1) * (c2 - c1):
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def interpolate(curve: Curve, x: float) -> float:
    """Quality of a (sorted) curve at cost x, flat beyond its ends."""
    xs = [c for c, _ in curve]
    ys = [q for _, q in curve]
    return float(np.interp(x, xs, ys, left=ys[0], right=ys[-1]))


def aiq(points: Curve, ref: Reference, grid: int = 2001) -> float:
    hull = upper_hull(points)
    span = ref.c_max - ref.c_min or 1.0
    normalised = [((c - ref.c_min) / span, q) for c, q in hull]
    xs = np.linspace(0, 1, grid)
    hx, hy = zip(*normalised)
    ys = np.where(xs >= hx[0] - 1e-12, np.interp(xs, hx, hy), 0.0)
    return float(np.trapezoid(ys, xs))


def _positions(points: Curve, shares: list[float] | None, ref: Reference) -> Curve:
    """Each point's position between weak (0) and strong (1): strong-call share, or normalised cost."""
    if shares is not None:
        return sorted(zip(shares, (q for _, q in points)))
    c_weak, c_strong = ref.single[ref.weak][0], ref.single[ref.strong][0]
    span = c_strong - c_weak or 1.0
    return sorted(((c - c_weak) / span, q) for c, q in points)


def _monotone(curve: Curve) -> Curve:
    best, out = -np.inf, []
    for x, q in curve:
        best = max(best, q)
        out.append((x, best))
    return out


def pgr_curve(points: Curve, ref: Reference, shares: list[float] | None = None) -> Curve:
    q_weak, q_strong = ref.single[ref.weak][1], ref.single[ref.strong][1]
    gap = q_strong - q_weak or 1.0
    return [(x, (q - q_weak) / gap) for x, q in _monotone(_positions(points, shares, ref))]


def apgr(points: Curve, ref: Reference, shares: list[float] | None = None) -> float:
    xs, ys = zip(*pgr_curve(points, ref, shares))
    return float(np.mean(np.interp(np.linspace(0, 1, 21), xs, ys)))


def _first_crossing(curve: Curve, target: float) -> float | None:
    """The smallest x at which the (sorted, interpolated) curve reaches target; None if it never does."""
    previous = None
    for x, y in curve:
        if y >= target - 1e-12:
            if previous is None or previous[1] >= y:
                return float(x)
            (x0, y0) = previous
            return float(x0 + (x - x0) * (target - y0) / (y - y0))
        previous = (x, y)
    return None


def cpt(points: Curve, ref: Reference, target: float, shares: list[float] | None = None) -> float | None:
    """Smallest position (strong-call share or normalised cost) at which PGR reaches target; None if never."""
    x = _first_crossing(pgr_curve(points, ref, shares), target)
    return None if x is None else max(0.0, x)


def quality_at_cost(points: Curve, cost: float) -> float:
    return interpolate(upper_hull(points), cost)


def cost_for_quality(points: Curve, quality: float) -> float | None:
    """Least mean cost at which the hull (points and mixes of them) reaches `quality`."""
    return _first_crossing(upper_hull(points), quality)


def random_quality(ref: Reference, cost: float) -> float:
    """Expected quality of the random mix of the weak and the strong model at a mean cost."""
    (c_weak, q_weak), (c_strong, q_strong) = ref.single[ref.weak], ref.single[ref.strong]
    return float(np.interp(cost, [c_weak, c_strong], [q_weak, q_strong]))


def gain_over_random(points: Curve, ref: Reference, grid: int = 101) -> dict:
    """The hull's quality minus the random mix's at `grid` costs from the weak to the strong model's. A router
    beats random at every cost level when the gain is positive at every cost strictly between the two (at the
    ends both are the single models). Below its cheapest point a router scores 0, as in AIQ."""
    hx, hy = zip(*upper_hull(points))
    (c_weak, q_weak), (c_strong, q_strong) = ref.single[ref.weak], ref.single[ref.strong]
    costs = np.linspace(c_weak, c_strong, grid)
    gains = (np.where(costs >= hx[0] - 1e-12, np.interp(costs, hx, hy), 0.0)
             - np.interp(costs, [c_weak, c_strong], [q_weak, q_strong]))
    inner = gains[1:-1] if len(gains) > 2 else gains
    return {"min": round(float(inner.min()), 6), "mean": round(float(gains.mean()), 6),
            "beats_random_everywhere": bool(inner.min() > 1e-9)}


def _share(cost: float | None, best_cost: float) -> float | None:
    return None if cost is None else round(cost / best_cost, 6) if best_cost > 0 else None


def summary(points: Curve, ref: Reference, shares: list[float] | None = None) -> dict:
    best_cost, best_quality = ref.single[ref.strong]
    return {
        "aiq": round(aiq(points, ref), 6),
        "apgr": round(apgr(points, ref, shares), 6),
        "cpt50": cpt(points, ref, 0.5, shares),
        "cpt80": cpt(points, ref, 0.8, shares),
        "quality_at_best_single_cost": round(quality_at_cost(points, best_cost), 6),
        "cost_at_95pct_best_single": cost_for_quality(points, 0.95 * best_quality),
        "cost_at_100pct_best_single": cost_for_quality(points, best_quality),
        # the same two costs as shares of the best single model's (what the README's "at 15 % of its cost" reads)
        "cost_share_at_95pct": _share(cost_for_quality(points, 0.95 * best_quality), best_cost),
        "cost_share_at_100pct": _share(cost_for_quality(points, best_quality), best_cost),
        "gain_over_random": gain_over_random(points, ref),
        "curve": [[round(c, 9), round(q, 6)] for c, q in sorted(points)],
    }


def baselines(table: RoutingTable) -> dict[str, dict]:
    """Each single model, the random mix of the cheapest and the best model, and the oracle."""
    ref = reference(table)
    two = len(table.models) == 2
    out: dict[str, dict] = {}
    for j, model in enumerate(table.models):
        choices = np.full(len(table), j)
        c, q, share = curve_of_choices(table, choices)
        out[f"single:{model}"] = summary([(c, q)], ref, [share] if two else None)
    shares = np.linspace(0, 1, 21).tolist()  # the random mix's expected value: no sampling noise
    (c_weak, q_weak), (c_strong, q_strong) = ref.single[ref.weak], ref.single[ref.strong]
    points = [(c_weak + p * (c_strong - c_weak), q_weak + p * (q_strong - q_weak)) for p in shares]
    out["random"] = summary(points, ref, shares if two else None)
    oracle_points, oracle_shares = sweep(table, table.scores)
    out["oracle"] = summary(oracle_points, ref, oracle_shares if two else None)
    return out
