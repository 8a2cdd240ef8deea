"""Near-tie exploration for a warm-started, guarded Thompson learner (`thompson` with `near_ties: margin`).

The offline router (the warm start) is trusted where it is sure. Where its top two predicted rewards are within
`margin` of each other (a near tie), which of the two is better is close to a coin toss for the router, and
there a test costs little: the request is played on the router's pick (the lead) or its runner-up by Thompson
sampling between the two, each with the residual (reward − the router's prediction) it has earned on near
ties in the request's cluster, shrunk towards its residual over all near ties (`cluster_shrink`). Every pick of
the runner-up goes through the conservative guard (turnout/selection/conservative.py: the running reward must
stay, with confidence `conservative_z`, within `conservative` of the router's), whose slack accrues over every
request, near tie or not. Elsewhere the lead is played and nothing is learned, so the statistics describe near
ties only, and what the learner spends on exploring is spent only where the gap is small.

An A/B test of the router's near ties, made sequential (Thompson instead of a fixed half) and guarded. A
Choice's features are (prior of the pick, 1 on a near tie / 0 elsewhere, [cluster], deviated, baseline estimate,
reserve): an update of a record whose flag is 0 teaches nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from turnout.context import Choice, RoutingContext
from turnout.selection.base import Candidate


class NearTiesError(ValueError):
    field = "near_ties"  # the param a config error names


def check_near_ties(selector: Any) -> None:
    """near_ties needs a router to take the lead and runner-up from, and the guard that bounds what it costs."""
    if selector.near_ties is not None and not (selector.warm_start and selector.conservative):
        raise NearTiesError("near_ties needs warm_start (the lead and runner-up are the offline router's) and "
                            "conservative (every runner-up pick goes through the guard)")


def is_near_tie(features: Sequence[float] | None) -> bool:
    """Whether a record's pick was made on a near tie (only those teach the learner)."""
    return features is not None and len(features) > 1 and features[1] > 0.5


def near_tie_select(sel: Any, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
    """The lead unless the router's top two are within `sel.near_ties`; then Thompson between the two, the
    runner-up only as far as the guard allows."""
    arms = [c.name for c in candidates]
    prior = sel._prior(ctx, candidates)
    cell = sel._cell(ctx)
    ranked = np.argsort(-prior, kind="stable")
    lead = int(ranked[0])
    runner = int(ranked[1]) if len(arms) > 1 else lead
    gap = float(prior[lead] - prior[runner])
    near = runner != lead and gap < sel.near_ties and (sel.clusters_ is None or cell is not None)
    mean, spread, score = prior.copy(), np.zeros(len(arms)), prior.copy()
    share = sel._explore_share()
    may_explore = sel.explore and (sel.max_explore_share >= 1 or share < sel.max_explore_share)
    pick = greedy = lead
    if near:
        pair = [lead, runner]
        n, n_eff, s = sel._counts([arms[a] for a in pair], cell)
        mean[pair] = prior[pair] + s / n_eff
        spread[pair] = sel.current_noise(arms) / np.sqrt(n_eff)
        score[pair] = mean[pair] + (spread[pair] * sel.rng_.standard_normal(2) if may_explore else 0.0)
        greedy = pair[int(np.argmax(mean[pair]))]
        pick = pair[int(np.argmax(score[pair]))]
    pick, guarded, note = sel.guard_.check(pick, lead, mean, spread)
    explored = pick != greedy
    sel.window_.append(explored)
    if near:
        counts = dict(zip((lead, runner), n))
        how = (f"near tie (gap {gap:.4f} < {sel.near_ties:g})" + (f" in cluster {cell}" if cell is not None else "")
               + ": " + "; ".join(f"{arms[a]} N({mean[a]:.3f}, {spread[a]:.3f}²) n={int(counts[a])} → {score[a]:.3f}"
                                  for a in (lead, runner)))
    elif runner == lead:
        how = "router's pick (one candidate)"
    elif sel.clusters_ is not None and cell is None:
        how = "router's pick (clusters not fitted yet)"
    else:
        how = f"router's pick (gap {gap:.4f} to {arms[runner]} ≥ {sel.near_ties:g})"
    reason = f"thompson near ties, {'explore' if explored else 'exploit'}: {arms[pick]}; {how}; {note}"
    down = sel.state.unavailable
    reason = f"{reason} ({down})" if down else reason
    features = (float(prior[pick]), 1.0 if near else 0.0,
                *(() if sel.clusters_ is None else (float(-1 if cell is None else cell),)), *guarded)
    return Choice(arms[pick], {a: float(v) for a, v in zip(arms, score)}, reason, features, explored)
