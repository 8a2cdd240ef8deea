"""The HTTP/1.1 connection, bounded before any request reaches the app. uvicorn's httptools protocol buffers a
request's line and headers without limit and without a deadline (32 MB headers were held whole, before auth);
this one refuses a head over `server.max_header_bytes` or `server.max_headers` lines with 431, and one that has
not arrived within `server.header_timeout_s` with 408, and closes the connection. The limits are read from the
app's lifespan state when a connection opens, so they take effect at start (a reload does not change them).
Each response's head goes out in the same write as the start of its body (HeadWithBodyCycle)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from turnout.jsonutil import dumps

STATE_KEY = "turnout_http_limits"


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 64 * 1024
    max_headers: int = 128
    header_timeout_s: float = 10.0

    @classmethod
    def of(cls, server: Any) -> "HttpLimits":
        return cls(server.max_header_bytes, server.max_headers, server.header_timeout_s)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _too_large(limits: HttpLimits) -> _Refused:
    return _Refused(431, "headers_too_large",
                    f"the request line and headers exceed {limits.max_header_bytes} bytes")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _limits: HttpLimits
    _head_timer: asyncio.TimerHandle | None = None
    _pending: _Refused | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._limits = self.app_state.get(STATE_KEY) or HttpLimits()
        self._head_open = True  # reading a request's line and headers
        self._head_bytes = 0
        self._header_lines = 0
        self._refused = False
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._head_open:
            # Until the head is complete everything received belongs to it: count before httptools buffers it.
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refused:
            return
        if self._head_open and self._head_bytes > self._limits.max_header_bytes:
            self._refuse(_too_large(self._limits))

    def send_400_response(self, msg: str) -> None:
        # httptools reports an exception raised in a callback as a parse error, which uvicorn answers with 400
        refusal, self._pending = self._pending, None
        if refusal is not None:
            self._refuse(refusal)
        else:
            super().send_400_response(msg)

    # parser callbacks (a refusal is raised to stop the parser, and answered by send_400_response)
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_lines = 0
        self._start_head_timer()

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self._limits.max_header_bytes:
            raise self._stop(_too_large(self._limits))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > self._limits.max_headers:
            raise self._stop(_Refused(431, "too_many_headers", f"more than {self._limits.max_headers} header lines"))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._stop_head_timer()
        super().on_headers_complete()
        # the cycle uvicorn just made for this request (its task has not run yet), with the head held back
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = HeadWithBodyCycle

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open, self._head_bytes = True, 0  # the next request's head (keep-alive, pipelining)

    def _stop(self, refusal: _Refused) -> _Refused:
        self._pending = refusal
        return refusal

    # the head deadline
    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head_open and not self.transport.is_closing():
            self._refuse(_Refused(408, "request_timeout", f"the request line and headers did not arrive within "
                                                          f"{self._limits.header_timeout_s:g} s"))

    def _refuse(self, refusal: _Refused) -> None:
        self._refused = True
        self._stop_head_timer()
        body = dumps({"error": {"message": refusal.message, "type": "invalid_request_error", "code": refusal.code,
                                "param": None}})
        self.logger.warning("refused a request head: %s", refusal.message)
        if not self.transport.is_closing():
            self.transport.write(b"".join([STATUS_LINE[refusal.status], b"content-type: application/json\r\n",
                                           b"content-length: ", str(len(body)).encode(), b"\r\n",
                                           b"connection: close\r\n\r\n", body]))
            self.transport.close()


class _HeldHead:
    """The transport of a response whose head is held: while `holding`, writes are kept; after, the first write
    carries what was kept (everything else goes to the transport)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport, self.head, self.holding = transport, b"", True

    def write(self, data: bytes) -> None:
        if self.holding:
            self.head += data
            return
        head, self.head = self.head, b""
        self.transport.write(head + data if head else data)

    def flush(self) -> None:
        head, self.head = self.head, b""
        if head and not self.transport.is_closing():
            self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class HeadWithBodyCycle(RequestResponseCycle):
    """uvicorn writes a response's status line and headers as soon as the app sends them, and its body apart: two
    send() calls for every plain response, and on loopback each one runs the receiver's side of TCP too (a
    profile put a third of turnout's CPU per request in these writes). Here the head waits for the first body
    message and goes out in its write; if the body has not come when the event loop next turns (a stream whose
    first event is slow), the head goes out alone then, so a client never waits on a held head."""

    _held: _HeldHead | None = None
    _flush: asyncio.Handle | None = None

    async def send(self, message: Any) -> None:
        held = self._held
        if held is None and (self.response_started or message["type"] != "http.response.start"):
            await super().send(message)  # the 100-continue interim response and errors take uvicorn's path
            return
        transport = self.transport
        if held is None:  # the head: kept, for the body's write or the loop's next turn
            held = self._held = _HeldHead(transport)
            self._flush = asyncio.get_running_loop().call_soon(self._write_held)
        self.transport = held  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
            if held.holding:
                held.holding = False
            else:
                self._write_held()

    def _write_held(self) -> None:
        held, self._held = self._held, None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if held is not None:
            held.flush()
