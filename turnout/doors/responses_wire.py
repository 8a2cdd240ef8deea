"""OpenAI's Responses API request in the internal (chat completions) form, pure functions. Every refusal is an
InvalidRequestError whose `param` names the Responses field (`input[2].content[0].file_id`), never a chat one.

What has no chat equivalent is refused by name rather than dropped: built-in tools (web_search, file_search,
...), file inputs, background mode, server-side prompts and conversations. `reasoning` items are the model's
own and are kept out of the chat form (a chat model cannot take them back)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
)

from turnout.config.issues import format_path
from turnout.errors import InvalidRequestError


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextConfig(Open):
    format: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(Open):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None


class ResponsesRequest(Open):
    """The top-level fields, typed; `input`, `tools` and `tool_choice` are checked item by item below, where
    an error can name the exact part."""

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    parallel_tool_calls: StrictBool | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)
    user: str | None = None
    stream: StrictBool | None = None
    store: StrictBool | None = None
    previous_response_id: str | None = Field(None, min_length=1)
    background: StrictBool | None = None


_adapter = TypeAdapter(ResponsesRequest)
_BRANCHES = frozenset({"str", "bool", "int", "float", "list[dict[str,any]]", "dict[str,any]"})
#: fields that have no meaning behind a chat model; refused when set, not silently ignored
_UNSUPPORTED = {"background": "background mode", "prompt": "server-side prompts", "conversation": "conversations"}
#: chat fields that mean the same and are spelled the same
_SAME = ("temperature", "top_p", "parallel_tool_calls", "user", "service_tier", "safety_identifier",
         "prompt_cache_key", "top_logprobs")


def bad(param: str, message: str, code: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: {message}", param=param, **({"code": code} if code else {}))


def check_request(body: Any) -> ResponsesRequest:
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    try:
        request = _adapter.validate_python(body)
    except ValidationError as exc:
        err = max(exc.errors(include_url=False), key=lambda e: len(e["loc"]))  # the most specific
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.replace(" ", "").lower() in _BRANCHES)]
        param = format_path(loc)
        message = "required but missing" if err["type"] == "missing" else err["msg"]
        raise InvalidRequestError(f"{param}: {message}" if param else message, param=param or None) from None
    for name, what in _UNSUPPORTED.items():
        if body.get(name):
            raise bad(name, f"not supported by this server ({what})", "unsupported_parameter")
    return request


# ----- input -------------------------------------------------------------------------------------------------
def input_items(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`input` as a list of items (a string is one user message)."""
    return [{"role": "user", "content": value}] if isinstance(value, str) else list(value)


def to_messages(items: list[dict[str, Any]], where: str = "input") -> list[dict[str, Any]]:
    """Responses items as chat messages: function_call items join the assistant message before them as its
    tool_calls, function_call_output items become tool messages, reasoning items are left out."""
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        path = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise bad(path, "an input item must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, path))
        elif kind == "function_call":
            call = {"id": _text(item, "call_id", path), "type": "function",
                    "function": {"name": _text(item, "name", path), "arguments": _text(item, "arguments", path)}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": _text(item, "call_id", path),
                             "content": output if isinstance(output, str) else
                             _joined(_parts(output, f"{path}.output", "user"))})
        elif kind == "reasoning":
            continue
        elif kind is None:
            raise bad(f"{path}.type", "required but missing (or give `role` for a message)")
        else:
            raise bad(f"{path}.type", f"input items of type '{kind}' are not supported by this server",
                      "unsupported_input_item")
    return messages


def _text(item: dict[str, Any], field: str, path: str) -> str:
    value = item.get(field)
    if not isinstance(value, str) or (field != "arguments" and not value):
        raise bad(f"{path}.{field}", "required: a string" if value is None else "must be a non-empty string")
    return value


