"""Static selection: always the first candidate in the decision's list."""

from __future__ import annotations

from typing import Sequence

from turnout.context import Choice, RoutingContext
from turnout.selection.base import Candidate, Selector, register


@register("static")
class StaticSelector(Selector):
    def __init__(self) -> None:
        pass

    def select(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
        scores = {c.name: (1.0 if i == 0 else 0.0) for i, c in enumerate(candidates)}
        return Choice(candidates[0].name, scores, "first model of the decision")


@register("random")
class RandomSelector(Selector):
    """A uniformly random candidate, seeded by the request id: the baseline every router must beat."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def select(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
        import random

        pick = random.Random(f"{self.seed}:{ctx.request_id}").randrange(len(candidates))
        scores = {c.name: (1.0 if i == pick else 0.0) for i, c in enumerate(candidates)}
        return Choice(candidates[pick].name, scores, "random pick")
