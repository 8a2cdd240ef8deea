"""An internal chat completion as a Responses API `response` object, and what one request of the Responses door
carries from its translation to its answer (the Turn): the request as given, the conversation it continues,
its id. Pure functions; the stream's events are built from the same pieces (responses_stream.py)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from turnout.doors.responses_wire import ResponsesRequest, input_items
from turnout.errors import TurnoutError


def new_id(prefix: str) -> str:
    # unguessable: an id is all a caller needs to read a stored response of its key
    return f"{prefix}_{secrets.token_hex(24)}"


@dataclass
class Turn:
    """One Responses request between its translation and its answer."""

    request: ResponsesRequest
    body: dict[str, Any]  # as the client sent it
    owner: str  # the caller's key name: stored responses are per key
    history: list[dict[str, Any]] = field(default_factory=list)  # the items of the conversation it continues
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    passthrough: bool = False  # answered by an upstream that speaks the Responses API itself
    deferred: TurnoutError | None = None  # what translation refused; raised unless the route passes it through

    @property
    def store(self) -> bool:
        return self.request.store is not False  # stored unless the caller says not to

    @property
    def input(self) -> list[dict[str, Any]]:
        return input_items(self.request.input)


# ----- the response object ---------------------------------------------------------------------------------
def envelope(turn: Turn, *, output: list[dict[str, Any]], status: str, model: str,
             usage: dict[str, Any] | None = None, incomplete: str | None = None,
             error: dict[str, Any] | None = None, stored: bool | None = None) -> dict[str, Any]:
    """The `response` object around an output, echoing the request's settings as OpenAI does."""
    request, body = turn.request, turn.body
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
    return {
        "id": turn.id, "object": "response", "created_at": turn.created_at, "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error, "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": request.instructions, "max_output_tokens": request.max_output_tokens, "model": model,
        "output": output, "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": (reasoning or {}).get("effort"), "summary": (reasoning or {}).get("summary")},
        "store": turn.store if stored is None else stored,
        "temperature": request.temperature, "top_p": request.top_p,
        "text": {"format": {"type": "text"}, **text}, "tool_choice": request.tool_choice or "auto",
        "tools": request.tools or [], "truncation": body.get("truncation") or "disabled",
        "usage": usage, "user": request.user, "metadata": request.metadata or {}, "background": False,
    }


def response_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage (prompt/completion tokens) in the Responses names."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    cached = _count((usage.get("prompt_tokens_details") or {}).get("cached_tokens"))
    reasoning = _count((usage.get("completion_tokens_details") or {}).get("reasoning_tokens"))
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": _count(usage.get("total_tokens")) or prompt + completion}


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """A Responses usage object in chat's names (what cost and token limits read)."""
    if not isinstance(usage, dict):
        return None
    out = {"prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens"),
           "total_tokens": usage.get("total_tokens")}
    return {k: v for k, v in out.items() if isinstance(v, int)} or None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def message_item(text: str, status: str = "completed", item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_id("msg"), "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def call_item(call_id: str, name: str, arguments: str, status: str = "completed",
              item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_id("fc"), "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}


def incomplete_reason(finish_reason: Any) -> str | None:
    return {"length": "max_output_tokens", "content_filter": "content_filter"}.get(finish_reason)


def from_completion(turn: Turn, completion: dict[str, Any]) -> dict[str, Any]:
    """An internal chat completion as the `response` object."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    reason = incomplete_reason(choice.get("finish_reason"))
    status = "incomplete" if reason else "completed"
    output = []
    content = message.get("content")
    if isinstance(content, str) and content:
        output.append(message_item(content, status))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(call_item(str(call.get("id") or new_id("call")), str(function.get("name") or ""),
                                str(function.get("arguments") or ""), "completed"))
    return envelope(turn, output=output, status=status, model=str(completion.get("model") or turn.request.model),
                    usage=response_usage(completion.get("usage")), incomplete=reason)


def adopt(turn: Turn, upstream: dict[str, Any]) -> dict[str, Any]:
    """A passed-through upstream response under this server's id (the one GET /v1/responses/{id} knows)."""
    return {**upstream, "id": turn.id, "previous_response_id": turn.request.previous_response_id,
            "store": turn.store}


# ----- what is stored ----------------------------------------------------------------------------------------
def listed_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as GET /v1/responses/{id}/input_items lists them: each with an id, a type and a status, a
    message's text as content parts."""
    out = []
    for item in items:
        item = dict(item)
        kind = item.setdefault("type", "message")
        if kind == "message":
            assistant = item.get("role") == "assistant"
            if isinstance(item.get("content"), str):
                part = "output_text" if assistant else "input_text"
                item["content"] = [{"type": part, "text": item["content"],
                                    **({"annotations": []} if assistant else {})}]
        prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}.get(kind, "item")
        item.setdefault("id", new_id(prefix))
        item.setdefault("status", "completed")
        out.append(item)
    return out


def record(turn: Turn, response: dict[str, Any]) -> dict[str, Any]:
    """The stored form: the response, its input items, and the whole conversation up to its output (what a
    later previous_response_id continues; instructions are not carried over, as OpenAI does not)."""
    listed = listed_items(turn.input)
    output = [item for item in response.get("output") or () if isinstance(item, dict)]
    return {"response": response, "input_items": listed, "conversation": turn.history + listed + output}


def replayable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stored conversation as input items for an upstream that speaks the Responses API: without the ids and
    statuses this server gave them (an upstream would look those ids up); reasoning items keep theirs."""
    out = []
    for item in items:
        if item.get("type") != "reasoning":
            item = {k: v for k, v in item.items() if k not in ("id", "status")}
        out.append(item)
    return out
