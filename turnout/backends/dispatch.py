"""Sending a request through a chain of models: retries with exponential backoff and jitter (honouring
Retry-After) for failures before the first byte, then the next model of the fallback chain; circuit breakers
skip backends that keep failing; one deadline covers it all. Nothing is retried once an answer has started
streaming: a failure then ends the stream with an error event (server/sse.py).

Which failures move on: connection errors, timeouts, 408, 429 and 5xx are retried on the same model, then
fall back (never once the upstream answered: a malformed body, or a stream that broke after its 200); 401/403/404 (that provider's key or model is wrong) fall back at once; other 4xx (the request
itself is bad: 400, 413, 422) go straight back to the caller."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from turnout import tracing
from turnout.backends.base import Backend
from turnout.backends.health import BackendHealth, HealthRegistry
from turnout.config import Config, RetryConfig
from turnout.errors import (
    StreamInterruptedError,
    TurnoutError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)

T = TypeVar("T")
RETRY_STATUSES = {408, 429}
FALLBACK_STATUSES = {401, 403, 404}


class NoBackendAvailable(TurnoutError):
    status = 503
    type = "service_unavailable"
    code = "no_backend_available"


OK, SKIPPED = "ok", "skipped (breaker open)"
# An attempt's outcome is one of these and nothing else: it becomes a metric label and a response header, so an
# upstream's own error code (any string it likes, a key included) never does.
_NAMED_STATUSES = (400, 401, 403, 404, 408, 409, 413, 422, 429)
OUTCOMES = frozenset({OK, SKIPPED, "upstream_error", "upstream_timeout", "upstream_unreachable",
                      "stream_interrupted", "http_4xx", *(f"http_{s}" for s in _NAMED_STATUSES)})


def outcome_of(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamTimeoutError):
        return "upstream_timeout"
    if isinstance(exc, UpstreamConnectionError):
        return "upstream_unreachable"
    if isinstance(exc, StreamInterruptedError):
        return "stream_interrupted"
    status = exc.upstream_status
    if status is not None and 400 <= status < 500:
        return f"http_{status}" if status in _NAMED_STATUSES else "http_4xx"
    return "upstream_error"


@dataclass
class Attempt:
    model: str
    outcome: str  # one of OUTCOMES
    seconds: float = 0.0


@dataclass
class DispatchLog:
    """What happened on the way to an answer: every attempt, for headers, logs and metrics."""

    attempts: list[Attempt] = field(default_factory=list)


def retryable(exc: UpstreamError) -> bool:
    status = exc.upstream_status
    return status is None or status in RETRY_STATUSES or status >= 500


def falls_back(exc: UpstreamError) -> bool:
    return retryable(exc) or exc.upstream_status in FALLBACK_STATUSES


def backoff_s(policy: RetryConfig, retry: int, exc: UpstreamError) -> float:
    """Exponential backoff with ±50 % jitter; an upstream's Retry-After (seconds) wins when it says more."""
    wait = policy.backoff_s * (2 ** retry) * random.uniform(0.5, 1.5)
    stated = (exc.headers or {}).get("retry-after", "")
    try:
        wait = max(wait, float(stated))
    except ValueError:
        pass
    return wait


