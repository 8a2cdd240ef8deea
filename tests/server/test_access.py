"""API keys, roles, permissions, rate limits and budgets, the admin key — through the real server; shared
counters across two turnout processes on a real redis-server."""

from __future__ import annotations

import hashlib
import logging
import time

import httpx
import openai
import pytest
import yaml

from tests.conftest import base_config, fresh_minute
from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture
from tests.process import start_turnout
from turnout.testing import free_port

ALICE, BOB, ADMIN = "sk-alice-0123456789abcdef", "sk-bob-0123456789abcdef", "sk-admin-0123456789abcdef"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def access_config(upstream_url: str, **alice) -> dict:
    config = base_config(upstream_url)
    config["signals"]["staff"] = {"kind": "role", "roles": ["staff"]}
    config["decisions"] = [
        {"name": "staff", "priority": 10, "when": {"signal": "staff"}, "models": ["strong"]},
        {"name": "default", "models": ["small", "strong"]},
    ]
    ns = f"t{time.monotonic_ns()}"
    config["auth"] = {"admin_key_sha256": sha(ADMIN), "keys": [
        {"name": f"alice-{ns}", "key_sha256": sha(ALICE), **alice},
        {"name": f"bob-{ns}", "key": BOB, "roles": ["staff"]},
    ]}
    return config


def client(server, key: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key or "", max_retries=0)


def ask(c, text="hi", model="auto", **kwargs):
    raw = c.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": text}],
                                                      **kwargs)
    return raw.headers, raw.parse()


def test_keys_are_required_and_never_logged(serve, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    server = serve(access_config(upstream.url))
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"  # no key at all
    with pytest.raises(openai.AuthenticationError):
        ask(client(server, "sk-wrong"))
    assert ask(client(server, ALICE))[1].choices
    r = httpx.post(server.url + "/v1/chat/completions", headers={"x-api-key": ALICE},
                   json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert ALICE not in logged and "sk-wrong" not in logged


def test_roles_feed_the_role_signal(serve, upstream):
    server = serve(access_config(upstream.url))
    assert ask(client(server, BOB))[0]["x-turnout-decision"] == "staff"
    assert ask(client(server, ALICE))[0]["x-turnout-decision"] == "default"


def test_allowed_models_and_decisions(serve, upstream):
    server = serve(access_config(upstream.url, models=["small"]))
    alice = client(server, ALICE)
    headers, _ = ask(alice)  # the default decision may pick only `small` for her
    assert headers["x-turnout-model"] == "small"
    with pytest.raises(openai.PermissionDeniedError) as info:
        ask(alice, model="strong")
    assert info.value.code == "model_not_allowed"
    server = serve(access_config(upstream.url, decisions=["staff"]))
    with pytest.raises(openai.PermissionDeniedError) as info:
        ask(client(server, ALICE))
    assert info.value.code == "decision_not_allowed"


def test_requests_per_minute(serve, upstream):
    server = serve(access_config(upstream.url, rpm=3))
    alice = client(server, ALICE)
    fresh_minute()
    for _ in range(3):
        ask(alice)
    with pytest.raises(openai.RateLimitError) as info:
        ask(alice)
    assert info.value.code == "rate_limit_exceeded"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
    assert ask(client(server, BOB))[1].choices  # other keys are not affected


def test_tokens_per_minute_and_daily_budget(serve, upstream):
    server = serve(access_config(upstream.url, tpm=200))
    alice = client(server, ALICE)
    ask(alice, "word " * 100)  # about 125 prompt tokens + 101 of echo: over 200 once counted
    with pytest.raises(openai.RateLimitError):
        ask(alice, "short")
    server = serve(access_config(upstream.url, budget_usd_day=0.0001))
    alice = client(server, ALICE)
    ask(alice, "word " * 400, model="strong")  # ~500 prompt tokens at $2.5/M plus the echo at $10/M > $0.0001
    with pytest.raises(openai.RateLimitError) as info:
        ask(alice)
    assert info.value.code == "budget_exceeded" and int(info.value.response.headers["retry-after"]) > 0


def test_a_prompt_larger_than_tpm_is_refused_for_good(serve, upstream):
    server = serve(access_config(upstream.url, tpm=50))
    with pytest.raises(openai.RateLimitError) as info:
        ask(client(server, ALICE), "word " * 100)  # about 125 tokens: no minute will ever have room for it
    assert info.value.code == "prompt_exceeds_tpm" and "retry-after" not in info.value.response.headers
    assert ask(client(server, ALICE), "short")[1].choices  # it reserved nothing


def test_streamed_usage_counts_too(serve, upstream):
    server = serve(access_config(upstream.url, tpm=200))
    alice = client(server, ALICE)
    list(alice.chat.completions.create(model="auto", stream=True, messages=[{"role": "user", "content": "word " * 100}]))
    time.sleep(0.2)  # recorded when the stream ends
    with pytest.raises(openai.RateLimitError):
        ask(alice, "short")


def test_admin_key_for_route_explanations(serve, upstream):
    server = serve(access_config(upstream.url))
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(server.url + "/v1/route", json=body, headers={"authorization": f"Bearer {ALICE}"}).status_code == 401
    r = httpx.post(server.url + "/v1/route", json=body, headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200 and r.json()["decision"] == "default"


def test_key_file_holds_hashes(serve, upstream, tmp_path):
    config = access_config(upstream.url)
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump([{"name": "carol", "key_sha256": sha("sk-carol-1234567890"),
                                                         "roles": ["staff"]}]))
    config["auth"]["key_file"] = str(tmp_path / "keys.yaml")
    server = serve(config)
    assert ask(client(server, "sk-carol-1234567890"))[0]["x-turnout-decision"] == "staff"


def test_bad_key_file_is_a_config_error(upstream, tmp_path):
    from turnout.config import ConfigError, parse_config
    from turnout.pipeline import Router

    config = access_config(upstream.url)
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump([{"name": "x", "key_sha256": "nothex"}]))
    config["auth"]["key_file"] = str(tmp_path / "keys.yaml")
    with pytest.raises(ConfigError) as info:
        Router.build(parse_config(config))
    assert "auth.key_file" in str(info.value) and "key_sha256" in str(info.value)


def test_two_processes_share_limits_through_redis(redis_server, upstream, tmp_path):  # noqa: F811
    config = access_config(upstream.url, rpm=4)
    config["state"] = {"store": "redis", "redis_url": redis_server.url}
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    ports = [free_port(), free_port()]
    procs = [start_turnout(path, p) for p in ports]
    try:
        one, two = (openai.OpenAI(base_url=f"http://127.0.0.1:{p}/v1", api_key=ALICE, max_retries=0) for p in ports)
        fresh_minute()
        ask(one), ask(two), ask(one), ask(two)
        for c in (one, two):
            with pytest.raises(openai.RateLimitError):
                ask(c)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
