"""OpenTelemetry traces: one server span per request, with children for each signal, the decision, selection, each
plugin hook, the plan and each upstream attempt; exported over OTLP/HTTP (protobuf) when `observability.otlp_endpoint`
is set. Attributes follow the GenAI semantic conventions (`gen_ai.*`) plus turnout's own (`turnout.*`).

Off (the default) it costs nothing on the request path: every hook is guarded by the one boolean `on`, so no span
object, no context look-up and no attribute dict is made; the OpenTelemetry SDK is not even imported. Callers write
`if tracing.on: ...` or `with tracing.span(...) if tracing.on else tracing.OFF:` (the conditional builds the
span's name and attributes only when tracing is on)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

log = logging.getLogger("turnout.tracing")

#: the one switch: True only while a tracer provider is set up (see `start`)
on = False
#: what a hook enters when tracing is off: nothing at all
OFF: contextlib.nullcontext[None] = contextlib.nullcontext()

_tracer: Any = None
_provider: Any = None
_api: Any = None  # (trace, context, propagator, StatusCode, SpanKind), bound by `start`
# the request span of the running request: upstream attempts read its operation name from it
_request: contextvars.ContextVar[RequestSpan | None] = contextvars.ContextVar("turnout_request_span", default=None)

# gen_ai.provider.name's well-known values for turnout's providers (others are sent as they are named)
PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "azure": "azure.ai.openai", "gemini": "gcp.gemini",
             "bedrock": "aws.bedrock"}
OPERATIONS = {"embeddings": "embeddings", "completions": "text_completion"}  # by door; every other door: chat


def start(config: Any, version: str = "") -> Any:
    """Set up the tracer provider and its OTLP/HTTP exporter from `observability` (a no-op without an endpoint);
    returns what `stop` takes. One per process: a server is one app per process (tests start them in turn)."""
    global on, _tracer, _provider, _api
    if config is None or not config.otlp_endpoint:
        return None
    from opentelemetry import context, trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace import SpanKind, StatusCode
    from opentelemetry.trace.propagation.tracecontext import (
        TraceContextTextMapPropagator,
    )

    resource = Resource.create({"service.name": config.service_name, "service.version": version})
    # our own provider, not the global one: a process may start and stop servers (tests), and the global one
    # can be set only once
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)))
    exporter = OTLPSpanExporter(endpoint=config.traces_url(), timeout=config.export_timeout_s,
                                headers={k: v.get_secret_value() for k, v in config.headers.items()})
    # the exporter's HTTP calls are blocking: they run on the processor's own thread, never on the event loop
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=config.batch_delay_s * 1000))
    _provider, _tracer = provider, provider.get_tracer("turnout", version)
    _api = (trace, context, TraceContextTextMapPropagator(), StatusCode, SpanKind)
    on = True
    log.info("traces exported to %s (sample ratio %s)", config.traces_url(), config.sample_ratio)
    return provider


async def stop(provider: Any) -> None:
    """Export what is left and stop (off the event loop: the exporter blocks)."""
    global on, _provider, _tracer
    if provider is None:
        return
    if provider is _provider:
        _provider, on, _tracer = None, False, None
    await asyncio.to_thread(provider.shutdown)


class RequestSpan:
    """The server span of one request: the parent of every other span of it. Opened when the request arrives,
    ended when its answer (or its stream) ends."""

    def __init__(self, method: str, path: str, door: str, headers: Mapping[str, str]) -> None:
        trace, context, propagator, _, kind = _api
        parent = propagator.extract(headers)  # a client's W3C traceparent continues its trace
        self.operation = OPERATIONS.get(door, "chat")
        self.span = _tracer.start_span(f"{method} {path}", context=parent, kind=kind.SERVER, attributes={
            "http.request.method": method, "url.path": path, "turnout.door": door,
            "gen_ai.operation.name": self.operation})
        self.ended = False
        # an unsampled request still sends its trace context upstream (the decision travels), but makes no other span
        self.recording = self.span.is_recording()
        self._token = context.attach(trace.set_span_in_context(self.span, parent))
        self._mine = _request.set(self)

    def leave(self) -> None:
        """The request's handler is done (its stream, if any, goes on): its context is restored."""
        _request.reset(self._mine)
        _api[1].detach(self._token)

    def end(self, attributes: dict[str, Any], status: int, error: str | None) -> None:
        if self.ended:
            return
        self.ended = True
        span = self.span
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        span.set_attribute("http.response.status_code", status)
        if error:
            span.set_attribute("error.type", error)
        if status >= 500:
            span.set_status(_api[3].ERROR, error or str(status))
        span.end()


