"""The HTTP/1.1 connection, bounded before any request reaches the app. uvicorn's httptools protocol buffers a
request's line and headers without limit and without a deadline (32 MB headers were held whole, before auth);
this one refuses a head over `server.max_header_bytes` or `server.max_headers` lines with 431, and one that has
not arrived within `server.header_timeout_s` with 408, and closes the connection; an idle kept-alive connection
stays open `server.keep_alive_s` (uvicorn's 5 s is shorter than a balancer's idle timeout, and a connection the
server closes just as a client reuses it fails that request without an answer). The limits are read from the
app's lifespan state when a connection opens, so they take effect at start (a reload does not change them).
What a response writes within one turn of the event loop goes out in one write (HeadWithBodyCycle)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
    keep_alive_s: float = 75.0

    @classmethod
    def of(cls, server: Any) -> "HttpLimits":
        return cls(server.max_header_bytes, server.max_headers, server.header_timeout_s, server.keep_alive_s)


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
        self.timeout_keep_alive = self._limits.keep_alive_s  # uvicorn's own default (5 s) is shorter than balancers'
        self._head_open = True  # reading a request's line and headers
        self._head_begun = False  # a byte of the head has come
        self._head_bytes = 0
        self._header_lines = 0
        self._refused = False
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        cycle = self.cycle
        super().connection_lost(exc)
        if isinstance(cycle, HeadWithBodyCycle) and cycle.disconnected and cycle.gone is not None:
            gone, cycle.gone = cycle.gone, None
            gone()

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
        elif self._head_begun:  # a head that this read began and did not finish: from now on it has a deadline
            self._start_head_timer()

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
        # the deadline is armed at the end of data_received, and only if the head is still incomplete then: a
        # head that arrives in one read (nearly every one) costs no timer
        self._head_begun = True

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
        self._head_open = self._head_begun = False
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


class _Corked:
    """A response's transport while it is being written: writes wait until the event loop next turns, or until
    `flush`, and then go out as one (everything else goes to the transport)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.parts: list[bytes] = []
        self.handle: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        if self.handle is None:
            self.handle = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        parts, self.parts = self.parts, []
        if parts and not self.transport.is_closing():
            self.transport.write(parts[0] if len(parts) == 1 else b"".join(parts))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class HeadWithBodyCycle(RequestResponseCycle):
    """uvicorn writes a response's status line and headers as soon as the app sends them, and each body message
    apart: two send() calls for every plain response, and on loopback each one runs the receiver's side of TCP
    too. Here what a response writes within one turn of the event loop goes out in one write: a plain response's
    head and body, a stream's head and first event, its last events and its end. The last body message writes
    at once; anything else waits at most until the loop next turns, so a stream's events are not held back."""

    _corked: _Corked | None = None
    gone: Callable[[], None] | None = None  # see when_gone

    def when_gone(self, callback: Callable[[], None] | None) -> None:
        """Run `callback` (once) if the client goes away before the response is complete: a stream learns it
        without a task of its own waiting on receive() (None: no longer)."""
        self.gone = callback

    def body_in_hand(self) -> bool:
        """Whether receive() answers without waiting: the whole request body has arrived (a body message that says
        no more follows is ready), or the client has gone (a disconnect is)."""
        return self.disconnected or self.response_complete or (self.message_event.is_set() and not self.more_body)

    async def send(self, message: Any) -> None:
        if self.response_complete or (not self.response_started and message["type"] != "http.response.start"):
            await super().send(message)  # uvicorn's errors for messages out of order
            return
        transport = self.transport
        corked = self._corked
        if corked is None:
            corked = self._corked = _Corked(transport)
        self.transport = corked  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
            if self.response_complete:
                corked.flush()
