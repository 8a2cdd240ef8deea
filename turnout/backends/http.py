"""Shared HTTP plumbing for backends: one pooled httpx.AsyncClient each, error mapping, SSE reading."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from turnout.backends.base import Backend
from turnout.config import ModelConfig
from turnout.errors import (
    StreamInterruptedError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
    scrub,
)


class HTTPBackend(Backend):
    def __init__(self, name: str, config: ModelConfig, *, path: str = "") -> None:
        super().__init__(name, config, path=path)
        t = config.timeout
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            limits=httpx.Limits(max_connections=config.max_connections,
                                max_keepalive_connections=config.max_connections),
            headers=self.default_headers(),
        )

    def default_headers(self) -> dict[str, str]:
        return dict(self.config.headers)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def post(self, url: str, payload: dict[str, Any], *, stream: bool = False) -> httpx.Response:
        """POST and return a successful response (its body unread when streaming); raise UpstreamError."""
        request = self.client.build_request("POST", url, content=json.dumps(payload).encode(),
                                            headers={"content-type": "application/json"})
        try:
            response = await self.client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(f"upstream '{self.name}' timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise UpstreamConnectionError(f"upstream '{self.name}' is unreachable ({type(exc).__name__})") from None
        if response.status_code >= 400:
            try:
                content = await response.aread()
            except httpx.HTTPError:
                content = b""
            finally:
                await response.aclose()
            raise self.error_from(response, content)
        return response

    def error_from(self, response: httpx.Response, content: bytes) -> UpstreamError:
        status = response.status_code
        message, type_, code, param = "", None, None, None
        try:
            err = json.loads(content)["error"]
            if isinstance(err, dict):
                message = str(err.get("message") or "")
                type_, code, param = err.get("type"), err.get("code"), err.get("param")
            else:
                message = str(err)
        except (ValueError, KeyError, TypeError):
            message = content[:200].decode("utf-8", "replace")
        message = scrub(message or response.reason_phrase, self.secrets())
        headers = {}
        if "retry-after" in response.headers:
            headers["retry-after"] = response.headers["retry-after"]
        kwargs: dict[str, Any] = {"upstream_status": status, "headers": headers, "param": param}
        if 400 <= status < 500:
            if type_:
                kwargs["type"] = str(type_)
            kwargs["code"] = str(code) if code is not None else f"upstream_{status}"
            return UpstreamError(f"upstream '{self.name}': {message}", **kwargs)
        return UpstreamError(f"upstream '{self.name}' failed with status {status}: {message}", **kwargs)

    async def sse_events(self, response: httpx.Response) -> AsyncIterator[tuple[str | None, str]]:
        """Yield (event, data) pairs of a server-sent-event stream; map transport failures mid-stream."""
        event: str | None = None
        data: list[str] = []
        try:
            async for line in response.aiter_lines():
                if not line:
                    if data:
                        yield event, "\n".join(data)
                    event, data = None, []
                elif line.startswith("data:"):
                    data.append(line[6:] if line.startswith("data: ") else line[5:])
                elif line.startswith("event:"):
                    event = line[6:].strip()
            if data:
                yield event, "\n".join(data)
        except httpx.TimeoutException:
            raise StreamInterruptedError(f"upstream '{self.name}' stalled mid-stream") from None
        except httpx.HTTPError as exc:
            raise StreamInterruptedError(
                f"upstream '{self.name}' broke off mid-stream ({type(exc).__name__})") from None
        finally:
            await response.aclose()
