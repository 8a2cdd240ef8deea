"""Converting between a complete chat completion and the chunks of a stream of it: a plugin's answer (a cache
hit, a canned reply) streamed to a client that asked for a stream, and a streamed answer kept whole (to cache
it, or to check it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from turnout.jsonutil import dumps_str, loads


def completion_as_chunks(response: dict[str, Any], include_usage: bool = False) -> list[str]:
    """A complete chat completion as the chunks a stream of it would have carried."""
    base = {"id": response.get("id", ""), "object": "chat.completion.chunk", "created": response.get("created", 0),
            "model": response.get("model", "")}
    chunks = []
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        delta = {"role": "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        index = choice.get("index", 0)
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": index, "delta": {}, "logprobs": None,
                                            "finish_reason": choice.get("finish_reason") or "stop"}]})
    if include_usage and response.get("usage"):
        chunks.append({**base, "choices": [], "usage": response["usage"]})
    return [dumps_str(c) for c in chunks]


def assemble_completion(chunks: list[str]) -> dict[str, Any] | None:
    """The chat completion that a stream's chunks add up to (text content, finish reasons, usage); None when a
    chunk is not JSON or carries tool calls, which are not reassembled."""
    head: dict[str, Any] = {}
    texts: dict[int, list[str]] = {}
    finish: dict[int, str | None] = {}
    usage = None
    for chunk in chunks:
        try:
            data = loads(chunk)
        except ValueError:
            return None
        if not head:
            head = {k: data.get(k) for k in ("id", "created", "model", "system_fingerprint") if k in data}
        if isinstance(data.get("usage"), dict):
            usage = data["usage"]
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("tool_calls") or delta.get("function_call"):
                return None
            index = int(choice.get("index") or 0)
            texts.setdefault(index, [])
            if isinstance(delta.get("content"), str):
                texts[index].append(delta["content"])
            if choice.get("finish_reason"):
                finish[index] = choice["finish_reason"]
    choices = [{"index": i, "message": {"role": "assistant", "content": "".join(texts[i])}, "logprobs": None,
                "finish_reason": finish.get(i)} for i in sorted(texts)]
    return {**head, "object": "chat.completion", "choices": choices, **({"usage": usage} if usage else {})}


async def single_batch(batch: list[str]) -> AsyncIterator[list[str]]:
    yield batch
