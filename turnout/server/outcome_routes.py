"""Outcome records over HTTP: the admin listing, a record by request or response id, the export as a
RoutingTable-shaped JSONL, and POST /v1/feedback (any valid key; a tenant rates only its own requests)."""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from turnout.errors import InvalidRequestError, TurnoutError
from turnout.jsonutil import dumps
from turnout.outcomes import Feedback, Outcome
from turnout.pipeline import Router
from turnout.server import outcome_record
from turnout.server.body import read_json
from turnout.server.exchange import request_headers
from turnout.state import outcomes as outcome_state
from turnout.state.outcomes import (
    OutcomeQuery,
    RedisOutcomeStore,
    StoreUnavailable,
    UnknownCursor,
)

router = APIRouter()

MAX_LIMIT = 1000
FEEDBACK_FIELDS = ("request_id", "response_id", "rating", "thumbs", "success", "label", "comment")


def _unavailable() -> TurnoutError:
    return TurnoutError("the outcomes store is unavailable; retry shortly", status=503, type="service_unavailable",
                        code="store_unavailable", headers={"retry-after": "1"})


def _not_found(record_id: str, param: str | None = None) -> TurnoutError:
    return TurnoutError(f"No outcome with id '{record_id[:100]}' found.", status=404, type="invalid_request_error",
                        code="outcome_not_found", param=param)


def _admin(request: Request) -> Router:
    current: Router = request.app.state.holder.router
    current.access.require_admin(request_headers(request))
    return current


