"""Pure translation between OpenAI chat completions and Amazon Bedrock's Converse API, both ways, and the
decoding of ConverseStream's AWS event-stream framing (binary frames with CRCs, not server-sent events)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from turnout.backends.wire import (
    call_arguments,
    content_text,
    data_url,
    json_instruction,
)
from turnout.errors import InvalidRequestError
from turnout.jsonutil import loads

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}

# The status Bedrock gives each exception when it answers with an HTTP error instead (the same names,
# capitalised, come in x-amzn-ErrorType): an exception that ends a stream before anything was relayed is
# handled as that status would be (a throttle is retried, a validation error goes back to the caller).
EXCEPTION_STATUS = {
    "validationException": 400,
    "accessDeniedException": 403,
    "resourceNotFoundException": 404,
    "modelTimeoutException": 408,
    "modelErrorException": 424,
    "modelStreamErrorException": 424,
    "throttlingException": 429,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
}


def _image_block(part: dict[str, Any], param: str) -> dict[str, Any]:
    url = (part.get("image_url") or {}).get("url", "") if isinstance(part.get("image_url"), dict) else ""
    if url.startswith(("http://", "https://")):
        # Converse takes image bytes or an S3 location, never a URL: fetching it here would make the router a
        # proxy to anywhere the caller names
        raise InvalidRequestError("Bedrock models take images inline only: send a base64 data: URL", param=param)
    media_type, data = data_url(url, param)
    media_type = media_type.lower()
    if media_type not in IMAGE_FORMATS:
        raise InvalidRequestError(f"image type '{media_type}' is not supported by Bedrock "
                                  f"(supported: {', '.join(sorted(set(IMAGE_FORMATS)))})", param=param)
    # restJson carries a blob as base64 text: the data URL's payload goes as it is
    return {"image": {"format": IMAGE_FORMATS[media_type], "source": {"bytes": data}}}


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []  # Bedrock refuses a blank text block
    blocks = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part, f"{param}[{i}].image_url"))
        else:
            raise InvalidRequestError(f"content part type '{kind}' is not supported by Bedrock models",
                                      param=f"{param}[{i}].type")
    return blocks


def _tool_use(call: dict[str, Any], param: str) -> dict[str, Any]:
    id_, name, arguments = call_arguments(call, param)
    return {"toolUse": {"toolUseId": id_, "name": name, "input": arguments}}


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    # Converse wants user and assistant turns to alternate: consecutive turns of one role (tool results, then
    # the user's next words) become one message
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_config(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    if not body.get("tools") or choice == "none":  # Converse has no "none": a model without tools calls none
        return None
    tools = []
    for tool in body["tools"]:
        fn = tool.get("function") or {}
        spec: dict[str, Any] = {"name": fn.get("name", ""),
                                "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}}}
        if fn.get("description"):
            spec["description"] = fn["description"]
        tools.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": tools}
    if isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name", "")}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def _inference_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        config["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    return config


def to_converse(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completion request as a Converse request (the model id travels in the URL)."""
    if (body.get("n") or 1) > 1:
        raise InvalidRequestError("n > 1 is not supported by Bedrock models", param="n")
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(body.get("messages") or []):
        role, param = msg.get("role"), f"messages[{i}].content"
        if role in ("system", "developer"):
            if text := content_text(msg.get("content")):
                system.append({"text": text})
        elif role == "user":
            _append(messages, "user", _blocks(msg.get("content"), param))
        elif role == "assistant":
            blocks = _blocks(msg.get("content"), param)
            blocks += [_tool_use(c, f"messages[{i}].tool_calls[{j}]") for j, c in enumerate(msg.get("tool_calls") or [])]
            _append(messages, "assistant", blocks)
        elif role in ("tool", "function"):
            result = {"toolResult": {"toolUseId": msg.get("tool_call_id") or msg.get("name", ""),
                                     "content": [{"text": content_text(msg.get("content"))}]}}
            _append(messages, "user", [result])
    if instruction := json_instruction(body):
        system.append({"text": instruction})
    out: dict[str, Any] = {"messages": messages}
    if system:
        out["system"] = system
    if inference := _inference_config(body):
        out["inferenceConfig"] = inference
    if tools := _tool_config(body):
        out["toolConfig"] = tools
    return out


def usage_of(usage: dict[str, Any]) -> dict[str, Any]:
    cached = usage.get("cacheReadInputTokens") or 0
    prompt = (usage.get("inputTokens") or 0) + cached + (usage.get("cacheWriteInputTokens") or 0)
    completion = usage.get("outputTokens") or 0
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def completion_id(request_id: str | None) -> str:
    """Converse answers carry no id; AWS's request id (x-amzn-RequestId) names the answer when there is one."""
    return f"chatcmpl-{request_id or uuid.uuid4().hex}"


def from_converse(response: dict[str, Any], model: str, request_id: str | None = None) -> dict[str, Any]:
    """A Converse response as an OpenAI chat completion."""
    texts, calls = [], []
    for block in ((response.get("output") or {}).get("message") or {}).get("content") or []:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append({"id": use.get("toolUseId", ""), "type": "function",
                          "function": {"name": use.get("name", ""), "arguments": json.dumps(use.get("input") or {})}})
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": completion_id(request_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": STOP_REASONS.get(response.get("stopReason") or "end_turn", "stop")}],
        "usage": usage_of(response.get("usage") or {}),
    }


