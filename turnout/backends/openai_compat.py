"""Any OpenAI-compatible server: OpenAI, vLLM, Ollama, llama.cpp, Together, ... Bodies pass through as is,
with only `model` set to the upstream model id."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

import httpx

from turnout.backends.base import Chunk, register
from turnout.backends.http import HTTPBackend
from turnout.errors import StreamInterruptedError, UpstreamError
from turnout.jsonutil import loads

# a chunk that carries a finish reason ends a stream even if [DONE] never comes
_FINISH_KEY = '"finish_reason"'
_STRING_VALUE = re.compile(r'\s*:\s*"')

# an error event ends it too; a substring test first, so that only chunks that might be one are parsed
_ERROR_KEY = '"error"'


def finishes(data: str) -> bool:
    """Whether a chunk has a string `finish_reason` (the pattern `"finish_reason"\\s*:\\s*"` anywhere), on every
    chunk of a stream: a literal search for the key, in C, and the pattern's rest matched only where the key is (a
    third of a regex search's cost over the whole chunk)."""
    at = data.find(_FINISH_KEY)
    while at >= 0:
        if _STRING_VALUE.match(data, at + len(_FINISH_KEY)):
            return True
        at = data.find(_FINISH_KEY, at + len(_FINISH_KEY))
    return False


def _error_of(data: str) -> Any:
    try:
        event = loads(data)
    except ValueError:
        return None
    return event.get("error") if isinstance(event, dict) and event.get("error") is not None else None


@register("openai")
class OpenAIBackend(HTTPBackend):
    def default_headers(self) -> dict[str, str]:
        headers = super().default_headers()
        if self.config.api_key is not None:
            headers["authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        return headers

    @cached_property
    def url(self) -> str:
        return f"{(self.config.base_url or '').rstrip('/')}/chat/completions"

    def payload(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "model": self.upstream_model}

    def endpoint(self, operation: str) -> str | httpx.URL:
        """The URL of one of the upstream's OpenAI endpoints ("embeddings", "completions", ...)."""
        return f"{(self.config.base_url or '').rstrip('/')}/{operation}"

    async def complete(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        return await self._post_json(self.url, self.payload(body), headers, "choices", "a chat completion")

    async def _post_json(self, url: str | httpx.URL, payload: dict[str, Any], headers: dict[str, str] | None,
                         key: str, what: str) -> dict[str, Any]:
        """POST and return the JSON object answered, which must hold the list `key`."""
        response = await self.post(url, payload, headers=headers)
        try:
            data = loads(response.content)
        except ValueError:
            raise UpstreamError(f"upstream '{self.name}' returned a body that is not JSON",
                                upstream_status=response.status_code, status=502) from None  # answered: never resent
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise UpstreamError(f"upstream '{self.name}' returned JSON that is not {what}",
                                upstream_status=response.status_code, status=502)
        return data

    def stream(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> AsyncIterator[list[Chunk]]:
        return self._relay(self.url, self.payload(body), headers)

    async def _relay(self, url: str | httpx.URL, payload: dict[str, Any],
                     headers: dict[str, str] | None) -> AsyncIterator[list[Chunk]]:
        """An OpenAI-style stream (chat or text completion chunks, then [DONE]) relayed batch by batch."""
        response = await self.post(url, payload, stream=True, headers=headers)
        finished = done = False
        async for events in self.sse_batches(response):
            if done:
                continue  # read to the end so the connection goes back to the pool
            batch = []
            for _event, data in events:
                if data == "[DONE]":
                    finished = done = True
                    break
                if _ERROR_KEY in data and (err := _error_of(data)) is not None:
                    # never relayed as it came: its message, type, code and param may quote our key
                    if batch:
                        yield batch
                    raise self.stream_error(err)
                finished = finished or finishes(data)
                batch.append(data)
            if batch:
                yield batch
        if not finished:
            raise StreamInterruptedError(f"upstream '{self.name}' ended the stream before it finished")

    # ----- embeddings and legacy text completions: passed through, only `model` replaced -----
    async def embed(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        return await self._post_json(self.endpoint("embeddings"), self.payload(body), headers, "data",
                                     "an embeddings list")

    async def text_completion(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        return await self._post_json(self.endpoint("completions"), self.payload(body), headers, "choices",
                                     "a text completion")

    def text_completion_stream(self, body: dict[str, Any],
                               headers: dict[str, str] | None = None) -> AsyncIterator[list[Chunk]]:
        return self._relay(self.endpoint("completions"), self.payload(body), headers)

    # ----- the Responses API, passed through (models with `responses_api: true`) -----
    @property
    def responses_url(self) -> str | httpx.URL:
        return self.endpoint("responses")

    @property
    def responses_model(self) -> str:
        return self.upstream_model

    async def responses(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """A Responses API request with only `model` replaced; the upstream's `response` object."""
        return await self._post_json(self.responses_url, {**body, "model": self.responses_model}, headers, "output",
                                     "a Responses API response")

    async def responses_stream(self, body: dict[str, Any],
                               headers: dict[str, str] | None = None) -> AsyncIterator[list[Chunk]]:
        """A streamed Responses API request: its events' JSON texts, batch by batch. An `error` or
        `response.failed` event ends it as a StreamInterruptedError (scrubbed, never relayed as it came)."""
        response = await self.post(self.responses_url, {**body, "model": self.responses_model}, stream=True,
                                   headers=headers)
        finished = False
        async for events in self.sse_batches(response):
            if finished:
                continue  # read to the end so the connection goes back to the pool
            batch = []
            for _event, data in events:
                try:
                    event = loads(data)
                except ValueError:
                    continue
                kind = event.get("type") if isinstance(event, dict) else None
                if kind in ("error", "response.failed"):
                    if batch:
                        yield batch
                    failed = event.get("response") if kind == "response.failed" else {"error": event}
                    raise self.stream_error(failed.get("error") if isinstance(failed, dict) else None)
                batch.append(data)
                if kind in ("response.completed", "response.incomplete"):
                    finished = True
                    break
            if batch:
                yield batch
        if not finished:
            raise StreamInterruptedError(f"upstream '{self.name}' ended the stream before it finished")
