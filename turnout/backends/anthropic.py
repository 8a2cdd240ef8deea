"""Anthropic's Messages API, translated to and from OpenAI's format (see anthropic_wire)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

import httpx

from pydantic import Field

from turnout.backends.anthropic_wire import StreamTranslator, from_anthropic, to_anthropic
from turnout.backends.base import Chunk, register
from turnout.backends.http import HTTPBackend
from turnout.backends.transport import Reply
from turnout.errors import StreamInterruptedError, UpstreamError
from turnout.jsonutil import dumps_str, loads
from turnout.params import Params

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
#: stream events and the field of each that must be an object
NESTED = {"message_start": "message", "content_block_start": "content_block", "content_block_delta": "delta",
          "message_delta": "delta"}


class AnthropicOptions(Params):
    default_max_tokens: int = Field(4096, ge=1, description="max_tokens when the request sets none")


@register("anthropic")
class AnthropicBackend(HTTPBackend):
    Options = AnthropicOptions

    def default_headers(self) -> dict[str, str]:
        headers = super().default_headers()
        headers["anthropic-version"] = self.config.api_version or DEFAULT_VERSION
        if self.config.api_key is not None:
            headers["x-api-key"] = self.config.api_key.get_secret_value()
        return headers

    @cached_property
    def url(self) -> httpx.URL:
        return httpx.URL(f"{(self.config.base_url or DEFAULT_BASE_URL).rstrip('/')}/v1/messages")

    def payload(self, body: dict[str, Any]) -> dict[str, Any]:
        return to_anthropic(body, self.upstream_model, self.options.default_max_tokens)

    async def complete(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        payload = self.payload({**body, "stream": False})
        response = await self.post(self.url, payload, headers=headers)
        try:
            return from_anthropic(loads(response.content))
        except (ValueError, AttributeError, TypeError):
            raise UpstreamError(f"upstream '{self.name}' returned a body that is not an Anthropic message",
                                upstream_status=response.status_code, status=502) from None

    async def stream(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> AsyncIterator[list[Chunk]]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = await self.post(self.url, self.payload({**body, "stream": True}), stream=True, headers=headers)
        translator = StreamTranslator(include_usage)
        async for events in self.events(response):
            try:
                batch = [dumps_str(chunk) for event, _data in events for chunk in translator.feed(event)]
            except (AttributeError, TypeError, ValueError):  # a field of the wrong JSON type
                raise StreamInterruptedError(f"upstream '{self.name}' sent a malformed event") from None
            if batch:
                yield batch

    # ----- native: an Anthropic body as it came (the Messages door), Anthropic's answer as it is ------------
    async def messages(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.post(self.url, body, headers=headers)
        try:
            message = loads(response.content)
        except ValueError:
            message = None
        if not isinstance(message, dict) or message.get("type") != "message":
            raise UpstreamError(f"upstream '{self.name}' returned a body that is not an Anthropic message",
                                upstream_status=response.status_code, status=502)
        return message

    async def messages_stream(self, body: dict[str, Any], headers: dict[str, str] | None = None
                              ) -> AsyncIterator[list[str]]:
        """Batches of the upstream's stream events, each the JSON text of its `data`."""
        response = await self.post(self.url, body, stream=True, headers=headers)
        async for events in self.events(response):
            for event, _data in events:  # relayed as they are: a client's SDK must be able to read them
                field = NESTED.get(event.get("type"))
                if field is not None and not isinstance(event.get(field), dict):
                    raise StreamInterruptedError(f"upstream '{self.name}' sent a malformed event")
            yield [data for _event, data in events]

    async def events(self, response: httpx.Response | Reply) -> AsyncIterator[list[tuple[dict[str, Any], str]]]:
        """The stream's events (parsed, and as sent), batched by network read, up to message_stop. An error
        event raises, scrubbed; so does a stream that ends before its stop reason."""
        finished = stopped = False
        async for sse in self.sse_batches(response):
            batch = []
            for _event, data in sse:
                if stopped:
                    break  # keep reading to the end so the connection goes back to the pool
                try:
                    event = loads(data)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    raise StreamInterruptedError(f"upstream '{self.name}' sent an event that is not a JSON object")
                kind = event.get("type")
                if kind == "error":
                    if batch:
                        yield batch
                    err = event.get("error")
                    # Anthropic names the kind of error in `type` (overloaded_error, ...): OpenAI's `code`
                    raise self.stream_error({"message": err.get("message"), "code": err.get("type")}
                                            if isinstance(err, dict) else err)
                delta = event.get("delta")
                finished = finished or kind == "message_stop" or (
                    kind == "message_delta" and isinstance(delta, dict) and bool(delta.get("stop_reason")))
                stopped = kind == "message_stop"
                batch.append((event, data))
            if batch:
                yield batch
        if not finished:
            raise StreamInterruptedError(f"upstream '{self.name}' ended the stream before it finished")
