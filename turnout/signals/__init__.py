"""Signals: one file per kind, registered by name in `signals`."""

from turnout.signals import (  # noqa: F401  (registration)
    context_length,
    conversation,
    keyword,
    language,
    pii,
    regex,
    request_attrs,
    structure,
)
from turnout.signals.base import Signal, register, signals

__all__ = ["Signal", "register", "signals"]
