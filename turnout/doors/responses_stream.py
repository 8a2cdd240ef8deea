"""The Responses API's streamed answer: semantic events (`event: <type>` / `data: <json>`, each with a
sequence_number) made from internal chat chunks, or relayed from an upstream that speaks the Responses API.
Either way the finished response is stored when the stream ends (Framer.end is awaited before the last write),
and a failure mid-stream ends it with `response.failed`, which the SDKs read as the stream's failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from turnout.doors.base import Framer
from turnout.doors.responses_output import (
    Turn,
    adopt,
    call_item,
    envelope,
    incomplete_reason,
    message_item,
    new_id,
    response_usage,
)
from turnout.errors import TurnoutError
from turnout.jsonutil import dumps

#: stores a finished response; says whether it was stored
Save = Callable[[dict[str, Any]], Awaitable[bool]]


def event(data: dict[str, Any]) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + dumps(data) + b"\n\n"


def comment(trailer: str) -> bytes:
    return b": " + trailer.encode() + b"\n\n"  # SSE clients skip comments; scripts can read the cost


def failed(turn: Turn, exc: TurnoutError, secrets: tuple[str, ...], output: list[dict[str, Any]],
           model: str) -> dict[str, Any]:
    message = exc.to_dict(secrets)["error"]["message"]  # scrubbed: an upstream's words may quote its key
    return envelope(turn, output=output, status="failed", model=model, stored=False,
                    error={"code": "rate_limit_exceeded" if exc.status == 429 else "server_error",
                           "message": message})


class ResponsesFramer(Framer):
    """Internal chat chunks as Responses events: a message item for the text, a function_call item for each
    tool call, then response.completed (response.incomplete when the length limit cut it) with the usage."""

    def __init__(self, turn: Turn, save: Save) -> None:
        self.turn, self.save = turn, save
        self.response_id = turn.id
        self.seq = 0
        self.output: list[dict[str, Any]] = []  # items in output order, as they will be when done
        self.text: dict[str, Any] | None = None  # the open message item
        self.pieces: list[str] = []  # its text so far, joined when it closes (not grown in place: that is quadratic)
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool call index → its function_call item
        self.arguments: dict[int, list[str]] = {}  # its arguments so far, joined when it closes (as the text)
        self.position: dict[int, int] = {}  # id(item) → its output_index (list.index per delta was quadratic too)
        self.usage: dict[str, Any] | None = None
        self.finish: Any = None
        self.model = turn.request.model
        self.started = False

    def emit(self, data: dict[str, Any]) -> bytes:
        data["sequence_number"], self.seq = self.seq, self.seq + 1
        return event(data)

    def frames(self, batch: list[str], parsed: list[Any]) -> bytes:
        out: list[bytes] = []
        if not self.started:
            self.started = True
            snapshot = envelope(self.turn, output=[], status="in_progress", model=self.model)
            out += [self.emit({"type": "response.created", "response": snapshot}),
                    self.emit({"type": "response.in_progress", "response": snapshot})]
        for data in parsed:
            if isinstance(data, dict):
                out += self.chunk(data)
        return b"".join(out)

    def chunk(self, data: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if isinstance(data.get("model"), str):
            self.model = data["model"]
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        choices = data.get("choices") or ()
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        if choice.get("index", 0) != 0:
            return out  # the Responses API has one answer; `n` is never asked for
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        if isinstance(delta.get("content"), str) and delta["content"]:
            out += self.text_delta(delta["content"])
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out += self.call_delta(call)
        if choice.get("finish_reason"):
            self.finish = choice["finish_reason"]
        return out

    def text_delta(self, text: str) -> list[bytes]:
        out = []
        if self.text is None:
            self.text = message_item("", "in_progress")
            self.output.append(self.text)
            index = self.position[id(self.text)] = len(self.output) - 1
            item = {**self.text, "content": []}
            out.append(self.emit({"type": "response.output_item.added", "output_index": index, "item": item}))
            out.append(self.emit({"type": "response.content_part.added", "item_id": self.text["id"],
                                  "output_index": index, "content_index": 0,
                                  "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}))
        self.pieces.append(text)
        out.append(self.emit({"type": "response.output_text.delta", "item_id": self.text["id"],
                              "output_index": self.position[id(self.text)], "content_index": 0, "delta": text,
                              "logprobs": []}))
        return out

    def call_delta(self, call: dict[str, Any]) -> list[bytes]:
        out = []
        index = call.get("index", 0)
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        item = self.calls.get(index)
        if item is None:
            out += self.close_text()
            item = self.calls[index] = call_item(str(call.get("id") or new_id("call")),
                                                 str(function.get("name") or ""), "", "in_progress")
            self.output.append(item)
            self.position[id(item)] = len(self.output) - 1
            self.arguments[index] = []
            out.append(self.emit({"type": "response.output_item.added", "output_index": len(self.output) - 1,
                                  "item": dict(item)}))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self.arguments[index].append(arguments)  # item["arguments"] += … copied the whole string each time
            out.append(self.emit({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                                  "output_index": self.position[id(item)], "delta": arguments}))
        return out

    def close_text(self) -> list[bytes]:
        item, self.text = self.text, None
        if item is None:
            return []
        index, part = self.position[id(item)], item["content"][0]
        part["text"], self.pieces = "".join(self.pieces), []
        item["status"] = "incomplete" if incomplete_reason(self.finish) else "completed"
        return [self.emit({"type": "response.output_text.done", "item_id": item["id"], "output_index": index,
                           "content_index": 0, "text": part["text"], "logprobs": []}),
                self.emit({"type": "response.content_part.done", "item_id": item["id"], "output_index": index,
                           "content_index": 0, "part": part}),
                self.emit({"type": "response.output_item.done", "output_index": index, "item": item})]

    def close_calls(self) -> list[bytes]:
        out = []
        self.join_arguments()
        for item in self.calls.values():
            index = self.position[id(item)]
            item["status"] = "completed"
            out += [self.emit({"type": "response.function_call_arguments.done", "item_id": item["id"],
                               "output_index": index, "arguments": item["arguments"]}),
                    self.emit({"type": "response.output_item.done", "output_index": index, "item": item})]
        self.calls = {}
        return out

    def join_arguments(self) -> None:
        for index, item in self.calls.items():
            item["arguments"] = "".join(self.arguments.pop(index, ())) or item["arguments"]

    async def end(self, trailer: str) -> bytes:
        out = self.close_text() + self.close_calls()
        reason = incomplete_reason(self.finish)
        response = envelope(self.turn, output=self.output, status="incomplete" if reason else "completed",
                            model=self.model, usage=response_usage(self.usage), incomplete=reason)
        if not await self.save(response):
            response["store"] = False
        out.append(self.emit({"type": "response.incomplete" if reason else "response.completed",
                              "response": response}))
        return b"".join(out) + comment(trailer)

    def error(self, exc: TurnoutError, secrets: tuple[str, ...]) -> bytes:
        if self.text is not None:  # the text that was sent before the failure
            self.text["content"][0]["text"] = "".join(self.pieces)
        self.join_arguments()  # and the arguments
        return self.emit({"type": "response.failed", "response": failed(self.turn, exc, secrets, self.output,
                                                                         self.model)})


#: events whose `response` is the whole response object: it gets this server's id
_WHOLE = frozenset({"response.created", "response.in_progress", "response.queued", "response.completed",
                    "response.incomplete", "response.failed"})


class RelayFramer(Framer):
    """An upstream's own Responses events, passed on with this server's response id; the finished response it
    reports is the one stored."""

    def __init__(self, turn: Turn, save: Save) -> None:
        self.turn, self.save = turn, save
        self.final: dict[str, Any] | None = None
        self.seq = 0
        self.model = turn.request.model

    def frames(self, batch: list[str], parsed: list[Any]) -> bytes:
        out = []
        for data in parsed:
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                continue
            if data["type"] in _WHOLE and isinstance(data.get("response"), dict):
                data["response"] = adopt(self.turn, data["response"])
                self.model = str(data["response"].get("model") or self.model)
                if data["type"] in ("response.completed", "response.incomplete"):
                    self.final = data["response"]
            if isinstance(data.get("sequence_number"), int):
                self.seq = data["sequence_number"] + 1
            out.append(event(data))
        return b"".join(out)

    async def end(self, trailer: str) -> bytes:
        if self.final is not None:
            await self.save(self.final)  # its events are sent: a lost write cannot be told to the client now
        return comment(trailer)

    def error(self, exc: TurnoutError, secrets: tuple[str, ...]) -> bytes:
        data = {"type": "response.failed", "sequence_number": self.seq,
                "response": failed(self.turn, exc, secrets, [], self.model)}
        return event(data)
