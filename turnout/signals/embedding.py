"""Embedding signal: how close the request is to a category's example utterances."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from turnout.context import RoutingContext, SignalResult
from turnout.models.encoders import ENCODERS, get_encoder
from turnout.models.request import request_embedding
from turnout.params import Params
from turnout.signals.base import Signal, register


class EmbeddingParams(Params):
    examples: list[str] = Field(min_length=1, description="utterances that typify the category")
    threshold: float = Field(0.55, ge=-1, le=1, description="matched when the aggregate similarity reaches it")
    aggregate: Literal["max", "mean", "top_k"] = "max"
    top_k: int = Field(3, ge=1)
    encoder: Literal[ENCODERS] = "minilm-static"  # type: ignore[valid-type]
    scope: Literal["last_user", "user", "all"] = "last_user"


@register("embedding")
class EmbeddingSignal(Signal):
    """Score = max / mean / mean of the top-k cosine similarities between the request and the examples."""

    Params = EmbeddingParams
    cost = 10

    def __init__(self, name: str, params: EmbeddingParams) -> None:
        super().__init__(name, params)
        self.examples = get_encoder(params.encoder).encode(list(params.examples))

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        vector = await request_embedding(ctx, self.params.encoder, self.params.scope)
        sims = self.examples @ vector
        if self.params.aggregate == "max":
            score = float(sims.max())
        elif self.params.aggregate == "mean":
            score = float(sims.mean())
        else:
            score = float(np.sort(sims)[-self.params.top_k:].mean())
        best = int(np.argmax(sims))
        return SignalResult(score >= self.params.threshold, score,
                            {"nearest": self.params.examples[best], "similarity": round(float(sims[best]), 4)})
