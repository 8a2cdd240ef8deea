"""Any OpenAI-compatible server: OpenAI, vLLM, Ollama, llama.cpp, Together, ... Bodies pass through as is,
with only `model` set to the upstream model id."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from turnout.backends.base import Chunk, register
from turnout.backends.http import HTTPBackend
from turnout.errors import StreamInterruptedError, UpstreamError

# a chunk that carries a finish reason (or an error event) ends a stream even if [DONE] never comes
_FINISHED = re.compile(r'"finish_reason"\s*:\s*"|^\{\s*"error"')


@register("openai")
class OpenAIBackend(HTTPBackend):
    def default_headers(self) -> dict[str, str]:
        headers = super().default_headers()
        if self.config.api_key is not None:
            headers["authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        return headers

    @property
    def url(self) -> str:
        return f"{(self.config.base_url or '').rstrip('/')}/chat/completions"

    def payload(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "model": self.upstream_model}

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.post(self.url, self.payload(body))
        try:
            data = response.json()
        except ValueError:
            raise UpstreamError(f"upstream '{self.name}' returned a body that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamError(f"upstream '{self.name}' returned JSON that is not a chat completion")
        return data

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[Chunk]:
        response = await self.post(self.url, self.payload(body), stream=True)
        finished = False
        async for _event, data in self.sse_events(response):
            if data == "[DONE]":
                return
            finished = finished or _FINISHED.search(data) is not None
            yield data
        if not finished:
            raise StreamInterruptedError(f"upstream '{self.name}' ended the stream before it finished")
