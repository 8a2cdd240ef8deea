"""Signals: one file per kind, registered by name in `signals`."""

from turnout.signals import context_length, keyword  # noqa: F401  (registration)
from turnout.signals.base import Signal, register, signals

__all__ = ["Signal", "register", "signals"]
