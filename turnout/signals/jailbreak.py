"""`jailbreak`: how likely the request is a jailbreak or a prompt injection."""

from __future__ import annotations

from turnout.signals.base import register
from turnout.signals.classifiers import BinaryProbabilitySignal


@register("jailbreak")
class JailbreakSignal(BinaryProbabilitySignal):
    """How likely the request is a jailbreak or prompt injection (trained on llm-warden's labelled prompts)."""

    default_artifact = "builtin:jailbreak"
    positive = "jailbreak"