def _query(request: Request, limit_default: int = 50) -> OutcomeQuery:
    q = request.query_params
    try:
        limit = int(q.get("limit", limit_default))
    except ValueError:
        raise InvalidRequestError("limit: must be an integer", param="limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequestError(f"limit: must be between 1 and {MAX_LIMIT}", param="limit")
    since = None
    if q.get("since"):
        try:
            since = float(q["since"])
        except ValueError:
            raise InvalidRequestError("since: must be a Unix time in seconds", param="since") from None
        if not math.isfinite(since):
            raise InvalidRequestError("since: must be a Unix time in seconds", param="since")
    return OutcomeQuery(tenant=q.get("tenant") or None, decision=q.get("decision") or None,
                        model=q.get("model") or None, since=since, limit=limit, after=q.get("after") or None)


async def _page(current: Router, query: OutcomeQuery) -> tuple[list[Outcome], bool]:
    try:
        return await current.outcomes.list(query)
    except UnknownCursor:
        raise InvalidRequestError("after: no listed outcome has this request id (expired, or never made)",
                                  param="after") from None
    except StoreUnavailable:
        raise _unavailable() from None


def _listed(o: Outcome) -> dict[str, Any]:
    data = o.to_dict()
    data.pop("features", None)  # a context vector: on the record itself, not in listings
    return data


@router.get("/v1/router/outcomes")
async def list_outcomes(request: Request):
    """Admin: outcome records, newest first; filters tenant, decision, model, since; pages by limit and after."""
    current = _admin(request)
    page, more = await _page(current, _query(request))
    return JSONResponse({"object": "list", "data": [_listed(o) for o in page], "has_more": more,
                         "first_id": page[0].request_id if page else None,
                         "last_id": page[-1].request_id if page else None,
                         "dropped": current.outcomes.dropped})  # records this process could not keep


@router.get("/v1/router/outcomes/export")
async def export_outcomes(request: Request):
    """Admin: rated records with a prompt as long-form RoutingTable rows (JSONL), readable by `turnout train
    --data`. Records of one (prompt, model) are averaged; by default only prompts that every exported model
    answered are kept (the table is dense); `models=a,b` picks the models, `sparse=true` keeps every row."""
    current = _admin(request)
    cells: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    try:
        async for o in current.outcomes.scan(_query(request)):
            if o.prompt and o.model and o.feedback is not None and o.feedback.quality is not None:
                cells[(o.prompt, o.model)].append(o)
    except UnknownCursor:
        raise InvalidRequestError("after: no listed outcome has this request id", param="after") from None
    except StoreUnavailable:
        raise _unavailable() from None
    wanted = [m for m in request.query_params.get("models", "").split(",") if m] or sorted({m for _, m in cells})
    by_prompt: dict[str, set[str]] = defaultdict(set)
    for prompt, model in cells:
        by_prompt[prompt].add(model)
    sparse = request.query_params.get("sparse", "").lower() in ("1", "true")
    keep = {p for p, models in by_prompt.items() if sparse or set(wanted) <= models}
    lines = [dumps(_row(prompt, model, found)) for (prompt, model), found in cells.items()
             if prompt in keep and model in wanted]
    body = b"".join(line + b"\n" for line in lines)
    return Response(body, media_type="application/x-ndjson",
                    headers={"x-turnout-export-rows": str(len(lines)),
                             "x-turnout-export-prompts-dropped": str(len(by_prompt) - len(keep))})


def _row(prompt: str, model: str, found: list[Outcome]) -> dict[str, Any]:
    n = len(found)
    return {"prompt": prompt, "model": model,
            "score": round(sum(o.feedback.quality or 0.0 for o in found if o.feedback) / n, 6),
            "cost_usd": sum(o.cost_usd for o in found) / n, "latency_s": round(sum(o.latency_s for o in found) / n, 6),
            "task": found[0].decision or "", "records": n}


@router.get("/v1/router/outcomes/{record_id}")
async def get_outcome(request: Request, record_id: str):
    """Admin: one record, by request id (x-turnout-request-id) or by the response id the client saw."""
    current = _admin(request)
    try:
        found = await current.outcomes.get(record_id)
    except StoreUnavailable:
        raise _unavailable() from None
    if found is None:
        raise _not_found(record_id)
    return JSONResponse(found.to_dict())


@router.post("/v1/feedback")
async def post_feedback(request: Request):
    """Rate one of your requests: {"request_id" | "response_id", "rating" | "thumbs" | "success" | "label",
    "comment"?}. Idempotent; another tenant's ids are unknown (404)."""
    current: Router = request.app.state.holder.router
    caller, key = current.access.authenticate(request_headers(request))
    await current.access.admit_request(key)
    server = current.config.server
    body = await read_json(request, min(server.max_body_bytes, 64 * 1024), server.body_timeout_s, 4)
    param, record_id, feedback = parse_feedback(body)
    try:
        found = await current.outcomes.get(record_id)
        if found is None and isinstance(current.outcomes, RedisOutcomeStore):
            # another replica may have answered it moments ago, its record still in that replica's queue
            await asyncio.sleep(outcome_state.LINGER_S * 3)
            found = await current.outcomes.get(record_id)
        if found is None or found.tenant != caller.key_id:
            raise _not_found(record_id, param)  # another tenant's record is as unknown as one never made
        status, learned = await outcome_record.apply(current, found, feedback)
    except StoreUnavailable:
        raise _unavailable() from None
    summary = found.summary()
    summary.pop("signals", None)
    return JSONResponse({"object": "feedback", "status": status, "learned": learned, "outcome": summary})


def parse_feedback(body: Any) -> tuple[str, str, Feedback]:
    """(which id field, the id, the feedback); a 400 naming the field for anything else."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    for name in body:
        if name not in FEEDBACK_FIELDS:
            raise InvalidRequestError(f"{str(name)[:40]}: unknown field (valid: {', '.join(FEEDBACK_FIELDS)})",
                                      param=str(name)[:40])
    ids = [n for n in ("request_id", "response_id") if body.get(n) is not None]
    if len(ids) != 1:
        raise InvalidRequestError("request_id: give exactly one of request_id and response_id", param="request_id")
    record_id = body[ids[0]]
    if not isinstance(record_id, str) or not 0 < len(record_id) <= 200:
        raise InvalidRequestError(f"{ids[0]}: must be a non-empty string", param=ids[0])
    given = [n for n in ("rating", "thumbs", "success") if body.get(n) is not None]
    if len(given) > 1:
        raise InvalidRequestError(f"{given[1]}: give one of rating, thumbs and success", param=given[1])
    if not given and body.get("label") is None:
        raise InvalidRequestError("rating: give a rating (0..1), thumbs (up|down), success (true|false) or a label",
                                  param="rating")
    rating, thumbs, success = body.get("rating"), body.get("thumbs"), body.get("success")
    quality: float | None = None
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not 0 <= rating <= 1:
            raise InvalidRequestError("rating: must be a number from 0 to 1", param="rating")
        quality = float(rating)
    if thumbs is not None:
        if thumbs not in ("up", "down"):
            raise InvalidRequestError("thumbs: must be 'up' or 'down'", param="thumbs")
        quality = 1.0 if thumbs == "up" else 0.0
    if success is not None:
        if not isinstance(success, bool):
            raise InvalidRequestError("success: must be true or false", param="success")
        quality = 1.0 if success else 0.0
    for name, limit in (("label", 200), ("comment", 2000)):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise InvalidRequestError(f"{name}: must be a string of at most {limit} characters", param=name)
    return ids[0], record_id, Feedback(quality=quality, rating=float(rating) if rating is not None else None,
                                       thumbs=thumbs, success=success, label=body.get("label"),
                                       comment=body.get("comment"), time=time.time())