def _message(item: dict[str, Any], path: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise bad(f"{path}.role", "required: one of user, system, developer, assistant" if role is None
                  else f"'{role}' is not one of user, system, developer, assistant")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = _parts(content, f"{path}.content", role)
    # chat takes text only from an assistant, system or developer message: their parts are joined
    return {"role": role, "content": parts if role == "user" else _joined(parts)}


def _joined(parts: list[dict[str, Any]]) -> str:
    return "".join(p.get("text", "") for p in parts)


def _parts(content: Any, path: str, role: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        raise bad(path, "required: a string or a list of content parts")
    parts = []
    for j, part in enumerate(content):  # a part's path is only written when it is refused: 8,192 parts cost 2x
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            if not isinstance(part.get("text"), str):
                raise bad(f"{path}[{j}].text", "required: a string")
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal") or "")})
        elif kind == "input_image":
            if part.get("file_id"):
                raise bad(f"{path}[{j}].file_id", "file ids are not supported by this server; send the image as "
                          "image_url (a URL or a data: URL)", "unsupported_parameter")
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise bad(f"{path}[{j}].image_url", "required: a URL or a data: URL")
            if role != "user":
                raise bad(f"{path}[{j}]", f"images are only taken in user messages, not {role} ones")
            image = {"url": url, **({"detail": part["detail"]} if part.get("detail") else {})}
            parts.append({"type": "image_url", "image_url": image})
        elif kind is None:
            raise bad(f"{path}[{j}].type", "required: a content part is an object with a type")
        else:
            raise bad(f"{path}[{j}].type", f"content parts of type '{kind}' are not supported by this server",
                      "unsupported_content_part")
    return parts


# ----- tools, formats, the rest ------------------------------------------------------------------------------
def to_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses' flat function tools in chat's nested shape; any built-in tool is refused by name."""
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind != "function":
            raise bad(f"tools[{i}].type", f"'{kind}' tools are not supported by this server; only function tools",
                      "unsupported_tool")
        function = {"name": _text(tool, "name", f"tools[{i}]")}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def to_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad("tool_choice", f"'{choice}' is not one of auto, none, required")
        return choice
    if choice.get("type") == "function":
        return {"type": "function", "function": {"name": _text(choice, "name", "tool_choice")}}
    raise bad("tool_choice.type", f"'{choice.get('type')}' is not supported by this server; only function",
              "unsupported_tool_choice")


def to_response_format(fmt: dict[str, Any]) -> dict[str, Any] | None:
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise bad("text.format.schema", "required: a JSON schema object")
        spec = {"name": _text(fmt, "name", "text.format"), "schema": schema}
        for key in ("description", "strict"):
            if fmt.get(key) is not None:
                spec[key] = fmt[key]
        return {"type": "json_schema", "json_schema": spec}
    raise bad("text.format.type", f"'{kind}' is not one of text, json_object, json_schema")


def to_chat(request: ResponsesRequest, body: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """The internal chat body: instructions first, then the stored conversation (`history`, items), then this
    request's input. Of the history, what a chat model cannot take (a pass-through upstream's web search calls,
    its file inputs) is left out: it is the record of a past turn, whose answer the history keeps."""
    messages = [{"role": "system", "content": request.instructions}] if request.instructions else []
    messages += to_messages(routable_items(history), "previous_response_id")
    current = to_messages(input_items(request.input))
    if not current and not history:
        raise bad("input", "at least one input item is needed")
    chat: dict[str, Any] = {"model": request.model, "messages": messages + current}
    for name in _SAME:
        if body.get(name) is not None:
            chat[name] = body[name]
    if request.max_output_tokens is not None:
        chat["max_completion_tokens"] = request.max_output_tokens
    if request.tools:
        chat["tools"] = to_tools(request.tools)
    if request.tool_choice is not None:
        chat["tool_choice"] = to_tool_choice(request.tool_choice)
    if request.text is not None:
        if request.text.format is not None and (fmt := to_response_format(request.text.format)) is not None:
            chat["response_format"] = fmt
        if request.text.verbosity is not None:
            chat["verbosity"] = request.text.verbosity
    if request.reasoning is not None and request.reasoning.effort is not None:
        chat["reasoning_effort"] = request.reasoning.effort
    if request.stream:
        # usage must reach the end of the stream: response.completed carries it
        chat["stream"], chat["stream_options"] = True, {"include_usage": True}
    if isinstance(body.get("cache"), (bool, dict)):
        chat["cache"] = body["cache"]  # turnout's own control, as on chat
    return chat


# ----- what a pass-through request is routed on -------------------------------------------------------------
_ITEMS = frozenset({"message", "function_call", "function_call_output", "reasoning"})
_PARTS = frozenset({"input_text", "output_text", "text", "refusal"})


def routable(body: dict[str, Any]) -> dict[str, Any]:
    """The request without what only an upstream speaking the Responses API can take (built-in tools, file
    inputs, other item types): what its route is chosen on. Such a request is refused after all unless its
    route passes it through."""
    out = dict(body)
    if isinstance(body.get("tools"), list):
        out["tools"] = [t for t in body["tools"] if isinstance(t, dict) and t.get("type") == "function"] or None
    if isinstance(body.get("tool_choice"), dict) and body["tool_choice"].get("type") != "function":
        out.pop("tool_choice")
    if isinstance(body.get("input"), list):
        out["input"] = routable_items(body["input"])
    return out


def routable_items(items: list[Any]) -> list[Any]:
    out = []
    for item in items:
        if not isinstance(item, dict) or item.get("type", "message" if "role" in item else None) not in _ITEMS:
            continue
        for key in ("content", "output"):
            if isinstance(item.get(key), list):
                item = {**item, key: [p for p in item[key] if isinstance(p, dict) and (
                    p.get("type") in _PARTS or (p.get("type") == "input_image" and p.get("image_url")
                                                and not p.get("file_id")))]}
        out.append(item)
    return out
