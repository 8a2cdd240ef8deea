"""OpenAI chat completions: the internal form itself, so this door only checks the request and frames the stream."""

from __future__ import annotations

from typing import Any, ClassVar

from turnout.doors.base import Call, Door, Framer, check_sizes, count_parts, register
from turnout.doors.chat_schema import ChatCompletionRequest, check_chat_request
from turnout.errors import TurnoutError
from turnout.jsonutil import dumps

DONE = b"data: [DONE]\n\n"


def frame(data: str) -> bytes:
    return b"data: " + data.encode("utf-8") + b"\n\n"


class ChatFramer(Framer):
    def frames(self, batch: list[str], parsed: list[Any]) -> bytes:
        return b"".join(map(frame, batch))

    async def end(self, trailer: str) -> bytes:
        # the trailer is an SSE comment: clients ignore it, scripts can read it
        return b": " + trailer.encode() + b"\n\n" + DONE

    def error(self, exc: TurnoutError, secrets: tuple[str, ...]) -> bytes:
        return b"data: " + dumps(exc.to_dict(secrets)) + b"\n\n"


@register("chat")
class ChatDoor(Door):
    paths = ("/v1/chat/completions", "/chat/completions")
    openapi: ClassVar[dict[str, Any] | None] = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}}

    async def inbound(self, body: Any, call: Call) -> dict[str, Any]:
        if isinstance(body, dict):
            messages = body.get("messages")
            check_sizes(call, messages, count_parts(messages, "content", "tool_calls"), body.get("tools"))
        check_chat_request(body)
        return body

    async def outbound(self, completion: dict[str, Any], call: Call) -> dict[str, Any]:
        return completion

    def framer(self, call: Call) -> Framer:
        return ChatFramer()
