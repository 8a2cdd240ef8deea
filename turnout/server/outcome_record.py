"""The outcome record of one request, as the Exchange finishes it, and feedback applied to a record (explicit,
from POST /v1/feedback, or implicit, from the reask signal). Recording is synchronous and cheap: the record is
built from what the Exchange already holds and handed to the store, which never waits (turnout/state/outcomes.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from turnout.context import requested_objective, usage_count
from turnout.doors.base import Framer
from turnout.jsonutil import loads
from turnout.outcomes import Feedback, Outcome
from turnout.state.feedback import feedback_state
from turnout.state.outcomes import StoreUnavailable

if TYPE_CHECKING:
    from turnout.errors import TurnoutError
    from turnout.pipeline import Router
    from turnout.server.exchange import Exchange

log = logging.getLogger("turnout.outcomes")
_tasks: set[asyncio.Task[Any]] = set()  # implicit feedback in flight (a task nobody holds may be collected)


def record(exchange: Exchange, status: int, seconds: float, cost: float, usage: dict[str, Any] | None,
           error: str | None) -> None:
    """Write the request's record (when it got as far as a request id) and apply any re-ask it revealed."""
    ctx, route, router = exchange.ctx, exchange.route, exchange.router
    if ctx is None:
        return  # refused before its body was read: no request id was given out, nothing to rate
    choice = route.choice if route is not None else None
    prompt_tokens = usage_count(usage, "prompt_tokens")
    outcome = Outcome(
        request_id=ctx.request_id, response_id=exchange.response_id, time=time.time(), tenant=ctx.caller.key_id,
        decision=route.decision if route else None, model=route.model if route else None,
        mode=route.mode if route else None,
        # float(): a numpy score from a model-backed signal or selector would not serialise
        signals={e["name"]: float(e["score"]) for e in route.signals} if route else {},
        candidates={m: float(s) for m, s in choice.scores.items()} if choice else {}, cost_usd=cost,
        prompt_tokens=ctx.token_estimate if prompt_tokens is None else prompt_tokens,
        completion_tokens=usage_count(usage, "completion_tokens") or 0, latency_s=seconds, ttft_s=exchange.ttft_s,
        cache=ctx.response_headers.get("x-turnout-cache"), status=status, error=error, stream=ctx.stream,
        session=route.session if route else None, switched=bool(route and route.switched),
        explored=bool(choice and choice.explored),
        features=tuple(map(float, choice.features)) if choice and choice.features is not None else None,
        door=exchange.door.name, objective=requested_objective(ctx),
        plan=route.plan_record() if route is not None else None)
    config = router.config.outcomes
    router.outcomes.record(outcome, ctx.text("last_user") if config.store_prompt else None)
    for result in ctx.signals.values():
        previous = result.detail.get("reask_of") if result.matched else None
        if previous is not None and result.detail.get("implicit_rating") is not None:
            task = asyncio.get_running_loop().create_task(
                implicit(router, previous, ctx.caller.key_id, float(result.detail["implicit_rating"])))
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)


async def implicit(router: Router, request_id: str, tenant: str, rating: float) -> None:
    """A re-asked question's previous answer gets `rating`, unless it was rated already."""
    try:
        outcome = await router.outcomes.get(request_id)
        if outcome is not None and outcome.tenant == tenant:
            await apply(router, outcome, Feedback(quality=rating, rating=rating, time=time.time(), source="reask"))
    except StoreUnavailable:
        pass  # the store said so in its log; an implicit rating is worth no more effort


async def apply(router: Router, outcome: Outcome, feedback: Feedback) -> tuple[str, bool]:
    """Store the feedback on the record and tell the decision's selector. Returns what happened ("recorded",
    "replaced" or "unchanged") and whether the selector learned from it. The same feedback again changes nothing;
    a different one replaces it on the record and in the selector, which takes back what the earlier rating taught
    and learns the new one (a label alone only takes it back), so a record counts once, with its latest rating,
    however often a caller changes it; an implicit rating never replaces any earlier one."""
    previous = outcome.feedback
    if previous is not None and (feedback.source == "reask" or _same(previous, feedback)):
        return "unchanged", False
    taught = previous.quality if previous is not None and previous.learned else None
    learn = feedback.quality is not None or taught is not None
    outcome.feedback = feedback
    state = router.config.state
    if feedback.source == "explicit" and feedback.quality is not None:
        try:
            await feedback_state(state.store, state.redis_url, state.namespace).set_rating(outcome.tenant,
                                                                                           feedback.quality)
        except StoreUnavailable:
            pass  # the feedback signal misses one rating; the record has it
    learned = False
    if learn:
        try:
            learned = await router.learn(outcome, feedback.quality, replaces=taught)
        except Exception as exc:  # noqa: BLE001 - the record keeps the rating; the learner missed it
            log.warning("request_id=%s: the selector of decision %s did not learn from feedback (%s)",
                        outcome.request_id, outcome.decision, type(exc).__name__)
    feedback.learned = learned and feedback.quality is not None  # the selector holds this rating
    await router.outcomes.save(outcome)
    return ("replaced" if previous is not None else "recorded"), learned


def _same(a: Feedback, b: Feedback) -> bool:
    return (a.quality, a.rating, a.thumbs, a.success, a.label, a.comment) == \
        (b.quality, b.rating, b.thumbs, b.success, b.label, b.comment)


def response_id(body: Any) -> str | None:
    """The id the client sees in a protocol's answer or its first stream event: chat's `id`, Responses'
    `response.id`, Messages' `message.id`."""
    if not isinstance(body, dict):
        return None
    for inner in ("response", "message"):
        nested = body.get(inner)
        if isinstance(nested, dict) and isinstance(nested.get("id"), str):
            return nested["id"]
    found = body.get("id")
    return found if isinstance(found, str) else None


class IdSniffer(Framer):
    """A door's Framer that notes the response id from the first event it writes (once; then it only passes
    the bytes on), whatever the protocol."""

    def __init__(self, inner: Framer, exchange: Exchange) -> None:
        self.inner, self.exchange = inner, exchange
        self.media_type = inner.media_type  # type: ignore[misc]
        self.found = False

    def frames(self, batch: list[str], parsed: list[Any]) -> bytes:
        data = self.inner.frames(batch, parsed)
        if not self.found and data:
            self.found = True
            self.exchange.response_id = self.inner.response_id or _first_event_id(data)
        return data

    async def end(self, trailer: str) -> bytes:
        return await self.inner.end(trailer)

    def error(self, exc: TurnoutError, secrets: tuple[str, ...]) -> bytes:
        return self.inner.error(exc, secrets)


def _first_event_id(data: bytes) -> str | None:
    for line in data.split(b"\n", 40)[:40]:
        if line.startswith(b"data:"):
            try:
                return response_id(loads(line[5:].strip()))
            except ValueError:
                return None
    return None
