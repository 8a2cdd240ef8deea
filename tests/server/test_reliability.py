"""Retries, Retry-After, fallback chains, circuit breakers, the deadline and bounded resources — through the
real server with the official client, against the mock upstream."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, base_config
from turnout.testing import free_port


def reliable_config(upstream_url: str, **server) -> dict:
    config = base_config(upstream_url)
    config["server"] = {"retry": {"attempts": 2, "backoff_s": 0.01, "max_backoff_s": 5}, **server}
    config["models"]["dead"] = {"provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1",
                                "api_key": TEST_KEY, "fallbacks": ["small"], "timeout": {"connect": 0.5},
                                "breaker": {"failures": 2, "window_s": 30, "cooldown_s": 0.6}}
    config["decisions"] = [{"name": "default", "models": ["small"]}]
    return config


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)


def ask(c, text: str, model: str = "auto", **kwargs):
    raw = c.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": text}],
                                                      **kwargs)
    return raw.headers, raw.parse()


def test_a_flaky_upstream_is_retried(serve, upstream, upstream_requests):
    headers, answer = ask(client(serve(reliable_config(upstream.url))), "hello #flaky:2")
    assert answer.choices[0].message.content.startswith("echo: hello")
    assert len(upstream_requests()) == 3
    assert headers["x-turnout-attempts"] == "small:upstream_error,small:upstream_error,small:ok"


def test_retry_after_is_honoured_or_the_next_model_is_tried(serve, upstream, upstream_requests):
    config = reliable_config(upstream.url)
    config["server"]["retry"]["attempts"] = 1
    start = time.monotonic()
    with pytest.raises(openai.RateLimitError):  # 429 with Retry-After: 1, waited for, then 429 again
        ask(client(serve(config)), "busy #error:429")
    assert time.monotonic() - start >= 1.0 and len(upstream_requests()) == 2
    config["server"]["retry"]["max_backoff_s"] = 0.5  # we will not wait a whole second: fall back at once
    config["models"]["small"]["fallbacks"] = ["azure-gpt"]
    start = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        ask(client(serve(config)), "busy #error:429")
    assert time.monotonic() - start < 0.9
    assert [r["path"] for r in upstream_requests()[2:]] == ["/v1/chat/completions",
                                                            "/openai/deployments/gpt-dep/chat/completions"]


def test_fallback_chain_per_model_and_per_decision(serve, upstream, upstream_requests):
    config = reliable_config(upstream.url)
    headers, answer = ask(client(serve(config)), "hi", model="dead")
    assert headers["x-turnout-model"] == "small" and answer.choices[0].message.content == "echo: hi"
    assert headers["x-turnout-attempts"].endswith("small:ok")
    config["decisions"] = [{"name": "default", "models": ["dead"], "fallbacks": ["claude"]}]
    config["models"]["dead"]["fallbacks"] = []
    headers, _ = ask(client(serve(config)), "hi")
    assert headers["x-turnout-model"] == "claude" and upstream_requests()[-1]["path"] == "/v1/messages"


def test_a_bad_request_is_neither_retried_nor_sent_elsewhere(serve, upstream, upstream_requests):
    config = reliable_config(upstream.url)
    config["models"]["small"]["fallbacks"] = ["strong"]
    with pytest.raises(openai.BadRequestError):
        ask(client(serve(config)), "bad #error:400")
    assert len(upstream_requests()) == 1


def test_circuit_breaker_opens_skips_and_probes(serve, upstream):
    server = serve(reliable_config(upstream.url))
    c = client(server)
    for _ in range(2):  # each request fails on `dead` (3 tries: the breaker opens after 2) and falls back
        headers, _ = ask(c, "hi", model="dead")
        assert headers["x-turnout-model"] == "small"
    headers, _ = ask(c, "hi", model="dead")
    assert headers["x-turnout-attempts"] == "dead:skipped (breaker open),small:ok"
    metrics = httpx.get(server.url + "/metrics").text
    assert 'turnout_breaker_open{model="dead"} 1.0' in metrics
    time.sleep(0.7)  # cooldown over: one probe goes to `dead` again (and fails, so it opens again)
    headers, _ = ask(c, "hi", model="dead")
    assert headers["x-turnout-attempts"] == "dead:upstream_unreachable,dead:skipped (breaker open),small:ok"


def test_streams_fall_back_before_the_first_byte_never_after(serve, upstream, upstream_requests):
    c = client(serve(reliable_config(upstream.url)))
    chunks = list(c.chat.completions.create(model="dead", stream=True, messages=[{"role": "user", "content": "hey"}]))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "echo: hey"
    upstream_requests()  # (cleared by the fixture: count from here)
    httpx.delete(upstream.url + "/_requests")
    with pytest.raises(openai.APIError):
        list(c.chat.completions.create(model="small", stream=True,
                                       messages=[{"role": "user", "content": "x #midstream-fail"}]))
    assert len(upstream_requests()) == 1  # it had started answering: not sent again


def test_the_deadline_covers_retries(serve, upstream):
    config = reliable_config(upstream.url, request_timeout_s=0.5)
    start = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        ask(client(serve(config)), "slow #sleep:3")
    assert info.value.status_code == 504 and time.monotonic() - start < 2


def test_max_concurrent_and_max_messages(serve, upstream):
    server = serve(reliable_config(upstream.url, max_concurrent=2, max_messages=3))

    async def burst():
        async with httpx.AsyncClient(timeout=10) as http:
            body = {"model": "auto", "messages": [{"role": "user", "content": "wait #sleep:0.5"}]}
            return await asyncio.gather(*(http.post(server.url + "/v1/chat/completions", json=body) for _ in range(3)))

    statuses = sorted(r.status_code for r in asyncio.run(burst()))
    assert statuses == [200, 200, 503]
    rejected = [r for r in asyncio.run(burst()) if r.status_code == 503][0]
    assert rejected.headers["retry-after"] == "1" and rejected.json()["error"]["code"] == "overloaded"
    with pytest.raises(openai.BadRequestError) as info:
        client(server).chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}] * 4)
    assert info.value.param == "messages"


def test_least_busy_spreads_concurrent_requests(serve, upstream):
    config = reliable_config(upstream.url)
    config["decisions"] = [{"name": "default", "models": ["small", "strong"], "algorithm": {"name": "least_busy"}}]
    server = serve(config)

    async def burst():
        async with httpx.AsyncClient(timeout=10) as http:
            body = {"model": "auto", "messages": [{"role": "user", "content": "wait #sleep:0.4"}]}
            return await asyncio.gather(*(http.post(server.url + "/v1/chat/completions", json=body) for _ in range(4)))

    models = sorted(r.headers["x-turnout-model"] for r in asyncio.run(burst()))
    assert models == ["small", "small", "strong", "strong"]


def test_latency_selector_measures_then_prefers_the_faster():
    from turnout.backends.health import BackendStats
    from turnout.config import Cost
    from turnout.context import RoutingContext
    from turnout.selection import Candidate, selectors

    slow, fast = BackendStats(), BackendStats()
    pick = selectors.get("latency")()
    ctx = RoutingContext({"messages": []})
    candidates = [Candidate("slow", Cost(), slow), Candidate("fast", Cost(), fast)]
    assert pick.select(ctx, candidates).model == "slow"  # not measured yet
    slow.observe_latency(2.0)
    assert pick.select(ctx, candidates).model == "fast"
    fast.observe_latency(0.5)
    assert pick.select(ctx, candidates).model == "fast"
    fast.in_flight = 40  # 40 × 0.05 s of queueing: slower than `slow` now
    assert pick.select(ctx, candidates).model == "slow"
    ctx_stream = RoutingContext({"messages": [], "stream": True})
    slow.observe_ttft(0.1)
    fast.observe_ttft(0.3)
    fast.in_flight = 0
    assert pick.select(ctx_stream, candidates).model == "slow"  # streams: time to first token


def test_active_health_checks_open_and_close_the_breaker(serve, upstream):
    config = reliable_config(upstream.url)
    config["models"]["dead"]["health_check"] = {"interval_s": 0.1, "path": "/models", "timeout_s": 0.3}
    config["models"]["dead"]["breaker"] = {"failures": 2, "window_s": 30, "cooldown_s": 60}
    config["models"]["small"]["health_check"] = {"interval_s": 0.1, "path": "/_faults"}
    server = serve(config)
    deadline = time.monotonic() + 5
    while 'turnout_breaker_open{model="dead"} 1.0' not in httpx.get(server.url + "/metrics").text:
        assert time.monotonic() < deadline, "the health checks never opened the breaker of an unreachable model"
        time.sleep(0.1)
    assert 'turnout_breaker_open{model="small"} 0.0' in httpx.get(server.url + "/metrics").text
    headers, _ = ask(client(server), "hi", model="dead")  # no request wasted on it: straight to the fallback
    assert headers["x-turnout-attempts"] == "dead:skipped (breaker open),small:ok"


def test_a_client_leaving_mid_stream_stops_the_upstream_stream(serve, upstream):
    """The client closes the connection after the first chunk: turnout cancels the relay, closes its upstream
    request (the upstream sees the stream abandoned, not read to the end) and counts the request as 499."""
    config = base_config(upstream.url)
    config["decisions"] = [{"name": "default", "models": ["small"]}]
    server = serve(config)
    before = httpx.get(upstream.url + "/_streams").json()
    words = " ".join(f"word{i}" for i in range(100))
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": f"{words} #trickle:0.1"}]}
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", server.url + "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            first = next(response.iter_lines())
            assert first.startswith("data: ")
        # leaving the block closes the connection, about 10 s before the upstream would have finished
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        after = httpx.get(upstream.url + "/_streams").json()
        if after["abandoned"] > before["abandoned"]:
            break
        time.sleep(0.05)
    assert after["abandoned"] == before["abandoned"] + 1 and after["completed"] == before["completed"]
    metrics = httpx.get(server.url + "/metrics").text
    assert 'turnout_requests_total{decision="default",model="small",status="499"} 1.0' in metrics
    # and the server goes on serving
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    chunks = list(c.chat.completions.create(model="auto", stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert chunks[-1].choices[0].finish_reason == "stop"
