"""POST /v1/route explains a routing decision without calling any backend."""

from __future__ import annotations

import httpx


def test_route_explains_without_calling_upstream(turnout, upstream_requests):
    response = httpx.post(turnout.url + "/v1/route", json={
        "model": "auto", "messages": [{"role": "user", "content": "I got a stack trace from def main()"}]})
    assert response.status_code == 200
    e = response.json()
    assert upstream_requests() == []
    assert e["mode"] == "routed" and e["decision"] == "code" and e["model"] == "strong"
    signal = e["signals"][0]
    assert signal["name"] == "code" and signal["matched"] is True and signal["elapsed_us"] > 0
    assert signal["detail"]["words"] == ["def ", "stack trace"]
    assert e["decisions"] == [{"name": "code", "priority": 50, "matched": True},
                              {"name": "default", "priority": 0, "matched": True}]
    assert e["candidates"] == [{"model": "strong", "score": 1.0}]
    assert response.headers["x-turnout-decision"] == "code"


def test_route_validates_like_chat(turnout):
    response = httpx.post(turnout.url + "/v1/route", json={"model": "auto", "messages": [{"role": "x"}]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages[0].role"


def test_health_and_readiness(turnout):
    assert httpx.get(turnout.url + "/healthz").json()["status"] == "ok"
    ready = httpx.get(turnout.url + "/readyz").json()
    assert ready["status"] == "ready" and ready["generation"] == 1
    assert ready["models"] == ["azure-gpt", "claude", "small", "strong"]