class StreamFault(Exception):
    """The bytes of a stream are not AWS event-stream frames (a bad prelude or CRC, a payload that is not JSON)."""


class StreamException(Exception):
    """Bedrock ended the stream with an exception event (throttlingException, ...): its type and message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


MAX_FRAME = 16 + 128 * 1024 + 24 * 1024 * 1024  # botocore's limits: prelude and CRC, headers, payload


class EventDecoder:
    """Bytes as they arrive in, (event type, payload) pairs out; frames split across reads are kept until whole.
    botocore's EventStreamBuffer checks each frame's prelude and message CRC32s."""

    def __init__(self, limit: int | None = None) -> None:
        from botocore.eventstream import (  # botocore: only with a bedrock model
            EventStreamBuffer,
            ParserError,
        )

        self._buffer = EventStreamBuffer()
        self._parser_error = ParserError
        # bytes wait here until a whole frame is in: botocore's buffer copies all it holds on every add, which
        # is quadratic in a frame that arrives over many reads
        self._pending = bytearray()
        self._limit = limit or MAX_FRAME  # the most one frame may take (max_response_bytes)

    def _whole_frames(self) -> bytes:
        """The complete frames at the front of what is pending, taken out of it (b"" while the next is partial)."""
        pending, end = self._pending, 0
        while len(pending) - end >= 4:
            total = int.from_bytes(pending[end:end + 4], "big")  # a frame's prelude starts with its total length
            if total > self._limit or total < 16:
                raise StreamFault(f"a frame of {total} bytes (a frame has 16 to {self._limit})")
            if len(pending) - end < total:
                break
            end += total
        whole = bytes(pending[:end])
        del pending[:end]
        return whole

    def feed(self, data: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
        """The events complete so far, in order; raises StreamException at an exception or error frame (after
        the events before it), StreamFault at bytes that are not valid frames."""
        self._pending += data
        whole = self._whole_frames()
        if not whole:
            return
        self._buffer.add_data(whole)
        try:
            for message in self._buffer:
                headers = message.headers
                kind = headers.get(":message-type", "event")
                if kind == "exception":
                    raise StreamException(str(headers.get(":exception-type", "exception")), _message_of(message.payload))
                if kind == "error":
                    raise StreamException(str(headers.get(":error-code", "error")),
                                          str(headers.get(":error-message", "")))
                payload = loads(message.payload) if message.payload else {}
                if not isinstance(payload, dict):
                    raise StreamFault("an event payload is not a JSON object")
                yield str(headers.get(":event-type", "")), payload
        except self._parser_error as exc:
            raise StreamFault(type(exc).__name__) from None
        except ValueError:
            raise StreamFault("an event payload is not JSON") from None


def _message_of(payload: bytes) -> str:
    try:
        body = loads(payload)
    except ValueError:
        return payload[:500].decode("utf-8", "replace")
    return str(body.get("message") or body.get("Message") or "") if isinstance(body, dict) else str(body)


class StreamTranslator:
    """Turns ConverseStream events into OpenAI chunk dicts, one event at a time."""

    def __init__(self, model: str, include_usage: bool, request_id: str | None = None) -> None:
        self.include_usage = include_usage
        self.id, self.model, self.created = completion_id(request_id), model, int(time.time())
        self.tool_index: dict[int, int] = {}  # Converse content block index → OpenAI tool_calls index
        self.answering = False  # a chunk beyond the role was made: the answer has begun
        self.finished = False  # messageStop was seen
        self.stopped = False  # metadata was seen: nothing more comes

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                 "model": self.model,
                                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage_of(usage)}

    def feed(self, kind: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        chunks = self._chunks(kind, event)
        if chunks and kind != "messageStart":
            self.answering = True
        return chunks

    def _chunks(self, kind: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        if kind == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "contentBlockStart":
            use = (event.get("start") or {}).get("toolUse")
            if use is None:
                return []
            index = self.tool_index.setdefault(event.get("contentBlockIndex", 0), len(self.tool_index))
            return [self._chunk({"tool_calls": [{"index": index, "id": use.get("toolUseId", ""), "type": "function",
                                                 "function": {"name": use.get("name", ""), "arguments": ""}}]})]
        if kind == "contentBlockDelta":
            delta = event.get("delta") or {}
            if "text" in delta:
                return [self._chunk({"content": delta["text"]})]
            if "toolUse" in delta:
                index = self.tool_index.get(event.get("contentBlockIndex", 0), 0)
                return [self._chunk({"tool_calls": [{"index": index,
                                                     "function": {"arguments": delta["toolUse"].get("input", "")}}]})]
            return []  # reasoning and citations have no place in a chat chunk
        if kind == "messageStop":
            self.finished = True
            return [self._chunk({}, STOP_REASONS.get(event.get("stopReason") or "end_turn", "stop"))]
        if kind == "metadata":
            self.stopped = True
            return [self.usage_chunk(event.get("usage") or {})] if self.include_usage else []
        return []