def recording() -> bool:
    """Whether the running request's trace is kept (no request: no span either)."""
    request = _request.get()
    return request is not None and request.recording


def span(name: str, attributes: dict[str, Any] | None = None, client: bool = False) -> Any:
    """A child span of the current one, current while the block runs; a TurnoutError's code (never its message,
    which may quote an upstream) marks it failed. In a trace that is not kept: nothing (a span that ignores all)."""
    return _span(name, attributes, client) if recording() else contextlib.nullcontext(_api[0].INVALID_SPAN)


@contextlib.contextmanager
def _span(name: str, attributes: dict[str, Any] | None, client: bool) -> Iterator[Any]:
    kind = _api[4].CLIENT if client else _api[4].INTERNAL
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes, record_exception=False,
                                       set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as exc:
            failed(current, exc)
            raise


def failed(current: Any, exc: BaseException) -> None:
    what = getattr(exc, "code", None) or type(exc).__name__
    current.set_attribute("error.type", str(what))
    current.set_status(_api[3].ERROR, str(what))


def leaf(name: str, started: float, attributes: dict[str, Any]) -> None:
    """A span that has already happened (from `started`, a perf_counter reading, to now), as a child of the
    current one: for steps that time themselves anyway (signals, the decision, selection)."""
    if not recording():
        return
    end = time.time_ns()
    begin = end - int((time.perf_counter() - started) * 1e9)
    _tracer.start_span(name, start_time=begin, attributes=attributes).end(end_time=end)


def attempt(model: str, config: Any, retry: int, fallback: int) -> Any:
    """The span of one upstream attempt (a retry or a fallback is another one), named as GenAI client spans are."""
    request = _request.get()
    if request is None or not request.recording:
        return contextlib.nullcontext(_api[0].INVALID_SPAN)
    operation = request.operation
    upstream = config.model or config.deployment or model
    provider = PROVIDERS.get(config.provider, config.provider)
    return span(f"{operation} {upstream}", {
        "gen_ai.operation.name": operation, "gen_ai.provider.name": provider, "gen_ai.system": provider,
        "gen_ai.request.model": upstream, "turnout.model": model, "turnout.retry": retry,
        "turnout.fallback": fallback}, client=True)


def answered(current: Any, outcome: str, result: Any) -> None:
    """An attempt's outcome, and the answering model and usage when its result is a completion."""
    current.set_attribute("turnout.outcome", outcome)
    if isinstance(result, dict):
        usage_attributes(current, result.get("usage"))
        if isinstance(result.get("model"), str):
            current.set_attribute("gen_ai.response.model", result["model"])


def usage_attributes(current: Any, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    for key, name in (("prompt_tokens", "gen_ai.usage.input_tokens"),
                      ("completion_tokens", "gen_ai.usage.output_tokens")):
        if isinstance(usage.get(key), int):
            current.set_attribute(name, usage[key])


def inject(headers: dict[str, str] | None) -> dict[str, str]:
    """The upstream request's headers with the current span's traceparent (a copy: the caller's stay as they are)."""
    sent = dict(headers) if headers else {}
    _api[2].inject(sent)
    return sent


def hook(plugin: str, hook_name: str) -> Any:
    """A plugin hook's span (a model an after hook calls, hallucination's judge, is an attempt span below it)."""
    return span(f"plugin {plugin}.{hook_name}", {"turnout.plugin": plugin, "turnout.plugin.hook": hook_name})
