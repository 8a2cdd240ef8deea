"""Decisions: Boolean rule trees over signals, evaluated by priority."""

from turnout.decisions.engine import DecisionEngine, DecisionTrace
from turnout.decisions.rules import evaluate

__all__ = ["DecisionEngine", "DecisionTrace", "evaluate"]
