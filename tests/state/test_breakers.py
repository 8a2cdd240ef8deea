"""Breakers shared through a real redis-server: two real turnout servers (each its own event loop, as two
replicas would be) on one Redis; a breaker opened through one pauses the model on the other, a probe answered
on one closes it on the other, and with Redis gone each goes on alone."""

from __future__ import annotations

import time

import httpx
import openai

from tests.conftest import base_config
from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture


def shared_config(upstream_url: str, redis_url: str, cooldown_s: float) -> dict:
    config = base_config(upstream_url)
    config["server"] = {"retry": {"attempts": 2, "backoff_s": 0.01, "max_backoff_s": 5}}
    config["models"]["flaky"] = {**config["models"]["small"], "fallbacks": ["small"],
                                 "breaker": {"failures": 2, "window_s": 30, "cooldown_s": cooldown_s}}
    config["decisions"] = [{"name": "default", "models": ["small"]}]
    config["state"] = {"store": "redis", "redis_url": redis_url, "namespace": f"t-brk-{time.monotonic_ns()}"}
    return config


def attempts(server, text: str) -> str:
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    raw = c.chat.completions.with_raw_response.create(model="flaky", messages=[{"role": "user", "content": text}])
    # one attempt that answered carries no attempts header: the model header says who answered
    return raw.headers.get("x-turnout-attempts", raw.headers["x-turnout-model"] + ":ok")


def breaker_gauge(server) -> str:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith('turnout_breaker_open{model="flaky"}'):
            return line.split()[-1]
    return "absent"


def test_a_breaker_opened_on_one_replica_pauses_the_model_on_the_other(serve, upstream, redis_server):  # noqa: F811
    config = shared_config(upstream.url, redis_server.url, cooldown_s=1.5)
    a, b = serve(config), serve(config)
    assert attempts(b, "hi") == "flaky:ok"  # b knows the model (its breaker registered) and it is closed
    assert attempts(a, f"down {time.monotonic_ns()} #flaky:2").endswith("small:ok")  # two failures on a: its breaker opens
    start = time.monotonic()
    while attempts(b, "hi") != "flaky:skipped (breaker open),small:ok":
        assert time.monotonic() - start < 1.0, "b still sends to flaky a second after a opened its breaker"
        time.sleep(0.05)
    assert breaker_gauge(b) == "1.0"
    time.sleep(1.6)  # cooldown over: a's probe answers, which closes the breaker on b too (b sends nothing)
    assert attempts(a, "hi") == "flaky:ok"
    start = time.monotonic()
    while breaker_gauge(b) != "0.0":
        assert time.monotonic() - start < 1.0, "b's breaker stays open after a's probe closed it"
        time.sleep(0.05)
    assert attempts(b, "hi") == "flaky:ok"


def test_with_redis_down_each_replica_keeps_its_own_breakers(serve, upstream, redis_server):  # noqa: F811
    config = shared_config(upstream.url, redis_server.url, cooldown_s=30)
    a, b = serve(config), serve(config)
    assert attempts(b, "hi") == "flaky:ok"
    redis_server.stop()
    assert attempts(a, f"down {time.monotonic_ns()} #flaky:2").endswith("small:ok")
    assert attempts(a, "hi") == "flaky:skipped (breaker open),small:ok"  # a's own breaker holds
    time.sleep(0.5)
    assert attempts(b, "hi") == "flaky:ok"  # b never heard of it: it goes on alone, and still answers
