"""Google's Gemini API (generativelanguage.googleapis.com), translated to and from OpenAI's format (see gemini_wire).

The key travels in the `x-goog-api-key` header only: a `?key=` in the URL would end up in every proxy's and
tracer's log of URLs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from turnout.backends.base import Chunk, register
from turnout.backends.gemini_wire import StreamTranslator, from_gemini, to_gemini
from turnout.backends.http import HTTPBackend
from turnout.backends.transport import Reply
from turnout.errors import StreamInterruptedError, UpstreamError
from turnout.jsonutil import dumps, dumps_str, loads
from turnout.params import Params

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_VERSION = "v1beta"
# Google's canonical error codes (google.rpc.Code) as OpenAI error types; the status itself becomes `code`
ERROR_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error", "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error", "NOT_FOUND": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error", "PERMISSION_DENIED": "permission_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error", "INTERNAL": "server_error", "UNAVAILABLE": "server_error",
    "DEADLINE_EXCEEDED": "timeout_error",
}
RETRY_DELAY = re.compile(r"([0-9]{1,6})(?:\.[0-9]+)?s")


class SafetySetting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    category: str = Field(description="e.g. HARM_CATEGORY_HARASSMENT")
    threshold: Literal["BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF"]


class GeminiOptions(Params):
    safety_settings: list[SafetySetting] = Field(default_factory=list,
                                                 description="sent as safetySettings with every request")
    sign_unsigned_calls: bool = Field(True, description="a replayed tool call without its thought signature is "
                                      "sent with Google's skip_thought_signature_validator (Gemini 3 refuses it "
                                      "otherwise)")


def _openai_error(err: Any) -> Any:
    """Gemini's `{"code": 429, "message", "status": "RESOURCE_EXHAUSTED", "details"}` in OpenAI's error fields
    (still to be scrubbed). `details` is dropped: it is Google's debugging detail, free text included."""
    if not isinstance(err, dict):
        return err
    status = err.get("status")
    return {"message": err.get("message"), "type": ERROR_TYPES.get(str(status), "upstream_error"),
            "code": str(status).lower() if status else None}


def _retry_after(err: Any) -> str | None:
    """A 429's RetryInfo (`"retryDelay": "17s"`): Gemini sends it in the body, never as a Retry-After header."""
    for detail in (err.get("details") or []) if isinstance(err, dict) else []:
        if (isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo")
                and (match := RETRY_DELAY.fullmatch(str(detail.get("retryDelay", ""))))):
            return match.group(1)
    return None


@register("gemini")
class GeminiBackend(HTTPBackend):
    Options = GeminiOptions

    def default_headers(self) -> dict[str, str]:
        headers = super().default_headers()
        if self.config.api_key is not None:
            headers["x-goog-api-key"] = self.config.api_key.get_secret_value()
        return headers

    @cached_property
    def _model_url(self) -> str:
        base = (self.config.base_url or DEFAULT_BASE_URL).rstrip("/")
        model = quote(self.upstream_model.removeprefix("models/"), safe="-._")
        return f"{base}/{self.config.api_version or DEFAULT_VERSION}/models/{model}"

    @cached_property
    def url(self) -> httpx.URL:
        return httpx.URL(f"{self._model_url}:generateContent")

    @cached_property
    def stream_url(self) -> httpx.URL:
        return httpx.URL(f"{self._model_url}:streamGenerateContent?alt=sse")

    def payload(self, body: dict[str, Any]) -> dict[str, Any]:
        payload = to_gemini(body, self.options.sign_unsigned_calls)
        if self.options.safety_settings:
            payload["safetySettings"] = [s.model_dump() for s in self.options.safety_settings]
        return payload

    def error_from(self, response: httpx.Response | Reply, content: bytes) -> UpstreamError:
        try:
            err = loads(content)["error"]
        except (ValueError, KeyError, TypeError):
            return super().error_from(response, content)
        exc = super().error_from(response, dumps({"error": _openai_error(err)}))
        if "retry-after" not in exc.headers and (delay := _retry_after(err)) is not None:
            exc.headers["retry-after"] = delay
        return exc

    async def complete(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.post(self.url, self.payload(body), headers=headers)
        try:
            completion = from_gemini(loads(response.content), self.upstream_model)
        except (ValueError, AttributeError, TypeError, KeyError):
            completion = None
        if completion is None or not completion["choices"]:
            raise UpstreamError(f"upstream '{self.name}' returned a body that is not a Gemini response",
                                upstream_status=response.status_code, status=502)
        return completion

    async def stream(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> AsyncIterator[list[Chunk]]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = await self.post(self.stream_url, self.payload(body), stream=True, headers=headers)
        translator = StreamTranslator(self.upstream_model, include_usage)
        async for events in self.sse_batches(response):
            batch = []
            for _event, data in events:
                try:
                    event = loads(data)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    raise StreamInterruptedError(f"upstream '{self.name}' sent an event that is not a JSON object")
                if "error" in event:
                    if batch:
                        yield batch
                    raise self.stream_error(_openai_error(event["error"]))
                try:
                    batch += [dumps_str(chunk) for chunk in translator.feed(event)]
                except (AttributeError, TypeError, ValueError, KeyError):  # a field of the wrong JSON type
                    raise StreamInterruptedError(f"upstream '{self.name}' sent a malformed event") from None
            if batch:
                yield batch
        if not translator.finished:
            raise StreamInterruptedError(f"upstream '{self.name}' ended the stream before it finished")
        if tail := translator.close():
            yield [dumps_str(chunk) for chunk in tail]