class Dispatcher:
    def __init__(self, config: Config, backends: dict[str, Backend]) -> None:
        self.config = config
        self.backends = backends
        self.registry = HealthRegistry(config.state)  # shared breakers when state.store is redis

    def health(self, model: str) -> BackendHealth:
        return self.registry.of(model, self.config.models[model])

    async def check_health(self) -> None:
        """One round of active health checks: GET `health_check.path` on each backend that has one; a failure
        counts for its breaker, a success closes an open one."""
        async def probe(name: str) -> None:
            model = self.config.models[name]
            client = getattr(self.backends.get(name), "client", None)
            if model.health_check is None or client is None or not model.base_url:
                return
            health = self.health(name)
            try:
                response = await client.get(model.base_url.rstrip("/") + model.health_check.path,
                                            timeout=model.health_check.timeout_s)
                ok = response.status_code < 500
            except Exception:  # noqa: BLE001 - unreachable, timed out, refused: all mean unhealthy
                ok = False
            if ok and health.breaker.state != "closed":
                health.breaker.record_success()
            elif not ok:
                health.breaker.record_failure()

        await asyncio.gather(*(probe(n) for n in self.config.models))

    def health_check_interval(self) -> float | None:
        intervals = [m.health_check.interval_s for m in self.config.models.values() if m.health_check]
        return min(intervals) if intervals else None

    def chain(self, first: str, decision_fallbacks: list[str]) -> list[str]:
        return list(dict.fromkeys([first, *self.config.models[first].fallbacks, *decision_fallbacks]))

    async def complete(self, chain: list[str], body: dict[str, Any], headers: dict[str, str] | None,
                       log: DispatchLog) -> tuple[str, dict[str, Any]]:
        return await self.call(chain, lambda backend: backend.complete(body, headers), log)

    async def call(self, chain: list[str], operation: Callable[[Backend], Awaitable[T]],
                   log: DispatchLog) -> tuple[str, T]:
        """Any one-shot call (a completion, embeddings, a passed-through request) down the chain, with the same
        retries, fallbacks, breakers and deadline; returns the model that answered and its answer."""
        async def attempt(model: str, timeout: float) -> T:
            health = self.health(model)
            health.stats.in_flight += 1
            start = time.monotonic()
            try:
                async with asyncio.timeout(timeout):  # no extra task, unlike wait_for
                    result = await operation(self.backends[model])
            finally:
                health.stats.in_flight -= 1
            health.stats.observe_latency(time.monotonic() - start)
            return result

        return await self._run(chain, attempt, log)

    async def stream(self, chain: list[str], body: dict[str, Any], headers: dict[str, str] | None,
                     log: DispatchLog) -> tuple[str, AsyncIterator[list[str]]]:
        """The first model (of the chain) that starts answering; its stream with the first batch in hand."""
        return await self.open_stream(chain, lambda backend: backend.stream(body, headers), log)

    async def open_stream(self, chain: list[str], operation: Callable[[Backend], AsyncIterator[list[T]]],
                          log: DispatchLog) -> tuple[str, AsyncIterator[list[T]]]:
        """Any streamed call down the chain: retried and failed over until a model sends its first batch."""

        async def call(model: str, timeout: float) -> AsyncIterator[list[T]]:
            health = self.health(model)
            health.stats.in_flight += 1
            start = time.monotonic()
            batches = operation(self.backends[model])
            try:
                async with asyncio.timeout(timeout):
                    first = await anext(batches)
            except BaseException as exc:
                health.stats.in_flight -= 1
                await batches.aclose()
                if isinstance(exc, StopAsyncIteration):
                    raise UpstreamError(f"upstream '{model}' returned an empty stream", upstream_status=200,
                                        status=502) from None
                if isinstance(exc, StreamInterruptedError):
                    # the upstream accepted the request (200), then sent garbage or broke off: it had started
                    # answering, so the request is not sent anywhere again
                    exc.upstream_status = 200
                raise
            health.stats.observe_ttft(time.monotonic() - start)
            return _continue(first, batches, health)

        return await self._run(chain, call, log)

    async def _run(self, chain: list[str], call: Callable[[str, float], Awaitable[T]], log: DispatchLog) -> tuple[str, T]:
        deadline = time.monotonic() + self.config.server.request_timeout_s
        last: UpstreamError | None = None
        for fallback, model in enumerate(chain):
            health = self.health(model)
            policy = self.config.models[model].retry or self.config.server.retry
            for retry in range(policy.attempts + 1):
                if not health.breaker.allow():
                    log.attempts.append(Attempt(model, SKIPPED))
                    if tracing.on:
                        with tracing.attempt(model, self.config.models[model], retry, fallback) as span:
                            span.set_attribute("turnout.outcome", SKIPPED)
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise last or UpstreamTimeoutError("the request deadline passed before any model answered")
                start = time.monotonic()
                try:
                    if tracing.on:  # a span per attempt, current while it runs: its traceparent goes upstream
                        result = await self._traced(call, model, remaining, retry, fallback)
                    else:
                        result = await call(model, remaining)
                except asyncio.TimeoutError:
                    exc: UpstreamError = UpstreamTimeoutError(f"upstream '{model}' did not answer before the deadline")
                except UpstreamError as error:
                    exc = error
                else:
                    health.breaker.record_success()
                    log.attempts.append(Attempt(model, OK, time.monotonic() - start))
                    return model, result
                log.attempts.append(Attempt(model, outcome_of(exc), time.monotonic() - start))
                if retryable(exc):
                    health.breaker.record_failure()
                else:
                    health.breaker.release_probe()
                if not falls_back(exc):
                    raise exc  # the request itself is wrong: no other model will take it either
                last = exc
                if not retryable(exc) or retry == policy.attempts:
                    break
                wait = backoff_s(policy, retry, exc)
                if wait > policy.max_backoff_s or time.monotonic() + wait >= deadline:
                    break  # the upstream asks us to wait longer than we would: try the next model
                await asyncio.sleep(wait)
        if last is None:
            soonest = min((self.health(m).breaker.retry_after_s for m in chain), default=1.0)
            raise NoBackendAvailable(f"every model for this request is failing and paused ({', '.join(chain)})",
                                     headers={"retry-after": str(max(1, round(soonest)))})
        raise last

    async def _traced(self, call: Callable[[str, float], Awaitable[T]], model: str, remaining: float, retry: int,
                      fallback: int) -> T:
        with tracing.attempt(model, self.config.models[model], retry, fallback) as span:
            try:
                result = await call(model, remaining)
            except TimeoutError:
                span.set_attribute("turnout.outcome", "upstream_timeout")
                raise
            except UpstreamError as exc:
                span.set_attribute("turnout.outcome", outcome_of(exc))
                if exc.upstream_status is not None:
                    span.set_attribute("http.response.status_code", exc.upstream_status)
                raise
            tracing.answered(span, OK, result)
            return result


async def _continue(first: list[T], batches: AsyncIterator[list[T]], health: BackendHealth) -> AsyncIterator[list[T]]:
    try:
        yield first
        async for batch in batches:
            yield batch
    finally:
        health.stats.in_flight -= 1
        await batches.aclose()
