"""Limits that hold under concurrency, against real `turnout serve` processes: parallel requests and streams
on a small budget or tokens-per-minute limit (in memory, and over two processes sharing one real redis-server)
never overshoot by more than one request's estimate; failures and cache hits give their reservation back;
neither a Redis restart nor a burst during a Redis stall lets a request through uncounted (an outage still
does: availability first); `turnout validate` refuses two keys of one name, and several workers refuse limits
counted in memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from tests.conftest import base_config, fresh_minute
from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture
from tests.process import TurnoutProcess, turnout_process
from turnout.context import RoutingContext
from turnout.testing import free_port

KEY = "sk-limits-0123456789abcdef"
STRONG = {"input": 2.5, "output": 10.0}  # USD per 1M tokens of the `strong` model in base_config
MAX_TOKENS = 120  # more than the mock's echo of PROMPT, so what a request reserves covers what it uses
PROMPT = "#sleep:1 " + "word " * 100  # the mock holds each answer 1 s, so the parallel requests overlap


def limits_config(upstream_url: str, redis_url: str | None = None, **limits) -> dict:
    config = base_config(upstream_url)
    config["auth"] = {"keys": [{"name": f"k{time.monotonic_ns()}", "key": KEY, **limits}]}
    if redis_url:
        config["state"] = {"store": "redis", "redis_url": redis_url}
    return config


def estimate(prompt: str = PROMPT) -> tuple[int, float]:
    """What one request reserves: its prompt (turnout's count) plus max_tokens, at the strong model's price."""
    prompt_tokens = RoutingContext({"model": "strong", "messages": [{"role": "user", "content": prompt}]}).token_estimate
    return prompt_tokens + MAX_TOKENS, (prompt_tokens * STRONG["input"] + MAX_TOKENS * STRONG["output"]) / 1e6


@contextlib.contextmanager
def servers(config: dict, tmp_path: Path, count: int) -> Iterator[list[TurnoutProcess]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(turnout_process(config, tmp_path)) for _ in range(count)]


async def _burst(urls: list[str], n: int, prompt: str) -> tuple[list[tuple[float, int]], list[str]]:
    """n requests at once, spread over the servers: (cost, total tokens) of each answer, codes of refusals."""
    clients = [openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=60) for url in urls]

    async def one(i: int):
        raw = await clients[i % len(clients)].chat.completions.with_raw_response.create(
            model="strong", max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": prompt}])
        return float(raw.headers["x-turnout-cost-usd"]), raw.parse().usage.total_tokens

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    for c in clients:
        await c.close()
    answered = [r for r in results if isinstance(r, tuple)]
    refused = [r.code for r in results if isinstance(r, openai.RateLimitError)]
    others = [r for r in results if not isinstance(r, tuple | openai.RateLimitError)]
    assert not others, others
    return answered, refused


def burst(servers_: list[TurnoutProcess], n: int, prompt: str = PROMPT):
    return asyncio.run(_burst([s.url for s in servers_], n, prompt))


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_parallel_requests_stay_within_the_daily_budget(store, upstream, tmp_path, request):
    redis_url = request.getfixturevalue("redis_server").url if store == "redis" else None
    one_estimate = estimate()[1]
    budget = 2.9 * one_estimate  # each answer costs less than its estimate: a few fit, twenty do not
    config = limits_config(upstream.url, redis_url, budget_usd_day=budget)
    with servers(config, tmp_path, 2 if redis_url else 1) as procs:
        answered, refused = burst(procs, 20)
        spent = sum(cost for cost, _ in answered)
        assert answered and refused and set(refused) == {"budget_exceeded"}
        assert spent <= budget + one_estimate, f"{len(answered)} answered for ${spent:.6f} on ${budget:.6f}"
        # settled to what they cost, the answers leave room for more; then the budget is spent for good
        later, _ = burst(procs, 20)
        total = spent + sum(cost for cost, _ in later)
        assert total <= budget + one_estimate
        assert burst(procs, 1)[1] == ["budget_exceeded"]


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_parallel_requests_stay_within_tokens_per_minute(store, upstream, tmp_path, request):
    redis_url = request.getfixturevalue("redis_server").url if store == "redis" else None
    one_estimate = estimate()[0]
    tpm = 300  # about two answers' tokens; the issue's ten parallel ~130-token prompts all passed
    config = limits_config(upstream.url, redis_url, tpm=tpm)
    with servers(config, tmp_path, 2 if redis_url else 1) as procs:
        fresh_minute()
        answered, refused = burst(procs, 10)
        used = sum(tokens for _, tokens in answered)
        assert answered and set(refused) == {"rate_limit_exceeded"}
        assert used <= tpm + one_estimate, f"{len(answered)} answered with {used} tokens on tpm {tpm}"


def test_parallel_streams_stay_within_tokens_per_minute(upstream, tmp_path):
    tpm = 300
    config = limits_config(upstream.url, tpm=tpm)

    async def stream(c: openai.AsyncOpenAI) -> int:
        chunks = await c.chat.completions.create(model="strong", max_tokens=MAX_TOKENS, stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": PROMPT}])
        return [chunk.usage async for chunk in chunks if chunk.usage][-1].total_tokens

    async def streams(url: str) -> list[int | BaseException]:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=60) as c:
            return await asyncio.gather(*(stream(c) for _ in range(10)), return_exceptions=True)

    with turnout_process(config, tmp_path) as server:
        fresh_minute()
        results = asyncio.run(streams(server.url))
    used = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert used and len(used) + len(refused) == len(results), results
    assert sum(used) <= tpm + estimate()[0], f"{len(used)} streams with {sum(used)} tokens on tpm {tpm}"


# Keeps Redis busy for ARGV[1] microseconds: every other client's command waits meanwhile.
_STALL = """local t0 = redis.call('TIME')
while true do
  local t = redis.call('TIME')
  if (t[1] - t0[1]) * 1e6 + t[2] - t0[2] > tonumber(ARGV[1]) then return 1 end
end"""


def test_a_burst_during_a_redis_stall_is_counted(redis_server, upstream, tmp_path):  # noqa: F811
    """200 requests while Redis stalls for 0.6 s (a fork, a slow command): they queue for its connections.
    A pool that fails a command when its 100 connections are busy let 100 of them through uncounted."""
    import redis

    config = limits_config(upstream.url, redis_server.url, rpm=20)
    with turnout_process(config, tmp_path) as server:
        fresh_minute()
        stalling = threading.Thread(target=redis.Redis.from_url(redis_server.url).eval, args=(_STALL, 0, 600_000))
        stalling.start()

        async def requests() -> list:
            async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60) as c:
                return await asyncio.gather(*(c.chat.completions.create(
                    model="small", messages=[{"role": "user", "content": "hi"}]) for _ in range(200)),
                    return_exceptions=True)

        results = asyncio.run(requests())
        stalling.join()
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(results) - len(refused) == 20, [r for r in results if isinstance(r, BaseException)][:3]
    assert "limit counters unavailable" not in server.log()


def test_limits_let_requests_through_while_redis_is_down(redis_server, upstream, tmp_path):  # noqa: F811
    config = limits_config(upstream.url, redis_server.url, rpm=2, budget_usd_day=1.0)
    with turnout_process(config, tmp_path) as server:
        c = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)

        def ask():
            return c.chat.completions.create(model="small", messages=[{"role": "user", "content": "hi"}])

        fresh_minute()
        redis_server.stop()
        for _ in range(3):  # over rpm, but nothing can count them: availability first
            assert ask().choices
        assert "limit counters unavailable" in server.log()
        redis_server.start()  # back, and empty: counting starts again
        ask(), ask()
        with pytest.raises(openai.RateLimitError):
            ask()


def test_a_failed_request_gives_its_reservation_back(upstream, tmp_path):
    config = limits_config(upstream.url, tpm=300)  # room for one reservation of PROMPT at a time
    with turnout_process(config, tmp_path) as server:
        fresh_minute()
        c = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        ask = {"model": "strong", "max_tokens": MAX_TOKENS}
        with pytest.raises(openai.APIStatusError) as info:
            c.chat.completions.create(messages=[{"role": "user", "content": PROMPT + " #error:500"}], **ask)
        assert info.value.status_code == 502
        # had the failure kept its reservation, this prompt would not fit in what is left of the minute
        assert c.chat.completions.create(messages=[{"role": "user", "content": "word " * 100}], **ask).choices


def test_a_cache_hit_gives_its_reservation_back(upstream, tmp_path):
    config = limits_config(upstream.url)
    small = config["models"]["small"]["cost"]
    prompt_tokens = estimate("word " * 100)[0] - MAX_TOKENS
    one_estimate = (prompt_tokens * small["input"] + MAX_TOKENS * small["output"]) / 1e6
    config["auth"]["keys"][0]["budget_usd_day"] = 1.5 * one_estimate  # the miss's cost plus one reservation
    config["decisions"] = [{"name": "default", "models": ["small"],
                            "plugins": [{"semantic_cache": {"namespace": f"t{time.monotonic_ns()}"}}]}]
    with turnout_process(config, tmp_path) as server:
        c = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)

        def ask():
            raw = c.chat.completions.with_raw_response.create(
                model="auto", max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": "word " * 100}])
            return raw.headers["x-turnout-cache"], float(raw.headers["x-turnout-cost-usd"])

        assert ask()[0] == "miss"
        # had a hit kept its reservation, the budget would be spent after the first of these
        assert [ask(), ask(), ask()] == [("hit", 0.0)] * 3


def test_a_redis_restart_lets_no_request_through_uncounted(redis_server, upstream, tmp_path):  # noqa: F811
    config = limits_config(upstream.url, redis_server.url, rpm=20)
    with turnout_process(config, tmp_path) as server:
        c = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)

        def ask():
            return c.chat.completions.create(model="small", messages=[{"role": "user", "content": "hi"}])

        fresh_minute()
        ask()  # the process now holds a pooled connection to this Redis
        redis_server.stop()
        redis_server.start()  # an empty Redis on the same port: this minute counts from 0 again
        for _ in range(20):
            ask()
        with pytest.raises(openai.RateLimitError) as info:
            ask()
        assert info.value.code == "rate_limit_exceeded"


def _validate(config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "turnout.cli", "validate", str(path)], check=False,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})


def test_validate_refuses_two_keys_of_one_name(upstream, tmp_path):
    config = base_config(upstream.url)
    config["auth"] = {"keys": [{"name": "t1", "key": "sk-one-0123456789"}, {"name": "t2", "key": "sk-two-0123456789"},
                               {"name": "t2", "key": "sk-three-0123456789"}]}
    result = _validate(config, tmp_path)
    assert result.returncode == 1
    assert "auth.keys[2].name: 't2' is already the name of auth.keys[1]" in result.stderr, result.stderr

    (tmp_path / "keys.yaml").write_text(yaml.safe_dump([{"name": "t1", "key_sha256": "0" * 64}]))
    config["auth"] = {"keys": [{"name": "t1", "key": "sk-one-0123456789"}], "key_file": "keys.yaml"}
    result = _validate(config, tmp_path)
    assert result.returncode == 1
    assert f"auth.key_file:[0].name: 't1' (in {tmp_path / 'keys.yaml'}) is already the name of auth.keys[0]" \
        in result.stderr, result.stderr


def test_several_workers_may_not_count_limits_in_memory(upstream, tmp_path):
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(limits_config(upstream.url, rpm=20)))
    proc = subprocess.Popen([sys.executable, "-m", "turnout.cli", "serve", "--config", str(path), "--workers", "2",
                             "--port", str(free_port()), "--no-watch"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # it served: each worker would have granted the key 20 requests a minute
        proc.terminate()
        proc.communicate(timeout=15)
        pytest.fail("turnout serve --workers 2 started with limits counted in each worker's memory")
    assert proc.returncode == 1
    assert "state.store: memory counts limits in each process" in stderr and "state.store: redis" in stderr
    # shared counters, or no limits at all, are fine with any number of workers
    from turnout.access import per_process_limits
    from turnout.config import parse_config

    assert per_process_limits(parse_config(limits_config(upstream.url, "redis://127.0.0.1:1/0", rpm=20)), 2) is None
    assert per_process_limits(parse_config(limits_config(upstream.url)), 2) is None
