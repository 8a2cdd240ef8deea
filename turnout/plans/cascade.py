"""The `cascade` plan: try the models in order (cheapest first), judge each answer, return the first that passes.

FrugalGPT / AutoMix style. With no `models` the decision's models are tried cheapest first (input + output
price). At most `max_attempts` answers are asked for, within one deadline (`deadline_s`, capped by
server.request_timeout_s); a model that fails or runs past `attempt_timeout_s` counts as a failed attempt and
the next is tried. When no answer passes, `on_fail` decides: `best` (the highest score; later models win ties)
or `last` (the last answer, usually the strongest model's), or `error` (a 502 naming the attempts).

The non-stream answer carries every attempt in `turnout_cascade`. A stream is answered once the cascade has
chosen: each attempt is asked for and judged whole, and the accepted one is then streamed. The cost is time to
first token: a stream's TTFT becomes the cascade's whole latency (every attempt's full answer plus judging), not
the first model's TTFT. No judge here works on a prefix (format needs the whole JSON, verifier and consistency a
finished answer), so none can start the client's stream early."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from turnout.backends.dispatch import falls_back
from turnout.errors import TurnoutError, UpstreamError
from turnout.plans.base import Plan, PlanParams, PlanRun, no_answer, register


class CascadeParams(PlanParams):
    judge: dict[str, Any] = Field(default_factory=lambda: {"name": "format"},
                                  description="the judge of each answer, {name, params}")
    max_attempts: int | None = Field(None, ge=1, description="answers asked for at most (default: every model)")
    on_fail: Literal["best", "last", "error"] = "best"


@register("cascade")
class CascadePlan(Plan):
    Params = CascadeParams

    @classmethod
    def judge_fields(cls) -> tuple[str, ...]:
        return ("judge",)

    @staticmethod
    def default_order(models: list[str], config: Any) -> list[str]:
        return sorted(models, key=lambda m: config.models[m].cost.input + config.models[m].cost.output
                      if m in config.models else 0.0)

    async def run(self, run: PlanRun) -> dict[str, Any]:
        p: CascadeParams = self.params  # type: ignore[assignment]
        tried: list[tuple[float, str, dict[str, Any], dict[str, Any]]] = []  # (score, model, answer, attempt)
        errors: list[BaseException] = []
        for model in run.answerers(self.models)[:p.max_attempts]:
            if run.remaining() <= 0:
                break
            try:
                answer, attempt = await run.call(model, timeout=p.attempt_timeout_s)
            except UpstreamError as exc:
                if not falls_back(exc):
                    raise  # the request itself is wrong (400, 413, 422): no other model will take it either
                errors.append(exc)
                continue
            verdict = await run.judge("judge", model, answer, attempt)
            if verdict.passed:
                attempt["outcome"] = "accepted"
                return run.finish(model, answer, "turnout_cascade")
            attempt["outcome"] = "rejected"
            tried.append((verdict.score, model, answer, attempt))
        if not tried:
            raise no_answer(errors, "cascade")
        if p.on_fail == "error":
            raise TurnoutError("no answer of the cascade passed its judge (" +
                               ", ".join(f"{m}: {a['verdict'].get('score')}" for _, m, _, a in tried) + ")",
                               status=502, type="upstream_error", code="cascade_rejected")
        chosen = tried[-1] if p.on_fail == "last" else max(reversed(tried), key=lambda t: t[0])
        chosen[3]["outcome"] = "picked"  # returned although rejected: nothing better was had
        return run.finish(chosen[1], chosen[2], "turnout_cascade")
