"""An upstream's Set-Cookie never comes back on a later request: one connection pool serves every caller, so a
cookie stored from one caller's answer would ride along with the next caller's prompt."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.process import turnout_process
from turnout.testing import ServerThread


def cookie_setting_upstream(seen: list[str | None]) -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        seen.append(request.headers.get("cookie"))
        return JSONResponse({"id": "c", "object": "chat.completion", "model": "m",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                          "finish_reason": "stop"}]},
                            headers={"set-cookie": "session=first-callers-session; Path=/"})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_an_upstream_cookie_is_not_sent_with_the_next_request(tmp_path, transport):
    seen: list[str | None] = []
    with ServerThread(cookie_setting_upstream(seen)) as upstream:
        # a host name, not 127.0.0.1: aiohttp's cookie jar ignores cookies from IP addresses, which hid the leak
        config = {"models": {"m": {"provider": "openai", "base_url": f"http://localhost:{upstream.port}/v1", "transport": transport}},
                  "decisions": [{"name": "default", "models": ["m"]}]}
        with turnout_process(config, tmp_path) as turnout:
            for _ in range(3):
                response = httpx.post(turnout.url + "/v1/chat/completions", timeout=30,
                                      json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
                assert response.status_code == 200
    assert seen == [None, None, None]
