"""Both connection layers under the httpx client behave the same for every outcome a backend can see."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import base_config
from turnout.testing import free_port


@pytest.fixture(params=["aiohttp", "httpx"])
def server(request, serve, upstream):
    config = base_config(upstream.url)
    for name in ("small", "claude"):
        config["models"][name]["transport"] = request.param
        config["models"][name]["timeout"] = {"read": 0.5}
    config["models"]["gone"] = {"provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1",
                                "transport": request.param}
    return serve(config)


def chat(server, text, model="small", stream=False):
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}
    if not stream:
        return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30)
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=30) as response:
        return response.status_code, [line for line in response.iter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize("model", ["small", "claude"])
def test_success_plain_and_stream(server, model):
    assert chat(server, "hi there", model).json()["choices"][0]["message"]["content"] == "echo: hi there"
    status, events = chat(server, "hi there", model, stream=True)
    assert status == 200 and events[-1] == "data: [DONE]"


@pytest.mark.parametrize("text, model, status, code", [
    ("#error:429", "small", 429, "mock_429"),
    ("#error:500", "small", 502, "upstream_error"),
    ("#sleep:2", "small", 504, "upstream_timeout"),
    ("hello", "gone", 502, "upstream_unreachable"),
    ("#error:401", "claude", 401, "upstream_401"),
])
def test_failures_map_alike(server, text, model, status, code):
    response = chat(server, text, model)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


@pytest.mark.parametrize("text", ["a b c #midstream-fail", "a b c d #trickle:0.8"])
def test_mid_stream_failures_end_with_an_error_event(server, text):
    status, events = chat(server, text, stream=True)
    assert status == 200 and '"stream_interrupted"' in events[-1] and "data: [DONE]" not in events


def test_stall_before_the_first_chunk_is_a_plain_504(server):
    status, events = chat(server, "#sleep:2", stream=True)
    assert status == 504
