"""The lean response path: a response's head goes out in its body's write (protocol.HeadWithBodyCycle), and a
door's POST is served without FastAPI's stack (app.TurnoutApp) while failures keep the stack's answers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from tests.conftest import base_config
from turnout.config import Config
from turnout.errors import TurnoutError
from turnout.server import create_app
from turnout.server.exchange import Exchange
from turnout.server.protocol import HeadWithBodyCycle


class Wire:
    """A transport that records each write: one entry per send() the server would make."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def cycle(wire: Wire, *, expect_100_continue: bool = False, keep_alive: bool = True) -> HeadWithBodyCycle:
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "http_version": "1.1",
             "headers": []}
    return HeadWithBodyCycle(scope=scope, transport=wire, flow=FlowControl(wire), logger=logging.getLogger("t"),
                             access_logger=logging.getLogger("t.access"), access_log=False, default_headers=[],
                             message_event=asyncio.Event(), expect_100_continue=expect_100_continue,
                             keep_alive=keep_alive, on_response=lambda: None)


START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]}


async def test_a_plain_response_is_one_write_head_and_body():
    wire = Wire()
    c = cycle(wire)
    await c.send(START)
    await c.send({"type": "http.response.body", "body": b"{}", "more_body": False})
    assert len(wire.writes) == 1, wire.writes
    assert wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and wire.writes[0].endswith(b"\r\n\r\n{}")
    await asyncio.sleep(0)  # the head's deferred write finds nothing left
    assert len(wire.writes) == 1 and c.response_complete


async def test_a_stream_whose_first_event_waits_shows_its_head_at_once():
    wire = Wire()
    c = cycle(wire)
    await c.send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    assert wire.writes == []
    await asyncio.sleep(0)  # the loop turned with no body yet: the head goes out alone
    assert len(wire.writes) == 1 and wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in wire.writes[0]
    await c.send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    await asyncio.sleep(0)  # an event is not held past the loop's turn
    assert wire.writes[1:] == [b"9\r\ndata: 1\n\n\r\n"]
    await c.send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})
    assert wire.writes[2:] == [b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"]  # the last message writes at once


async def test_what_a_stream_sends_in_one_turn_of_the_loop_is_one_write():
    wire = Wire()
    c = cycle(wire)
    await c.send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await c.send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    assert wire.writes == []
    await asyncio.sleep(0)
    assert len(wire.writes) == 1 and wire.writes[0].endswith(b"\r\n\r\n9\r\ndata: 1\n\n\r\n")
    await c.send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
    await c.send({"type": "http.response.body", "body": b"", "more_body": False})  # its end, in the same turn
    assert wire.writes[1:] == [b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"]
    await asyncio.sleep(0)
    assert len(wire.writes) == 2


async def test_100_continue_still_goes_out_before_the_body_is_read():
    wire = Wire()
    c = cycle(wire, expect_100_continue=True)
    c.more_body = False
    c.message_event.set()
    await c.receive()
    assert wire.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]


async def test_a_closing_response_writes_its_head_and_body_before_the_close():
    wire = Wire()
    c = cycle(wire, keep_alive=False)
    await c.send(START)
    await c.send({"type": "http.response.body", "body": b"{}", "more_body": False})
    assert wire.closed and len(wire.writes) == 1 and b"connection: close" in wire.writes[0]


# ----- the door fast path ------------------------------------------------------------------------------------
def app_config(upstream: str) -> Config:
    return Config.model_validate(base_config(upstream))


@pytest.fixture
def failing(monkeypatch):
    """Exchange.serve raising what it is given (outside its own error handling)."""
    raised: list[BaseException] = []

    def arm(exc: BaseException) -> None:
        async def serve(self: Exchange) -> Any:
            raise exc

        raised.append(exc)
        monkeypatch.setattr(Exchange, "serve", serve)

    return arm


async def post(app: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://turnout") as client:
        return await client.post(path, json=body)


async def test_a_bug_in_a_door_endpoint_is_a_500_in_that_doors_shape_and_is_logged(failing, caplog):
    app = create_app(config=app_config("http://127.0.0.1:9"), watch=False)
    failing(RuntimeError("boom sk-secret"))
    with caplog.at_level(logging.ERROR, logger="turnout.errors"):
        answer = await post(app, "/v1/messages", {"model": "auto", "max_tokens": 5,
                                                  "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 500
    body = answer.json()
    assert body["type"] == "error" and body["error"]["message"] == "internal error in turnout; see the server log"
    assert "unhandled RuntimeError on POST /v1/messages" in caplog.text
    chat = await post(app, "/v1/chat/completions", {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 500 and chat.json()["error"]["code"] == "internal_error"


async def test_an_error_a_door_endpoint_raises_is_answered_by_its_handler(failing):
    app = create_app(config=app_config("http://127.0.0.1:9"), watch=False)
    failing(TurnoutError("no such thing", status=404, type="invalid_request_error", code="nope"))
    answer = await post(app, "/v1/chat/completions", {"model": "auto", "messages": []})
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "nope"


async def test_other_methods_and_paths_of_a_door_take_the_whole_stack():
    app = create_app(config=app_config("http://127.0.0.1:9"), watch=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://turnout") as client:
        wrong_method = await client.get("/v1/chat/completions")
        slash = await client.post("/v1/chat/completions/", json={})
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert slash.status_code == 404
