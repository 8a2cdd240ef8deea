"""Shared fixtures: real mock upstreams and real turnout servers, all on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from turnout.config import parse_config
from turnout.server import create_app
from turnout.testing import ServerThread, create_mock_upstream

TEST_KEY = "sk-test-upstream-key-0123456789abcdef"


def fresh_minute(needed_s: float = 20) -> None:
    """rpm and tpm count per UTC minute: start a burst that must hit a limit early enough in one that it ends
    there too (a slow machine crossing a minute sees the window start again)."""
    left = 60 - time.time() % 60
    if left < needed_s:
        time.sleep(left + 0.2)


@pytest.fixture(scope="session")
def upstream() -> Iterator[ServerThread]:
    with ServerThread(create_mock_upstream()) as server:
        yield server


@pytest.fixture
def upstream_requests(upstream: ServerThread) -> Callable[[], list[dict[str, Any]]]:
    httpx.delete(upstream.url + "/_requests")
    return lambda: httpx.get(upstream.url + "/_requests").json()


def base_config(upstream_url: str) -> dict[str, Any]:
    """Three models on the mock upstream, one per wire format, plus a keyword-routed decision."""
    return {
        "server": {"retry": {"attempts": 0}},  # error-mapping tests want one upstream call; retries are tested apart
        "models": {
            "small": {"provider": "openai", "base_url": f"{upstream_url}/v1", "model": "mock-small",
                      "api_key": TEST_KEY, "cost": {"input": 0.1, "output": 0.2}},
            "strong": {"provider": "openai", "base_url": f"{upstream_url}/v1", "model": "mock-strong",
                       "api_key": TEST_KEY, "cost": {"input": 2.5, "output": 10}},
            "claude": {"provider": "anthropic", "base_url": upstream_url, "model": "claude-mock",
                       "api_key": TEST_KEY, "cost": {"input": 3, "output": 15}},
            "azure-gpt": {"provider": "azure", "base_url": upstream_url, "deployment": "gpt-dep",
                          "api_key": TEST_KEY, "api_version": "2024-10-21"},
        },
        "signals": {"code": {"kind": "keyword", "words": ["def ", "stack trace", "compile"]}},
        "decisions": [
            {"name": "code", "priority": 50, "when": {"signal": "code"}, "models": ["strong"]},
            {"name": "default", "priority": 0, "models": ["small", "strong"]},
        ],
    }


def explain_route(server: ServerThread, text: str) -> dict[str, Any]:
    """POST /v1/route with one user message: the routing explanation (decision, signals with their detail)."""
    answer = httpx.post(f"{server.url}/v1/route", timeout=30,
                        json={"model": "auto", "messages": [{"role": "user", "content": text}]})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def serve() -> Iterator[Callable[..., ServerThread]]:
    """serve(config_dict) starts a real turnout server on a free loopback port."""
    started: list[ServerThread] = []

    def start(config: dict[str, Any]) -> ServerThread:
        server = ServerThread(create_app(config=parse_config(config), watch=False)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def turnout(serve, upstream) -> ServerThread:
    return serve(base_config(upstream.url))
