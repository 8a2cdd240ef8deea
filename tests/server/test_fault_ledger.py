"""The fault ledger: 1,000 requests at concurrency 32 through turnout, whose primary model sits on an upstream
that fails on a schedule (500, 429, 503, hangs, connection resets before and during streams, trickles,
malformed JSON) with a fallback on a healthy one. Every request must end in an answer or a clean
OpenAI-shaped error, counted; and no request may reach an upstream again once one started answering it."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx

from tests.conftest import TEST_KEY
from turnout.testing import ServerThread, create_mock_upstream

SCHEDULE = ["ok", "500", "ok", "429", "hang", "ok", "reset", "trickle", "malformed", "503", "ok", "reset"]
ANSWERED = {"ok", "trickle", "malformed"}  # the upstream answered these (a reset stream had started, too)


def ledger_config(faulty: str, healthy: str) -> dict:
    model = {"provider": "openai", "api_key": TEST_KEY, "cost": {"input": 1, "output": 1}}
    return {
        "server": {"retry": {"attempts": 1, "backoff_s": 0.01, "max_backoff_s": 0.05}, "request_timeout_s": 20},
        "models": {
            "primary": {**model, "base_url": f"{faulty}/v1", "fallbacks": ["backup"], "timeout": {"read": 1.0},
                        "breaker": {"failures": 1000, "window_s": 1, "cooldown_s": 0.1}},
            "backup": {**model, "base_url": f"{healthy}/v1"},
        },
        "decisions": [{"name": "default", "models": ["primary"]}],
    }


async def one(http: httpx.AsyncClient, i: int) -> str:
    stream = i % 2 == 1
    body = {"model": "auto", "stream": stream, "messages": [{"role": "user", "content": f"request {i}"}]}
    if not stream:
        r = await http.post("/v1/chat/completions", json=body)
        data = r.json()
        if r.status_code == 200:
            assert data["choices"][0]["message"]["content"].split(" #")[0] == f"echo: request {i}"
            return "answer"
        assert set(data["error"]) >= {"message", "type", "code"}, data
        return f"error {r.status_code} {data['error']['code']}"
    async with http.stream("POST", "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            data = json.loads(await r.aread())
            assert set(data["error"]) >= {"message", "type", "code"}
            return f"error {r.status_code} {data['error']['code']}"
        events = [line[6:] async for line in r.aiter_lines() if line.startswith("data: ")]
    if events[-1] == "[DONE]":
        text = "".join((json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                       for e in events[:-1])
        assert text.split(" #")[0] == f"echo: request {i}", text  # (the mock echoes its fault directive)
        return "answer (stream)"
    error = json.loads(events[-1])["error"]  # ended by an OpenAI-shaped error event, never silently
    assert error["message"] and error["code"]
    return f"stream error event {error['code']}"


def test_fault_ledger(serve, upstream):
    with ServerThread(create_mock_upstream()) as faulty:
        httpx.put(faulty.url + "/_faults", json={"schedule": SCHEDULE})
        httpx.delete(upstream.url + "/_requests")
        server = serve(ledger_config(faulty.url, upstream.url))

        async def drive() -> list[str]:
            limit = asyncio.Semaphore(32)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                async def bounded(i):
                    async with limit:
                        return await one(http, i)
                return await asyncio.gather(*(bounded(i) for i in range(1000)))

        outcomes = asyncio.run(drive())
        ledger = Counter(o.split(" (")[0] if o.startswith("answer") else o for o in outcomes)
        print("\nfault ledger:", dict(ledger), "faults applied:", httpx.get(faulty.url + "/_faults").json()["applied"])
        assert sum(ledger.values()) == 1000  # nothing lost, nothing hung
        assert ledger["answer"] >= 750
        # the only failures: the upstream had started answering (garbage, or a stream that broke), so they
        # were not resent — everything retryable (500, 429, 503, hangs) ended in an answer
        assert set(ledger) <= {"answer", "error 502 upstream_error", "error 502 stream_interrupted",
                               "stream error event stream_interrupted"}

        seen: dict[str, list[tuple[str, str]]] = {}
        for where, server_url in (("faulty", faulty.url), ("healthy", upstream.url)):
            for record in httpx.get(server_url + "/_requests").json():
                text = record["body"]["messages"][-1]["content"]
                seen.setdefault(text, []).append((where, record.get("fault", "ok")))
        # requests reach the upstreams in order per request id; after one that answered, none may follow
        for text, visits in seen.items():
            answered_at = [k for k, (_, fault) in enumerate(visits) if fault in ANSWERED or
                           (fault == "reset" and int(text.split()[-1]) % 2 == 1)]
            assert not answered_at or answered_at[0] == len(visits) - 1, (text, visits)
