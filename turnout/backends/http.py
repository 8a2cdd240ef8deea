"""Shared HTTP plumbing for backends: one pooled httpx.AsyncClient each, error mapping, SSE reading."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

from turnout import tracing
from turnout.backends.base import Backend
from turnout.backends.transport import (
    AiohttpTransport,
    BodyTooLarge,
    Reply,
    client_timeout,
    collect,
    wire_headers,
)
from turnout.config import ConfigError, ConfigIssue, ModelConfig
from turnout.errors import (
    StreamInterruptedError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
    scrub_field,
    scrub_message,
)
from turnout.headers import name_problem, value_problem
from turnout.jsonutil import dumps, loads

# Retry-After is passed on to the client: only delay-seconds (RFC 9110), never whatever else an upstream put there
RETRY_AFTER = re.compile(r"[0-9]{1,6}")


class HTTPBackend(Backend):
    def __init__(self, name: str, config: ModelConfig, *, path: str = "") -> None:
        super().__init__(name, config, path=path)
        _check_headers(config.headers, f"{path or 'models.' + name}.headers")
        t = config.timeout
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        timeout = httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)
        self.transport: httpx.AsyncBaseTransport = (
            AiohttpTransport(limits) if config.transport == "aiohttp" else httpx.AsyncHTTPTransport(limits=limits))
        self.client = httpx.AsyncClient(timeout=timeout, transport=self.transport, headers=self.default_headers())
        # requests go straight to the transport: an upstream's cookies must not stick to the client, and
        # the client's auth/redirect/cookie layers cost CPU on every request for nothing a backend needs
        self._headers = {**self.default_headers(), "content-type": "application/json"}
        self._extensions = {"timeout": timeout.as_dict()}
        # over aiohttp a request is sent with no httpx objects at all (see transport.py): its headers and
        # timeout are prepared once here
        self._aiohttp = self.transport if isinstance(self.transport, AiohttpTransport) else None
        self._wire_headers = wire_headers(self._headers)
        self._client_timeout = client_timeout(self._extensions["timeout"])

    def default_headers(self) -> dict[str, str]:
        return dict(self.config.headers)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def post(self, url: str | httpx.URL, payload: dict[str, Any] | bytes, *, stream: bool = False,
                   headers: dict[str, str] | None = None) -> httpx.Response | Reply:
        """POST and return a successful response (its body unread when streaming); raise UpstreamError.
        `headers` (from plugins) are sent too, but never replace the backend's own (auth, content type).
        `payload` bytes go as they are (a signed body must be the bytes that were signed)."""
        content = payload if isinstance(payload, bytes) else dumps(payload)
        if tracing.on:  # W3C trace context: the upstream's spans join this request's trace
            headers = tracing.inject(headers)
        try:
            if self._aiohttp is not None:
                sent = {**wire_headers(headers), **self._wire_headers} if headers else self._wire_headers
                response: httpx.Response | Reply = await self._aiohttp.post(
                    str(url), content, sent, self._client_timeout, read=not stream,
                    limit=self.config.max_response_bytes)
            else:
                request = httpx.Request("POST", url, content=content,
                                        headers={**headers, **self._headers} if headers else self._headers,
                                        extensions=self._extensions)
                response = await self.transport.handle_async_request(request)
                if not stream:
                    try:
                        await _read_capped(response, self.config.max_response_bytes)
                    finally:
                        await response.aclose()
        except BodyTooLarge as exc:
            raise self.too_large(exc) from None
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(f"upstream '{self.name}' timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise UpstreamConnectionError(f"upstream '{self.name}' is unreachable ({type(exc).__name__})") from None
        if response.status_code >= 400:
            try:  # an error body is read for its message: a huge one is not read at all
                content = response.content if isinstance(response, Reply) and response.content else \
                    await _read_capped(response, min(ERROR_BODY_BYTES, self.config.max_response_bytes))
            except (httpx.HTTPError, BodyTooLarge):
                content = b""
            finally:
                await response.aclose()
            raise self.error_from(response, content)
        return response

    def error_from(self, response: httpx.Response | Reply, content: bytes) -> UpstreamError:
        """The upstream's error, every field it chose scrubbed (its key may be quoted in any of them); the
        status and a Retry-After in seconds are all that is taken from it unchanged."""
        status, secrets = response.status_code, self.secrets()
        try:
            err = loads(content)["error"]
        except (ValueError, KeyError, TypeError):
            err = content[:8192].decode("utf-8", "replace")  # scrubbed whole, then cut
        message, type_, code, param = _scrubbed(err, secrets, response.reason_phrase)
        headers = {}
        if RETRY_AFTER.fullmatch(response.headers.get("retry-after", "")):
            headers["retry-after"] = response.headers["retry-after"]
        kwargs: dict[str, Any] = {"upstream_status": status, "headers": headers, "param": param}
        if 400 <= status < 500:
            if type_:
                kwargs["type"] = type_
            kwargs["code"] = code or f"upstream_{status}"
            return UpstreamError(f"upstream '{self.name}': {message}", **kwargs)
        return UpstreamError(f"upstream '{self.name}' failed with status {status}: {message}", **kwargs)

    def too_large(self, exc: BodyTooLarge, started: bool = False) -> UpstreamError:
        """An answer over max_response_bytes: the upstream's fault, retried and fallen back like a 5xx until
        anything was relayed; after that the stream breaks off."""
        message = f"upstream '{self.name}' answered with {exc} (models.{self.name}.max_response_bytes)"
        if started:
            return StreamInterruptedError(message, code="upstream_response_too_large")
        return UpstreamError(message, code="upstream_response_too_large")

    def stream_error(self, err: Any) -> StreamInterruptedError:
        """An error event inside a 200 stream, scrubbed like an error status's body (see error_from)."""
        message, type_, code, param = _scrubbed(err, self.secrets(), "stream error")
        kwargs: dict[str, Any] = {"param": param}
        if type_:
            kwargs["type"] = type_
        if code:
            kwargs["code"] = code
        return StreamInterruptedError(f"upstream '{self.name}': {message}", **kwargs)

    async def sse_batches(self, response: httpx.Response | Reply) -> AsyncIterator[list[tuple[str | None, str]]]:
        """Yield the server-sent events of a stream as (event, data) pairs, batched by network read so
        that chunks which arrive together are relayed in one write. Maps transport failures mid-stream."""
        # an event's bytes may come over many reads: they wait in `pending` (joined once the event is whole) and
        # only each new read is searched, so a long event costs linear time; no event may pass the limit
        pending: list[bytes] = []
        held, limit = 0, self.config.max_response_bytes
        started = False
        try:
            async for block in response.aiter_bytes():
                if pending and block.startswith(b"\n") and pending[-1].endswith(b"\r"):
                    pending[-1] = pending[-1][:-1]  # a CRLF split between two reads
                    if not pending[-1]:
                        pending.pop()
                if b"\r" in block:
                    block = block.replace(b"\r\n", b"\n")
                cut = block.rfind(b"\n\n")
                if cut >= 0:
                    head = b"".join((*pending, block[:cut])) if pending else block[:cut]
                    rest = block[cut + 2:]
                elif pending and block.startswith(b"\n") and pending[-1].endswith(b"\n"):
                    head, rest = b"".join(pending)[:-1], block[1:]  # the blank line straddles two reads
                else:
                    held += len(block)
                    if held > limit:
                        raise BodyTooLarge(limit)
                    pending.append(block)
                    continue
                pending, held = ([rest], len(rest)) if rest else ([], 0)
                if held > limit:
                    raise BodyTooLarge(limit)
                batch = [e for e in map(_parse_event, head.split(b"\n\n")) if e is not None]
                if batch:
                    started = True
                    yield batch
            buffer = b"".join(pending)
            if buffer.strip() and (event := _parse_event(buffer)) is not None:
                yield [event]
        except BodyTooLarge as exc:
            raise self.too_large(exc, started) from None
        except httpx.HTTPError as exc:
            raise self.read_failure(exc, started) from None
        finally:
            await response.aclose()

    def read_failure(self, exc: httpx.HTTPError, started: bool) -> UpstreamError:
        """A transport failure while a streamed body was read: before anything reached the client it is an
        ordinary timeout or connection error, safe to retry; after, the stream broke."""
        if isinstance(exc, httpx.TimeoutException):
            if not started:
                return UpstreamTimeoutError(f"upstream '{self.name}' timed out before its first chunk")
            return StreamInterruptedError(f"upstream '{self.name}' stalled mid-stream")
        if not started:
            return UpstreamConnectionError(f"upstream '{self.name}' broke off before its first chunk "
                                           f"({type(exc).__name__})")
        return StreamInterruptedError(f"upstream '{self.name}' broke off mid-stream ({type(exc).__name__})")


