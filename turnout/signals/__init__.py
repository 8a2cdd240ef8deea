"""Signals: one file per kind, registered by name in `signals`."""

from turnout.signals import (  # noqa: F401  (registration)
    classifiers,
    context_length,
    conversation,
    embedding,
    fact_check,
    feedback,
    jailbreak,
    keyword,
    language,
    modality,
    pii,
    reask,
    regex,
    request_attrs,
    structure,
)
from turnout.signals.base import Signal, register, signals

__all__ = ["Signal", "register", "signals"]
