"""Prometheus metrics (`GET /metrics`). With several workers (`turnout serve --workers N`) each process writes
to PROMETHEUS_MULTIPROC_DIR and /metrics adds them up."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

from turnout.backends.dispatch import OK, OUTCOMES, SKIPPED

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("turnout_requests_total", "Chat completion requests", ["decision", "model", "status"])
LATENCY = Histogram("turnout_request_duration_seconds", "Request duration (to the last byte)", ["decision", "model"],
                    buckets=BUCKETS)
TTFT = Histogram("turnout_time_to_first_token_seconds", "Streams: time to the first chunk", ["model"], buckets=BUCKETS)
UPSTREAM_ERRORS = Counter("turnout_upstream_errors_total", "Failed upstream attempts", ["model", "code"])
RETRIES = Counter("turnout_retries_total", "Retries of the same model", ["model"])
FALLBACKS = Counter("turnout_fallbacks_total", "Requests answered by a fallback model", ["from_model", "to_model"])
TOKENS = Counter("turnout_tokens_total", "Tokens by model", ["model", "kind"])
COST = Counter("turnout_cost_usd_total", "Cost in USD", ["decision", "model"])
CACHE = Counter("turnout_cache_total", "Semantic cache outcomes", ["result"])
BREAKER = Gauge("turnout_breaker_open", "1 while a backend's circuit breaker is open (0.5 half-open)", ["model"],
                multiprocess_mode="max")
IN_FLIGHT = Gauge("turnout_backend_in_flight", "Requests in flight per backend", ["model"], multiprocess_mode="sum")
SESSION_SWITCHES = Counter("turnout_session_switches_total", "Sticky sessions moved to another model",
                           ["decision", "reason"])
SESSION_PINS = Counter("turnout_session_pins_total", "Requests kept on their session's pinned model")
PLAN_ATTEMPTS = Counter("turnout_plan_attempts_total", "Calls made by decisions' plans (cascade, fanout, "
                        "multi_round), by outcome", ["plan", "model", "outcome"])


# the status label from a closed set: an upstream's 4xx passes on to the client, but must not mint a series
_STATUSES = {s: str(s) for s in (200, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 431, 499, 500, 502,
                                 503, 504, 599)}


_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, remembered: prometheus_client's lookup takes a lock and checks every label
    value on each call, which every request paid three times over. Label values come from closed sets (the
    config's names, the statuses above), so this stays as small as the metric's own series."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def observe(ctx: Any, route: Any, status: int, seconds: float, usage: dict[str, Any] | None, cost: float) -> None:
    decision, model = (route.decision, route.model) if route is not None else ("none", "none")
    _child(REQUESTS, decision, model, _STATUSES.get(status) or f"{status // 100}xx").inc()
    _child(LATENCY, decision, model).observe(seconds)
    if route is not None:
        attempts = route.dispatch.attempts
        if len(attempts) > 1 or (attempts and attempts[0].outcome != OK):  # one that simply worked has none
            _attempt_metrics(attempts)
        served = [a for a in attempts if a.outcome == OK]
        if served and ctx is not None and ctx.stream:
            _child(TTFT, served[-1].model).observe(served[-1].seconds)
    # usage is the upstream's word: a counter refuses a negative step (and the request would fail on it)
    if usage:
        for kind in ("prompt_tokens", "completion_tokens"):
            if isinstance(usage.get(kind), int) and usage[kind] > 0:
                _child(TOKENS, model, kind.removesuffix("_tokens")).inc(usage[kind])
    if cost > 0:  # (not NaN either)
        _child(COST, decision, model).inc(cost)
    if ctx is not None and ctx.response_headers.get("x-turnout-cache"):
        CACHE.labels(ctx.response_headers["x-turnout-cache"]).inc()
    if route is not None and route.plan_attempts:  # plan, model and outcome all come from closed sets
        for attempt in route.plan_attempts:
            _child(PLAN_ATTEMPTS, route.plan.name if route.plan is not None else "plugin", attempt["model"],
                   attempt["outcome"]).inc()
    sticky = getattr(route, "sticky", None)
    if sticky is not None:  # session-aware routing (turnout/sessions.py): reasons are a closed set
        if sticky.switch is not None:
            _child(SESSION_SWITCHES, route.decision, sticky.switch).inc()
        elif sticky.pinned:
            SESSION_PINS.inc()


def _attempt_metrics(attempts: list[Any]) -> None:
    """Failed attempts, retries and fallbacks of one request."""
    for attempt in attempts:
        if attempt.outcome not in (OK, SKIPPED):
            # label values from a closed set only: an unknown outcome must not mint a new series
            UPSTREAM_ERRORS.labels(attempt.model, attempt.outcome if attempt.outcome in OUTCOMES
                                   else "upstream_error").inc()
    for model_name in {a.model for a in attempts}:
        extra = sum(1 for a in attempts if a.model == model_name and a.outcome != SKIPPED) - 1
        if extra > 0:
            RETRIES.labels(model_name).inc(extra)
    served = [a for a in attempts if a.outcome == OK]
    if served and attempts[0].model != served[-1].model:
        FALLBACKS.labels(attempts[0].model, served[-1].model).inc()


def export(router: Any) -> tuple[bytes, str]:
    for name in router.config.models:
        health = router.dispatcher.health(name)
        BREAKER.labels(name).set({"closed": 0.0, "half_open": 0.5, "open": 1.0}[health.breaker.state])
        IN_FLIGHT.labels(name).set(health.stats.in_flight)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# ----- config reloads ------------------------------------------------------------------------------------------
# With several workers each reloads on its own: the rejected gauge is 1 if any worker rejected the file, the
# generation is the lowest any worker serves (so a rollout sees the last worker to pick a change up).
CONFIG_REJECTED = Gauge("turnout_config_rejected", "1 while the config file on disk was rejected at the last reload "
                        "(the last good config still serves)", multiprocess_mode="livemax")
CONFIG_GENERATION = Gauge("turnout_config_generation", "Config generation served: 1 at start, +1 each accepted reload",
                          multiprocess_mode="livemin")


def config_state(generation: int, rejected: bool) -> None:
    CONFIG_GENERATION.set(generation)
    CONFIG_REJECTED.set(1.0 if rejected else 0.0)