ERROR_BODY_BYTES = 1024 * 1024  # an error status's body is read for its message: more is not read


async def _read_capped(response: httpx.Response | Reply, limit: int) -> bytes:
    """A body of at most `limit` bytes, counted as it is read and decompressed; BodyTooLarge past it."""
    if isinstance(response, Reply):
        return await response.aread(limit)
    response._content = content = await collect(response.aiter_bytes(), limit)  # kept as httpx's aread keeps it
    return content


def _scrubbed(err: Any, secrets: tuple[str, ...], default: str) -> tuple[str, str | None, str | None, str | None]:
    """An upstream error object's message, type, code and param, each scrubbed: its key may be quoted in any."""
    fields = err if isinstance(err, dict) else {"message": err}
    message = scrub_message(str(fields.get("message") or default), secrets)[:500]
    type_, code, param = (scrub_field(fields.get(k), secrets) for k in ("type", "code", "param"))
    return message, type_, code, param


def _check_headers(headers: dict[str, str], path: str) -> None:
    issues = [ConfigIssue(f"{path}.{name}", problem) for name, value in headers.items()
              if (problem := name_problem(name) or value_problem(value))]
    if issues:
        raise ConfigError(issues)


def _parse_event(raw: bytes) -> tuple[str | None, str] | None:
    if raw.startswith(b"data:") and b"\n" not in raw:  # a stream's usual event, one data line: no split, no join
        text = raw.decode("utf-8", "replace")
        return None, text[6:] if text.startswith("data: ") else text[5:]
    event: str | None = None
    data: list[str] = []
    for line in raw.decode("utf-8", "replace").split("\n"):
        if line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("event:"):
            event = line[6:].strip()
    return (event, "\n".join(data)) if data else None
