"""An upstream's answer is capped (`models.NAME.max_response_bytes`): a huge body, a gzip that decompresses to
gigabytes, or one endless stream event fails that attempt as the upstream's fault (502
upstream_response_too_large, fallen back like a 5xx) before it is held whole; and a stream's events read alike
however the upstream's bytes are split between reads."""

from __future__ import annotations

import asyncio
import gzip
import json
import random

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from turnout.backends.openai_compat import OpenAIBackend
from turnout.config import ModelConfig
from turnout.testing import ServerThread

LIMIT = 64 * 1024


def answer(text: str) -> bytes:
    return json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


def chunk(text: str) -> bytes:
    return b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
                                  ).encode() + b"\n\n"


async def trickle(parts: list[bytes]):
    for part in parts:
        yield part
        await asyncio.sleep(0)


async def chat(request: Request) -> Response:
    """The model id says how to answer."""
    body = await request.json()
    kind = body["model"]
    if kind == "big":  # Content-Length says it before a byte is read
        return Response(answer("x" * (2 * LIMIT)), media_type="application/json")
    if kind == "chunked":  # no length: counted as read
        return StreamingResponse(trickle([answer("y" * (2 * LIMIT))[i:i + 4096] for i in range(0, 2 * LIMIT + 300, 4096)]),
                                 media_type="application/json")
    if kind == "bomb":  # 40 KB of gzip that is 40 MB of JSON
        inflated = b'{"choices": [{"message": {"content": "' + b"z" * (40 * 1024 * 1024) + b'"}}]}'
        return Response(gzip.compress(inflated, 9), media_type="application/json",
                        headers={"content-encoding": "gzip"})
    if kind == "small-gzip":  # compressed and within the limit: read as usual
        return Response(gzip.compress(answer("fine")), media_type="application/json",
                        headers={"content-encoding": "gzip"})
    if kind == "endless-event":  # one event that never ends, in small reads, after a first good one
        parts = [chunk("first"), b"data: "] + [b"w" * 1024] * (2 * LIMIT // 1024)
        return StreamingResponse(trickle(parts), media_type="text/event-stream")
    if kind == "endless-first":  # the same with nothing relayed yet
        return StreamingResponse(trickle([b"data: "] + [b"w" * 1024] * (2 * LIMIT // 1024)),
                                 media_type="text/event-stream")
    return Response(answer("ok"), media_type="application/json")


@pytest.fixture(scope="module")
def hostile():
    with ServerThread(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])) as server:
        yield server


def config(url: str, transport: str) -> dict:
    models = {kind: {"provider": "openai", "base_url": f"{url}/v1", "model": kind, "transport": transport,
                     "max_response_bytes": LIMIT, "retry": {"attempts": 0}}
              for kind in ("big", "chunked", "bomb", "small-gzip", "endless-event", "endless-first", "fine")}
    models["big"]["fallbacks"] = ["fine"]
    return {"models": models, "decisions": [{"name": "default", "models": ["fine"]}]}


@pytest.fixture(params=["aiohttp", "httpx"])
def gateway(request, serve, hostile):
    return serve(config(hostile.url, request.param))


def post(gateway, model: str, stream: bool = False) -> httpx.Response:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30)


@pytest.mark.parametrize("model", ["chunked", "bomb"])
def test_an_answer_over_the_limit_is_a_502_naming_the_setting(gateway, model):
    response = post(gateway, model)
    error = response.json()["error"]
    assert response.status_code == 502 and error["code"] == "upstream_response_too_large"
    assert f"models.{model}.max_response_bytes" in error["message"]


def test_an_answer_over_the_limit_falls_back_to_the_next_model(gateway):
    response = post(gateway, "big")
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "ok"
    assert response.headers["x-turnout-model"] == "fine"


def test_a_compressed_answer_within_the_limit_is_read(gateway):
    response = post(gateway, "small-gzip")
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "fine"


def test_an_endless_stream_event_before_anything_was_relayed_is_a_502(gateway):
    response = post(gateway, "endless-first", stream=True)
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_response_too_large"


def test_an_endless_stream_event_after_the_first_breaks_the_stream_off(gateway):
    response = post(gateway, "endless-event", stream=True)
    events = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert response.status_code == 200 and '"first"' in events[0]
    assert '"upstream_response_too_large"' in events[-1] and "data: [DONE]" not in events


class Blocks(httpx.AsyncByteStream):
    def __init__(self, blocks: list[bytes]) -> None:
        self.blocks = blocks

    async def __aiter__(self):
        for block in self.blocks:
            yield block


def reference(raw: bytes) -> list[tuple[str | None, str]]:
    """The events of a whole stream read at once: CRLF as LF, events split at blank lines."""
    from turnout.backends.http import _parse_event

    parts = raw.replace(b"\r\n", b"\n").split(b"\n\n")
    return [e for e in map(_parse_event, parts) if e is not None]


@pytest.mark.parametrize("seed", range(40))
def test_events_read_alike_however_the_bytes_are_split(seed):
    rng = random.Random(seed)
    newline = rng.choice([b"\n", b"\r\n"])
    events = []
    for i in range(rng.randint(1, 12)):
        lines = [b"event: e%d" % i] if rng.random() < 0.3 else []
        lines += [b"data: " + bytes(rng.choice(b"ab \r:") for _ in range(rng.randint(0, 30)))
                  for _ in range(rng.randint(1, 3))]
        events.append(newline.join(lines) + newline + newline)
    raw = b"".join(events) + (b"data: tail" if rng.random() < 0.5 else b"")
    cuts = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.randint(0, 20))))
    blocks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    backend = OpenAIBackend("m", ModelConfig(provider="openai", base_url="http://127.0.0.1:9/v1"))

    async def read():
        response = httpx.Response(200, stream=Blocks(blocks))
        return [e async for batch in backend.sse_batches(response) for e in batch]

    assert asyncio.run(read()) == reference(raw)
