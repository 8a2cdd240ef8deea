"""Load- and latency-aware selection from live backend statistics (turnout/backends/health.py): in-flight
requests and EWMAs of latency and time to first token, measured by this process."""

from __future__ import annotations

from typing import Literal, Sequence

from turnout.context import Choice, RoutingContext
from turnout.selection.base import Candidate, Selector, register


def _stat(candidate: Candidate, name: str, default: float) -> float:
    value = getattr(candidate.stats, name, None) if candidate.stats is not None else None
    return default if value is None else float(value)


@register("least_busy")
class LeastBusySelector(Selector):
    """The candidate with the fewest requests in flight; ties go to the lower latency, then list order."""

    def __init__(self) -> None:
        pass

    def select(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
        load = {c.name: _stat(c, "in_flight", 0) for c in candidates}
        best = min(candidates, key=lambda c: (load[c.name], _stat(c, "latency_s", 0.0))).name
        return Choice(best, {k: -v for k, v in load.items()}, f"fewest requests in flight ({load[best]:.0f})")


@register("latency")
class LatencySelector(Selector):
    """The candidate with the lowest EWMA latency (or time to first token for streams, `metric: auto`). A
    model not measured yet is tried first, so every candidate gets measured; `load_penalty` adds this many
    seconds per request already in flight, so a fast model is not piled on until it slows down."""

    def __init__(self, *, metric: Literal["auto", "latency", "ttft"] = "auto", load_penalty: float = 0.05) -> None:
        self.metric = metric
        self.load_penalty = load_penalty

    def select(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
        metric = self.metric if self.metric != "auto" else ("ttft" if ctx.stream else "latency")
        field = "ttft_s" if metric == "ttft" else "latency_s"
        expected = {c.name: _stat(c, field, -1.0) for c in candidates}
        unmeasured = [c for c in candidates if expected[c.name] < 0]
        if unmeasured:
            best = unmeasured[0].name
            return Choice(best, {k: -v for k, v in expected.items()}, f"not measured yet: trying {best}")
        score = {c.name: expected[c.name] + self.load_penalty * _stat(c, "in_flight", 0) for c in candidates}
        best = min(candidates, key=lambda c: score[c.name]).name
        return Choice(best, {k: -v for k, v in score.items()}, f"lowest expected {metric} ({score[best] * 1000:.0f} ms)")
