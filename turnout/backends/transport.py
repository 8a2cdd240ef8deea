"""An httpx transport over aiohttp. Backends keep httpx's client API (and its MockTransport for tests), while
the bytes move through aiohttp's connection pool, which costs about half the CPU per request of httpcore's
(benchmarks/overhead.py shows the effect on turnout's overhead). A backend's own requests skip httpx's Request
and Response objects (`AiohttpTransport.post`, `Reply`): building and parsing their headers cost about a tenth
of turnout's CPU per request, for nothing a backend reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx


def _mapped(exc: BaseException) -> httpx.TransportError:
    """aiohttp's exception as the httpx one that retry and error rules key on."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return httpx.ConnectTimeout(str(exc) or "connect timeout")
        return httpx.ReadTimeout(str(exc) or "read timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc))
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(str(exc))
    return httpx.ReadError(str(exc) or type(exc).__name__)


# aiohttp sets these itself from the body and the URL
_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class BodyTooLarge(Exception):
    """An upstream's answer, or one event of its stream, over the model's `max_response_bytes`: refused before
    it is held whole (a body is counted as it is read and decompressed, so a small gzip of gigabytes is too)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


async def collect(blocks: AsyncIterator[bytes], limit: int) -> bytes:
    """The blocks joined, BodyTooLarge as soon as they pass `limit` bytes (the rest is never held)."""
    held, total = [], 0
    async for block in blocks:
        total += len(block)
        if total > limit:
            raise BodyTooLarge(limit)
        held.append(block)
    return b"".join(held)


def client_timeout(timeout: Mapping[str, Any]) -> aiohttp.ClientTimeout:
    """httpx's timeout (as_dict) in aiohttp's terms: no total, so a long stream may run as long as it keeps sending."""
    return aiohttp.ClientTimeout(total=None, connect=timeout.get("pool"), sock_connect=timeout.get("connect"),
                                 sock_read=timeout.get("read"))


def wire_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased (as httpx sends them), without those aiohttp sets from the body and the URL."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}


class Reply:
    """An upstream's answer read through aiohttp, with the part of httpx.Response's API that backends use:
    status_code, reason_phrase, headers (case-insensitive), content / aread, aiter_bytes and aclose; aiohttp's
    errors come out as the httpx ones the backends map."""

    __slots__ = ("_response", "content", "headers", "limit", "reason_phrase", "status_code")

    def __init__(self, response: aiohttp.ClientResponse, limit: int | None = None) -> None:
        self._response = response
        self.status_code = response.status
        self.reason_phrase = response.reason or ""
        self.headers = response.headers
        self.content: bytes = b""
        self.limit = limit  # bytes aread takes at most (BodyTooLarge past it); None: no limit

    async def aread(self, limit: int | None = None) -> bytes:
        """The whole body; `limit` (default: the reply's own) caps it, raising BodyTooLarge past it."""
        if not self.content:
            limit = limit or self.limit
            try:
                self.content = await (self._response.read() if limit is None else self._read_capped(limit))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise _mapped(exc) from None
            except BodyTooLarge:
                self._response.close()  # the rest stays unread: the connection cannot be reused
                raise
        return self.content

    async def _read_capped(self, limit: int) -> bytes:
        length = self._response.content_length
        if length is not None:
            if length > limit:
                raise BodyTooLarge(limit)
            if "content-encoding" not in self.headers:  # exactly `length` bytes will be read
                return await self._response.read()
        return await collect(self._response.content.iter_any(), limit)  # decompressed as it is read

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for block in self._response.content.iter_any():
                yield block
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _mapped(exc) from None

    async def aclose(self) -> None:
        self._response.release()


class _Body(httpx.AsyncByteStream):
    """A Reply's body as an httpx stream, for the httpx-API path (health checks, other verbs)."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for block in self._reply.aiter_bytes():
            yield block

    async def aclose(self) -> None:
        await self._reply.aclose()


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # created lazily: a session binds to the running event loop, and configs are built off-loop on reload
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limits.max_connections or 0,
                                             keepalive_timeout=self._limits.keepalive_expiry or 5.0)
            # no cookie jar: one session serves every caller, so a cookie one upstream answer set would go
            # out with every later caller's request (httpx's path sends none either)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                                  skip_auto_headers=("User-Agent",),
                                                  cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def post(self, url: str, content: bytes, headers: Mapping[str, str], timeout: aiohttp.ClientTimeout,
                   *, read: bool, limit: int | None = None) -> Reply:
        """POST `content` with `headers` (see wire_headers); with `read` the whole body (at most `limit`
        bytes: BodyTooLarge past it) is read and the connection goes back to the pool before this returns."""
        try:
            response = await self._client().request("POST", url, data=content, headers=headers,
                                                    allow_redirects=False, timeout=timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _mapped(exc) from None
        reply = Reply(response, limit)
        if read:
            try:
                await reply.aread()
            finally:
                response.release()
        return reply

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        try:
            response = await self._client().request(
                request.method, str(request.url), data=request.content or None,
                headers=[(k, v) for k, v in request.headers.multi_items() if k not in _HOP_BY_HOP],
                allow_redirects=False, timeout=client_timeout(timeout))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _mapped(exc) from None
        headers = [(k, v) for k, v in response.raw_headers if k.lower() not in (b"content-encoding", b"content-length")]
        return httpx.Response(response.status, headers=headers, stream=_Body(Reply(response)),
                              extensions={"reason_phrase": (response.reason or "").encode()})

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
