"""The `hallucination` plugin: checks a complete answer against the context its request carried, with the
`grounded` judge (per-sentence lexical + embedding support; see turnout/judges/grounded.py), in its `after` hook.

Every checked answer gets the header `x-turnout-grounded: SCORE` (its weakest sentence's support, 0..1) and
`x-turnout-grounded-unsupported: N`, and, with `detail: true`, a `turnout_grounded` field in the body with
every sentence, its support and the reasons. Then, by `action`:
- `annotate`: nothing more;
- `block`: an answer that fails is refused with a 422 in the protocol's error shape (type
  `invalid_request_error`, code `ungrounded_answer`), the headers above on it. A refusal, rather than a
  replaced answer, so that a client can never mistake a canned text for the model's answer;
- `escalate`: the same request is sent to `escalate_to` (a stronger model), its answer is checked too and
  returned when it is better grounded (else the first answer, annotated). Both calls are billed: they are
  recorded on the route as plan attempts, which the Exchange sums (cost header, budget, tokens).

Streams: a decision with a plan (cascade, fanout) has its answer whole before the stream starts, so it is
checked as above. A plain stream is passed through unchecked: its headers are sent with the first chunk,
before there is anything to check, and holding it back would cost the whole answer's time to first token."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from turnout.context import RoutingContext, usage_count
from turnout.errors import TurnoutError
from turnout.judges.base import Verdict, answer_text
from turnout.judges.grounded import GroundedJudge, GroundedParams
from turnout.params import Params
from turnout.plugins.base import Plugin, register


class HallucinationParams(Params):
    action: Literal["annotate", "block", "escalate"] = "annotate"
    threshold: float = Field(0.5, ge=0, le=1, description="a sentence with less support is unsupported")
    escalate_to: str | None = Field(None, description="the stronger model asked when action is escalate")
    detail: bool = Field(True, description="add turnout_grounded (every sentence) to the response body")
    judge: dict[str, Any] = Field(default_factory=dict, description="further params of the grounded judge")
    message: str = "The answer is not supported by the context the request provided."


@register("hallucination")
class HallucinationPlugin(Plugin):
    Params = HallucinationParams

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        p: HallucinationParams = params  # type: ignore[assignment]
        self.judge = GroundedJudge(GroundedParams(**{**p.judge, "threshold": p.threshold}))

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str) -> HallucinationPlugin:
        from turnout.config import ConfigError, ConfigIssue
        from turnout.params import validate_params

        p = validate_params(HallucinationParams, params, path)
        if p.action == "escalate" and not p.escalate_to:
            raise ConfigError([ConfigIssue(f"{path}.escalate_to", "required when action is escalate")])
        validate_params(GroundedParams, {**p.judge, "threshold": p.threshold}, f"{path}.judge")
        return cls(p)

    def referenced_models(self) -> list[str]:
        return [self.params.escalate_to] if self.params.escalate_to else []  # type: ignore[attr-defined]

    async def after(self, ctx: RoutingContext, response: dict[str, Any]) -> dict[str, Any]:
        p: HallucinationParams = self.params  # type: ignore[assignment]
        if not answer_text(response).strip():  # a tool call or an empty answer: nothing to check
            return response
        verdict = await self.judge.judge(ctx.body, response, None)  # type: ignore[arg-type]
        if not verdict.passed and p.action == "escalate":
            response, verdict = await self._escalate(ctx, response, verdict)
        headers = self._headers(verdict)
        ctx.response_headers.update(headers)
        if not verdict.passed and p.action == "block":
            raise TurnoutError(p.message, status=422, type="invalid_request_error", code="ungrounded_answer",
                               headers=headers)
        if p.detail:
            response = {**response, "turnout_grounded": verdict.to_dict()}
        return response

    @staticmethod
    def _headers(verdict: Verdict) -> dict[str, str]:
        unsupported = sum(1 for s in verdict.detail.get("sentences", []) if not s.get("supported"))
        return {"x-turnout-grounded": f"{verdict.score:.4f}", "x-turnout-grounded-unsupported": str(unsupported)}

    async def _escalate(self, ctx: RoutingContext, first: dict[str, Any],
                        verdict: Verdict) -> tuple[dict[str, Any], Verdict]:
        """Ask the stronger model; keep whichever answer is better grounded. Both calls are billed."""
        bound = ctx.cache.get("plugin:router")
        if bound is None:  # run outside a Router (no way to call a model): annotate only
            return first, verdict
        router, route = bound
        model: str = self.params.escalate_to  # type: ignore[attr-defined]
        attempts = route.plan_attempts
        if not attempts:  # a plain route: its own answer was a call too, and the Exchange bills attempts alone
            attempts.append({"model": route.model, "role": "answer", "outcome": "rejected",
                             "usage": first.get("usage"), "seconds": 0.0,
                             "cost_usd": router.cost_usd(route.model, first.get("usage"), ctx,
                                                         len(answer_text(first)))})
        body = {k: v for k, v in ctx.body.items() if k not in ("stream", "stream_options")}
        attempt: dict[str, Any] = {"model": model, "role": "answer", "outcome": "failed", "usage": None,
                                   "cost_usd": 0.0, "seconds": 0.0}
        attempts.append(attempt)
        start = time.monotonic()
        try:
            _, second = await router.dispatcher.complete([model], {**body, "model": model},
                                                         ctx.upstream_headers or None, route.dispatch)
        except TurnoutError:  # the stronger model failed: the first answer stands, annotated
            attempt["seconds"] = round(time.monotonic() - start, 4)
            return first, verdict
        attempt.update(usage=second.get("usage"), seconds=round(time.monotonic() - start, 4),
                       cost_usd=router.cost_usd(model, second.get("usage"), ctx, len(answer_text(second))))
        better = await self.judge.judge(ctx.body, second, None)  # type: ignore[arg-type]
        attempt["verdict"] = {"judge": "grounded", "score": round(better.score, 4), "passed": better.passed}
        if better.score > verdict.score:
            attempt["outcome"] = "accepted"
            route.model = ctx.model = model
            ctx.response_headers["x-turnout-escalated-to"] = model
            totals = {k: sum(usage_count(a.get("usage"), k) or 0 for a in attempts)
                      for k in ("prompt_tokens", "completion_tokens")}  # the answer's usage: every call, as plans do
            return {**second, "model": model, "usage": {**totals, "total_tokens": sum(totals.values())}}, better
        attempt["outcome"] = "rejected"
        return first, verdict
