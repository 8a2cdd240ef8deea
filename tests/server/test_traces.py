"""OpenTelemetry traces end to end: the official clients → a real turnout server → the mock upstream, with the spans
exported over OTLP/HTTP (protobuf) to a real receiver on loopback that decodes them (turnout/testing/otlp_receiver.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, base_config
from tests.plans.helpers import plan_config
from turnout.config import ConfigError, parse_config
from turnout.testing import ServerThread
from turnout.testing.otlp_receiver import create_otlp_receiver

ROOT = Path(__file__).resolve().parents[2]
CLIENT_TRACE = "0af7651916cd43dd8448eb211c6e319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
SERVER, CLIENT = 2, 3  # OTLP span kinds
ERROR = 2  # OTLP status code


@pytest.fixture(scope="module")
def receiver() -> Iterator[ServerThread]:
    with ServerThread(create_otlp_receiver()) as server:
        yield server


@pytest.fixture
def spans(receiver: ServerThread) -> Any:
    httpx.delete(receiver.url + "/_spans")
    return lambda: httpx.get(receiver.url + "/_spans").json()["spans"]


def traced(upstream_url: str, receiver_url: str, **observability: Any) -> dict[str, Any]:
    config = base_config(upstream_url)
    config["observability"] = {"otlp_endpoint": receiver_url, "batch_delay_s": 0.05, **observability}
    return config


def exported(server: ServerThread, spans: Any) -> list[dict[str, Any]]:
    server.stop()  # shutting down exports every span still queued
    return spans()


def one(found: list[dict[str, Any]], name: str) -> dict[str, Any]:
    named = [s for s in found if s["name"] == name]
    assert len(named) == 1, (name, [s["name"] for s in found])
    return named[0]


def children(found: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in found if s["parent_span_id"] == parent["span_id"]]


def test_a_routed_request_is_one_trace_continued_from_the_client_and_sent_upstream(
        serve, upstream, receiver, spans, upstream_requests) -> None:
    server = serve(traced(upstream.url, receiver.url))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "why does this not compile"}],
        extra_headers={"traceparent": TRACEPARENT})
    answer = raw.parse()
    found = exported(server, spans)

    request = one(found, "POST /v1/chat/completions")
    assert request["kind"] == SERVER and request["service"] == "turnout"
    assert (request["trace_id"], request["parent_span_id"]) == (CLIENT_TRACE, CLIENT_SPAN)  # the client's trace
    assert all(s["trace_id"] == CLIENT_TRACE for s in found)
    attrs = request["attributes"]
    assert attrs["turnout.decision"] == "code" and attrs["gen_ai.request.model"] == "auto"
    assert attrs["gen_ai.response.model"] == "strong" and attrs["http.response.status_code"] == 200
    assert attrs["turnout.request_id"] == raw.headers["x-turnout-request-id"]
    assert attrs["turnout.cost_usd"] == pytest.approx(float(raw.headers["x-turnout-cost-usd"]), abs=1e-8)
    assert attrs["turnout.cost_usd"] > 0
    assert attrs["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens

    assert {s["name"] for s in children(found, request)} == {"signal code", "decision", "selection", "chat mock-strong"}
    assert one(found, "signal code")["attributes"]["turnout.matched"] is True
    assert one(found, "decision")["attributes"]["turnout.decision"] == "code"
    assert one(found, "selection")["attributes"]["turnout.model"] == "strong"
    call = one(found, "chat mock-strong")
    assert call["kind"] == CLIENT
    assert call["attributes"].items() >= {"gen_ai.provider.name": "openai", "gen_ai.system": "openai",
                                          "gen_ai.operation.name": "chat", "gen_ai.request.model": "mock-strong",
                                          "gen_ai.response.model": "mock-strong", "turnout.outcome": "ok",
                                          "gen_ai.usage.input_tokens": answer.usage.prompt_tokens}.items()
    for child in children(found, request):  # every child lies within its parent
        assert request["start_ns"] <= child["start_ns"] <= child["end_ns"] <= request["end_ns"]
    # the upstream got the attempt's span as its parent: its own spans would join this trace
    (sent,) = upstream_requests()
    assert sent["headers"]["traceparent"] == f"00-{CLIENT_TRACE}-{call['span_id']}-01"


def test_retries_and_fallbacks_are_separate_attempt_spans(serve, upstream, receiver, spans, upstream_requests) -> None:
    config = traced(upstream.url, receiver.url)
    config["server"] = {"retry": {"attempts": 1, "backoff_s": 0.01}}
    config["models"]["dead"] = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "mock-dead",
                                "api_key": TEST_KEY, "fallbacks": ["small"]}
    server = serve(config)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    text = f"#flaky:1 {uuid.uuid4()}"  # the first ask of this text fails with 500, the second is answered
    raw = client.chat.completions.with_raw_response.create(model="dead", messages=[{"role": "user", "content": text}])
    assert raw.headers["x-turnout-attempts"].split(",") == [
        "dead:upstream_unreachable", "dead:upstream_unreachable", "small:upstream_error", "small:ok"]
    found = exported(server, spans)

    request = one(found, "POST /v1/chat/completions")
    assert request["attributes"]["turnout.attempts"] == 4 and request["attributes"]["turnout.decision"] == "direct"
    attempts = sorted((s for s in children(found, request) if s["kind"] == CLIENT), key=lambda s: s["start_ns"])
    assert [(s["name"], s["attributes"]["turnout.fallback"], s["attributes"]["turnout.retry"],
             s["attributes"]["turnout.outcome"]) for s in attempts] == [
        ("chat mock-dead", 0, 0, "upstream_unreachable"), ("chat mock-dead", 0, 1, "upstream_unreachable"),
        ("chat mock-small", 1, 0, "upstream_error"), ("chat mock-small", 1, 1, "ok")]
    assert [s["status"]["code"] for s in attempts] == [ERROR, ERROR, ERROR, 0]
    assert attempts[2]["attributes"]["http.response.status_code"] == 500
    assert len({s["span_id"] for s in attempts}) == 4
    # each try that reached the upstream carried its own attempt's span
    assert [r["headers"]["traceparent"].split("-")[2] for r in upstream_requests()] == \
        [s["span_id"] for s in attempts[2:]]


def test_a_stream_span_ends_with_the_stream_and_has_its_usage(serve, upstream, receiver, spans) -> None:
    server = serve(traced(upstream.url, receiver.url))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    chunks = list(client.chat.completions.create(
        model="small", messages=[{"role": "user", "content": "#trickle:0.05 one two three"}], stream=True,
        stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    found = exported(server, spans)

    request = one(found, "POST /v1/chat/completions")
    call = one(found, "chat mock-small")
    assert call["parent_span_id"] == request["span_id"] and call["attributes"]["turnout.outcome"] == "ok"
    # the attempt ends at the first chunk; the request only when the last was sent
    assert request["end_ns"] - call["end_ns"] > 50_000_000
    attrs = request["attributes"]
    assert attrs["http.response.status_code"] == 200 and attrs["gen_ai.response.model"] == "small"
    assert attrs["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attrs["turnout.cost_usd"] > 0


def test_plugin_hooks_are_spans_and_a_cache_hit_has_no_upstream_attempt(serve, upstream, receiver, spans) -> None:
    config = traced(upstream.url, receiver.url)
    config["decisions"] = [{"name": "default", "models": ["small"], "plugins": [
        {"semantic_cache": {"semantic": False, "namespace": f"traces-{uuid.uuid4()}"}}]}]
    server = serve(config)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "what is a trace"}])
    assert raw.headers["x-turnout-cache"] == "hit"
    found = exported(server, spans)

    first, second = sorted((s for s in found if s["kind"] == SERVER), key=lambda s: s["start_ns"])
    assert first["trace_id"] != second["trace_id"]  # no client trace: each request starts its own
    assert {s["name"] for s in children(found, first)} == {
        "decision", "selection", "plugin semantic_cache.before", "chat mock-small", "plugin semantic_cache.after"}
    # the cached answer meets the after hooks too, but no upstream
    assert {s["name"] for s in children(found, second)} == {
        "decision", "selection", "plugin semantic_cache.before", "plugin semantic_cache.after"}
    assert second["attributes"]["turnout.cache"] == "hit" and second["attributes"]["turnout.cost_usd"] == 0
    assert one([s for s in found if s["trace_id"] == second["trace_id"]], "plugin semantic_cache.before")[
        "attributes"] == {"turnout.plugin": "semantic_cache", "turnout.plugin.hook": "before"}


def test_a_plans_calls_are_attempt_spans_under_its_plan_span(serve, upstream, receiver, spans) -> None:
    config = plan_config(upstream.url, {"name": "cascade"})
    config["observability"] = {"otlp_endpoint": receiver.url, "batch_delay_s": 0.05}
    server = serve(config)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "#as:mock-cheap=say:empty #as:mock-mid=say:right"}])
    assert raw.headers["x-turnout-model"] == "mid"
    found = exported(server, spans)

    request = one(found, "POST /v1/chat/completions")
    plan = one(found, "plan cascade")
    assert plan["parent_span_id"] == request["span_id"]
    assert plan["attributes"]["turnout.plan.calls"] == 2
    assert plan["attributes"]["turnout.cost_usd"] == pytest.approx(request["attributes"]["turnout.cost_usd"])
    assert [s["name"] for s in sorted(children(found, plan), key=lambda s: s["start_ns"])] == [
        "chat mock-cheap", "chat mock-mid"]


def test_every_door_opens_its_own_server_span(serve, upstream, receiver, spans) -> None:
    config = traced(upstream.url, receiver.url, service_name="router-eu")
    config["models"]["embed"] = {"provider": "openai", "base_url": f"{upstream.url}/v1", "model": "mock-embed",
                                 "api_key": TEST_KEY, "embeddings": True}
    server = serve(config)
    claude = anthropic.Anthropic(base_url=server.url, api_key="none", max_retries=0)
    claude.messages.create(model="claude", max_tokens=16, messages=[{"role": "user", "content": "hello"}])
    openai.OpenAI(base_url=server.url + "/v1", api_key="none").embeddings.create(model="embed", input="hello")
    found = exported(server, spans)

    request = one(found, "POST /v1/messages")
    assert request["service"] == "router-eu"
    assert request["attributes"]["turnout.door"] == "messages"
    call = one(found, "chat claude-mock")
    assert call["parent_span_id"] == request["span_id"]
    assert call["attributes"]["gen_ai.provider.name"] == "anthropic"
    embeddings = one(found, "POST /v1/embeddings")
    assert embeddings["attributes"]["gen_ai.operation.name"] == "embeddings"
    call = one(found, "embeddings mock-embed")
    assert call["parent_span_id"] == embeddings["span_id"] and call["attributes"]["turnout.outcome"] == "ok"


def test_errors_mark_the_span_without_their_message(serve, upstream, receiver, spans) -> None:
    server = serve(traced(upstream.url, receiver.url))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": "#leakerror:500"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    found = exported(server, spans)

    failed, missing = sorted((s for s in found if s["kind"] == SERVER), key=lambda s: s["start_ns"])
    assert failed["status"]["code"] == ERROR and failed["attributes"]["http.response.status_code"] == 502
    assert missing["attributes"]["http.response.status_code"] == 404 and missing["status"]["code"] == 0
    assert missing["attributes"]["error.type"] == "model_not_found"
    text = repr(found)
    assert TEST_KEY not in text  # an upstream's words (here quoting its key) never reach a span


def test_collector_headers_are_sent_with_each_export(serve, upstream, receiver, spans) -> None:
    server = serve(traced(upstream.url, receiver.url, headers={"authorization": "Bearer collector-token"}))
    openai.OpenAI(base_url=server.url + "/v1", api_key="none").chat.completions.create(
        model="small", messages=[{"role": "user", "content": "hi"}])
    server.stop()
    exports = httpx.get(receiver.url + "/_spans").json()["exports"]
    assert exports and all(e["authorization"] == "Bearer collector-token" for e in exports)
    assert all(e["content-type"] == "application/x-protobuf" for e in exports)


def test_sampling_keeps_none_of_ratio_zero_but_follows_a_sampled_client(
        serve, upstream, receiver, spans, upstream_requests) -> None:
    server = serve(traced(upstream.url, receiver.url, sample_ratio=0))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    client.chat.completions.create(model="small", messages=[{"role": "user", "content": "not kept"}])
    client.chat.completions.create(model="small", messages=[{"role": "user", "content": "kept"}],
                                   extra_headers={"traceparent": TRACEPARENT})
    found = exported(server, spans)
    assert {s["trace_id"] for s in found} == {CLIENT_TRACE}  # the client's sampled trace only
    unsampled, sampled = (r["headers"]["traceparent"] for r in upstream_requests())
    # the decision travels upstream either way: the sampled flag is bit 0 of the trace flags
    assert int(unsampled.split("-")[3], 16) & 1 == 0 and int(sampled.split("-")[3], 16) & 1 == 1


def test_off_by_default_nothing_is_imported_exported_or_propagated(receiver, spans, upstream) -> None:
    """A server without `observability` in its own process: even with the OpenTelemetry environment variables
    pointing at the receiver, no span is exported, no traceparent goes upstream and the SDK is never imported."""
    script = textwrap.dedent(f"""
        import sys, httpx
        from tests.conftest import base_config
        from turnout import tracing
        from turnout.config import parse_config
        from turnout.server import create_app
        from turnout.testing import ServerThread
        with ServerThread(create_app(config=parse_config(base_config({upstream.url!r})), watch=False)) as server:
            httpx.delete({upstream.url!r} + "/_requests")
            reply = httpx.post(server.url + "/v1/chat/completions", headers={{"traceparent": {TRACEPARENT!r}}},
                               json={{"model": "small", "messages": [{{"role": "user", "content": "hi"}}]}})
            assert reply.status_code == 200, reply.text
            sent = httpx.get({upstream.url!r} + "/_requests").json()
            # (the API alone may be there: FastAPI imports it; the SDK and the exporter are turnout's to load)
            print(tracing.on, sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk",
                                                                           "opentelemetry.exporter"))),
                  [r["headers"].get("traceparent") for r in sent])
    """)
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_TRACES_EXPORTER": "otlp",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "False [] [None]"
    time.sleep(0.2)
    assert spans() == []


def test_config_errors_name_the_field(upstream) -> None:
    config = base_config(upstream.url)
    for bad, field in (({"otlp_endpoint": "collector:4318"}, "observability.otlp_endpoint"),
                       ({"otlp_endpoint": "http://c:4318", "sample_ratio": 1.5}, "observability.sample_ratio"),
                       ({"endpoint": "http://c:4318"}, "observability: unknown key 'endpoint'")):
        with pytest.raises(ConfigError) as caught:
            parse_config({**config, "observability": bad})
        assert field in str(caught.value)
    ok = parse_config({**config, "observability": {"otlp_endpoint": "https://c.example:4318/"}}).observability
    assert ok.traces_url() == "https://c.example:4318/v1/traces"
    assert parse_config({**config, "observability": {"otlp_endpoint": "http://c/otlp/traces"}}) \
        .observability.traces_url() == "http://c/otlp/traces"
    assert parse_config(config).observability.otlp_endpoint is None  # off by default


def test_a_collector_that_is_down_costs_the_requests_nothing(serve, upstream) -> None:
    config = base_config(upstream.url)
    config["observability"] = {"otlp_endpoint": "http://127.0.0.1:9", "batch_delay_s": 0.05, "export_timeout_s": 1}
    server = serve(config)  # port 9 (discard) refuses: every export fails, on the exporter's own thread
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    for _ in range(20):
        started = time.perf_counter()
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": "hi"}])
        assert time.perf_counter() - started < 0.5
    started = time.perf_counter()
    server.stop()  # the last export gives up within its time limit
    assert time.perf_counter() - started < 5 and not server.thread.is_alive()
