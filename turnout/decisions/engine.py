"""The decision engine: the highest-priority decision whose rule holds wins; ties go to config order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from turnout.config import DecisionConfig, rule_signals
from turnout.context import SignalResult
from turnout.decisions.rules import evaluate


@dataclass(frozen=True)
class DecisionTrace:
    name: str
    priority: int
    matched: bool


class DecisionEngine:
    def __init__(self, decisions: Sequence[DecisionConfig]) -> None:
        # stable sort: equal priorities keep their order in the file
        self.decisions = sorted(decisions, key=lambda d: -d.priority)
        self.by_name = {d.name: d for d in decisions}
        self.referenced_signals = sorted(
            {name for d in decisions if d.when is not None for name, _ in rule_signals(d.when, "")}
        )

    def decide(self, results: Mapping[str, SignalResult]) -> tuple[DecisionConfig, list[DecisionTrace]]:
        """Evaluate every decision (the full trace is the explanation) and return the winner."""
        winner: DecisionConfig | None = None
        trace = []
        for decision in self.decisions:
            matched = evaluate(decision.when, results)
            trace.append(DecisionTrace(decision.name, decision.priority, matched))
            if matched and winner is None:
                winner = decision
        assert winner is not None, "config validation guarantees a default decision"
        return winner, trace
