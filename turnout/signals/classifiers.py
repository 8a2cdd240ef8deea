"""Signals backed by a trained linear classifier over the request embedding (and, for the shipped domain and
complexity models, hashed n-grams of the text): domain, complexity (and, in jailbreak.py, jailbreak).
Each ships a default artifact trained on ../shared/data (scripts/train_signal_classifiers.py) and accepts a
user's own (`turnout train-classifier`)."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from turnout.context import RoutingContext, SignalResult
from turnout.models.classifier import LinearClassifier, load_classifier
from turnout.models.request import embedding_inline, request_embedding
from turnout.params import Params
from turnout.signals.base import Signal, register


class ClassifierSignal(Signal):
    cost = 10
    default_artifact: ClassVar[str]

    def __init__(self, name: str, params: Params) -> None:
        super().__init__(name, params)
        self.model: LinearClassifier = load_classifier(params.artifact or self.default_artifact)

    def runs_inline(self, ctx: RoutingContext) -> bool:
        return embedding_inline(ctx, self.model.encoder, self.params.scope)

    async def probabilities(self, ctx: RoutingContext) -> np.ndarray:
        """The model's probability of each of its labels for this request."""
        vector = await request_embedding(ctx, self.model.encoder, self.params.scope)
        # a model with n-gram features reads the text too (cached on the context; the scan is linear, capped)
        return self.model.proba(vector, ctx.text(self.params.scope) if self.model.uses_text else None)

    async def classify(self, ctx: RoutingContext) -> tuple[str, float, dict[str, float]]:
        vector = await request_embedding(ctx, self.model.encoder, self.params.scope)
        return self.model.predict(vector, ctx.text(self.params.scope) if self.model.uses_text else None)


class DomainParams(Params):
    domains: list[str] = Field(min_length=1, description="matched when the top domain is one of these")
    min_confidence: float = Field(0.4, ge=0, le=1)
    artifact: str | None = Field(None, description="a classifier .npz; default: the shipped domain model")
    scope: Literal["last_user", "user", "all"] = "last_user"


@register("domain")
class DomainSignal(ClassifierSignal):
    """The subject of the request (math, code, science, health, law, ...); score = the top domain's probability
    when it is one of `domains`."""

    Params = DomainParams
    default_artifact = "builtin:domain"

    def __init__(self, name: str, params: DomainParams) -> None:
        super().__init__(name, params)
        unknown = sorted(set(params.domains) - set(self.model.labels))
        if unknown:
            raise ValueError(f"unknown domains {unknown} (the classifier knows: {', '.join(self.model.labels)})")

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        label, p, probs = await self.classify(ctx)
        wanted = label in self.params.domains
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
        return SignalResult(wanted and p >= self.params.min_confidence, p if wanted else 0.0,
                            {"domain": label, "top": {k: round(v, 3) for k, v in top}})


class ProbabilityParams(Params):
    threshold: float = Field(0.5, ge=0, le=1, description="matched when the probability reaches it")
    artifact: str | None = None
    scope: Literal["last_user", "user", "all"] = "last_user"


class BinaryProbabilitySignal(ClassifierSignal):
    """Score = the probability of `positive`; matched at `threshold`."""

    Params = ProbabilityParams
    positive: ClassVar[str]

    def __init__(self, name: str, params: ProbabilityParams) -> None:
        super().__init__(name, params)
        # the positive label's column (None: a user's model without it, whose probability of it is 0)
        self._column = self.model.labels.index(self.positive) if self.positive in self.model.labels else None
        self._detail = f"p_{self.positive}"

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        # only the positive label's probability: the label dictionary predict() builds is not needed
        probabilities = await self.probabilities(ctx)
        p = 0.0 if self._column is None else float(probabilities[self._column])
        return SignalResult(p >= self.params.threshold, p, {self._detail: round(p, 4)})


@register("complexity")
class ComplexitySignal(BinaryProbabilitySignal):
    """How likely a small open model is to get this request wrong (trained on LLMRouter's routing data)."""

    default_artifact = "builtin:complexity"
    positive = "hard"
