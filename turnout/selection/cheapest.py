"""Cheapest selection: the candidate with the lowest expected cost for this request."""

from __future__ import annotations

from typing import Sequence

from turnout.context import Choice, RoutingContext
from turnout.selection.base import Candidate, Selector, register


@register("cheapest")
class CheapestSelector(Selector):
    def __init__(self, *, expected_output_tokens: int = 256) -> None:
        self.expected_output_tokens = expected_output_tokens

    def select(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
        costs = {c.name: c.cost.usd(ctx.token_estimate, self.expected_output_tokens) for c in candidates}
        best = min(candidates, key=lambda c: costs[c.name]).name  # ties: first in the decision's list
        return Choice(best, {k: -v for k, v in costs.items()}, f"lowest expected cost (${costs[best]:.6f})")
