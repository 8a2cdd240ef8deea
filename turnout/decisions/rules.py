"""Pure evaluation of a rule tree over signal results."""

from __future__ import annotations

from collections.abc import Mapping

from turnout.config import AllRule, AnyRule, NotRule, SignalRule
from turnout.context import SignalResult

Rule = AllRule | AnyRule | NotRule | SignalRule


def evaluate(rule: Rule | None, results: Mapping[str, SignalResult]) -> bool:
    """True when the rule holds. A missing or failed signal counts as not matched."""
    if rule is None:
        return True
    if isinstance(rule, SignalRule):
        result = results.get(rule.signal)
        if result is None or result.error is not None:
            return False
        if rule.min_score is not None:
            return result.score >= rule.min_score
        return result.matched
    if isinstance(rule, AllRule):
        return all(evaluate(r, results) for r in rule.all)
    if isinstance(rule, AnyRule):
        return any(evaluate(r, results) for r in rule.any)
    if isinstance(rule, NotRule):
        return not evaluate(rule.not_, results)
    raise TypeError(f"not a rule: {rule!r}")
