"""Pure translation for the Messages door, outbound: an internal chat completion as an Anthropic message, a stream
of internal chunks as Anthropic's events, and what an Anthropic upstream's own answer used (for the Exchange's
accounting)."""

from __future__ import annotations

from typing import Any

from turnout.backends.anthropic_wire import usage_of
from turnout.context import tokens_for_chars
from turnout.errors import UpstreamError
from turnout.jsonutil import loads

#: chat finish_reason -> Anthropic stop_reason ("stop" may become stop_sequence, see stop_reason_of)
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}


def stop_reason_of(finish: str | None, matched: Any, stops: list[str]) -> tuple[str, str | None]:
    """Anthropic's stop_reason and stop_sequence. A stop sequence is known when the upstream names the one that
    matched (vLLM and others put it in the choice's `stop_reason`)."""
    if finish in (None, "stop") and isinstance(matched, str) and matched in stops:
        return "stop_sequence", matched
    return STOP_REASONS.get(finish or "stop", "end_turn"), None


def usage_from_chat(usage: dict[str, Any] | None, input_estimate: int, output_estimate: int) -> dict[str, Any]:
    """Anthropic's usage from chat's (input_tokens leave out the cached part, as Anthropic counts them)."""
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    prompt = prompt if isinstance(prompt, int) and prompt >= 0 else input_estimate
    out = {"input_tokens": max(0, prompt - cached),
           "output_tokens": completion if isinstance(completion, int) and completion >= 0 else output_estimate}
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    raw = fn.get("arguments") or "{}"
    try:
        arguments = loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise UpstreamError("the upstream answered a tool call whose arguments are not a JSON object", status=502)
    return {"type": "tool_use", "id": call.get("id") or "", "name": fn.get("name") or "", "input": arguments}


def from_chat(completion: dict[str, Any], message_id: str, stops: list[str], input_estimate: int) -> dict[str, Any]:
    """An internal chat completion as an Anthropic message."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    text = message.get("content") if isinstance(message.get("content"), str) else ""
    calls = [_tool_use(c) for c in message.get("tool_calls") or () if isinstance(c, dict)]
    content = ([{"type": "text", "text": text}] if text or not calls else []) + calls
    reason, sequence = stop_reason_of(choice.get("finish_reason"), choice.get("stop_reason"), stops)
    return {"id": message_id, "type": "message", "role": "assistant", "model": completion.get("model") or "",
            "content": content, "stop_reason": reason, "stop_sequence": sequence,
            "usage": usage_from_chat(completion.get("usage"), input_estimate, tokens_for_chars(len(text)))}


def native_usage(data: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
    """Usage (in chat's names) and text characters of an Anthropic message or stream event, as Door.tally."""
    kind = data.get("type")
    if kind == "message":
        usage = data.get("usage")
        chars = sum(len(b.get("text") or "") for b in data.get("content") or () if isinstance(b, dict)
                    and isinstance(b.get("text"), str))
        return (usage_of(usage) if isinstance(usage, dict) else None), chars
    if kind == "message_start":
        usage = (data.get("message") or {}).get("usage") if isinstance(data.get("message"), dict) else None
        return (usage_of(usage) if isinstance(usage, dict) else None), 0
    if kind == "message_delta" and isinstance(data.get("usage"), dict):
        # counts so far, not increments; only those present (message_start gave the input count)
        whole = usage_of(data["usage"])
        keep = {"completion_tokens"} | ({"prompt_tokens"} if data["usage"].get("input_tokens") is not None else set())
        return {k: v for k, v in whole.items() if k in keep}, 0
    if kind == "content_block_delta" and isinstance(data.get("delta"), dict):
        text = data["delta"].get("text")
        return None, len(text) if isinstance(text, str) else 0
    return None, 0


class EventWriter:
    """Internal chat chunks into Anthropic's stream events: message_start, then per block content_block_start /
    content_block_delta (text_delta, input_json_delta) / content_block_stop, then message_delta and message_stop
    once the stream has ended (the usage chunk comes after the finish reason)."""

    def __init__(self, message_id: str, stops: list[str], input_estimate: int) -> None:
        self.message_id, self.stops, self.input_estimate = message_id, stops, input_estimate
        self.started = False
        self.index = -1  # the open block's index; -1: none yet
        self.open: str | None = None  # "text", or "tool:<chat tool index>"
        self.tools: dict[int, int] = {}  # chat tool_calls index -> block index
        self.finish: str | None = None
        self.matched: Any = None
        self.usage: dict[str, Any] | None = None
        self.chars = 0

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if not self.started:
            self.started = True
            events.append({"type": "message_start", "message": {
                "id": self.message_id, "type": "message", "role": "assistant", "model": chunk.get("model") or "",
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": self.input_estimate, "output_tokens": 0}}})
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                if self.open != "text":
                    events += self._start({"type": "text", "text": ""}, "text")
                self.chars += len(delta["content"])
                events.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or ():
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.finish, self.matched = choice["finish_reason"], choice.get("stop_reason")
        return events

    def _tool_delta(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events = []
        j = call.get("index", 0)
        fn = call.get("function") or {}
        if j not in self.tools:
            events += self._start({"type": "tool_use", "id": call.get("id") or "", "name": fn.get("name") or "",
                                   "input": {}}, f"tool:{j}")
            self.tools[j] = self.index
        if fn.get("arguments"):
            self.chars += len(fn["arguments"])
            events.append({"type": "content_block_delta", "index": self.tools[j],
                           "delta": {"type": "input_json_delta", "partial_json": fn["arguments"]}})
        return events

    def _start(self, block: dict[str, Any], what: str) -> list[dict[str, Any]]:
        events = self._stop()
        self.index += 1
        self.open = what
        return events + [{"type": "content_block_start", "index": self.index, "content_block": block}]

    def _stop(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def finish_events(self) -> list[dict[str, Any]]:
        reason, sequence = stop_reason_of(self.finish, self.matched, self.stops)
        usage = usage_from_chat(self.usage, self.input_estimate, tokens_for_chars(self.chars))
        return self._stop() + [{"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
                                "usage": usage}, {"type": "message_stop"}]
