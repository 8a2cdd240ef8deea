"""Pure translation for the Messages door, inbound: an Anthropic Messages request validated and made an internal
chat body (messages_output has the way back; backends/anthropic_wire the internal form to an Anthropic upstream).
Errors name the field as Anthropic does (`messages.1.content.0.type: ...`)."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from turnout.doors.chat_schema import TURNOUT_FIELDS
from turnout.errors import InvalidRequestError
from turnout.jsonutil import dumps_str
from turnout.plugins.semantic_cache import CacheRequest

M = TypeVar("M", bound=BaseModel)

#: extended thinking's budget_tokens -> chat's reasoning_effort: under 4096 low, under 16384 medium, else high
EFFORT_BUDGETS = ((4096, "low"), (16384, "medium"))
#: Anthropic's output_config.effort -> reasoning_effort (chat has nothing above high)
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})  # the chat form has no place for them
TOOL_ERROR_PREFIX = "[tool error] "  # a tool_result with is_error: true; the chat form has no flag for it


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown fields go upstream untouched when passed natively


class Metadata(Open):
    user_id: str | None = None


class CountTokensRequest(Open):
    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    max_tokens: int | None = Field(None, ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)  # no chat equivalent: dropped when translated
    metadata: Metadata | None = None
    stream: StrictBool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    cache: StrictBool | CacheRequest | None = None  # turnout's own (semantic cache controls): never forwarded


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)  # required, as Anthropic's API has it


class TextBlock(Open):
    type: Literal["text"]
    text: str


class ImageBlock(Open):
    type: Literal["image"]
    source: dict[str, Any]


class Base64Source(Open):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class URLSource(Open):
    type: Literal["url"]
    url: str = Field(pattern=r"^https?://")


class ToolUseBlock(Open):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


class ToolResultBlock(Open):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[dict[str, Any]] = ""
    is_error: StrictBool = False


class DocumentBlock(Open):
    type: Literal["document"]
    source: dict[str, Any]


class ToolSpec(Open):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]
    strict: StrictBool | None = None


class ToolChoice(Open):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(None, min_length=1)
    disable_parallel_tool_use: StrictBool | None = None


class ThinkingConfig(Open):
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: int | None = Field(None, ge=1)


# ----- errors ---------------------------------------------------------------------------------------------
def invalid(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: {message}", param=param)


def _is_branch(part: Any) -> bool:
    """pydantic's label for a union branch (str, list[...], CacheRequest), not a field of the request."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part or part[:1].isupper())


def _parse(model: type[M], value: Any, path: str = "") -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        err = max(exc.errors(include_url=False), key=lambda e: len(e["loc"]))  # the most specific
        param = ".".join([path] * bool(path) + [str(p) for p in err["loc"] if not _is_branch(p)])
        message = "Field required" if err["type"] == "missing" else err["msg"]
        raise (invalid(param, message) if param else InvalidRequestError(message)) from None


def _plain_text(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)


def _kind(block: Any, path: str) -> str:
    if not isinstance(block, dict):
        raise invalid(path, "Input should be an object")
    kind = block.get("type")
    if not isinstance(kind, str) or not kind:
        raise invalid(f"{path}.type", "Field required")
    return kind


def _unsupported(path: str, kind: str, where: str = "") -> InvalidRequestError:
    return invalid(f"{path}.type", f"'{kind[:60]}' blocks are not supported{where} by turnout's translation "
                                   "of the Messages API")


# ----- request --------------------------------------------------------------------------------------------
def check_request(body: Any, *, counting: bool = False) -> CountTokensRequest:
    """The request validated (max_tokens required unless it is a count_tokens body); the first bad field named."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return _parse(CountTokensRequest if counting else MessagesRequest, body)


def to_chat(body: dict[str, Any], request: CountTokensRequest) -> dict[str, Any]:
    """A validated Messages request (`body` as sent, `request` its checked form) as an internal chat body."""
    messages = _system(request.system)
    for i, message in enumerate(request.messages):
        messages += _message(message, f"messages.{i}")
    out: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.max_tokens is not None:
        out["max_tokens"] = request.max_tokens
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if request.stop_sequences:
        out["stop"] = list(request.stop_sequences)
    if request.metadata is not None and request.metadata.user_id:
        out["user"] = request.metadata.user_id
    if request.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # so message_delta can carry the real output count
    if request.tools:
        out["tools"] = [_tool(tool, f"tools.{i}") for i, tool in enumerate(request.tools)]
    if request.tool_choice is not None:
        choice = _tool_choice(request.tool_choice)
        if request.tools:  # chat refuses a tool_choice without tools; without them it means nothing anyway
            out.update(choice)
    if (effort := _effort(request.thinking, request.output_config)) is not None:
        out["reasoning_effort"] = effort
    out.update({name: body[name] for name in TURNOUT_FIELDS if name in body})
    return out


def _system(system: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    texts = [_parse(TextBlock, block, f"system.{i}").text for i, block in enumerate(system or ())]
    return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []


def _message(message: dict[str, Any], path: str) -> list[dict[str, Any]]:
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise invalid(f"{path}.role", "Input should be 'user' or 'assistant'")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise invalid(f"{path}.content", "Field required" if content is None else
                      "Input should be a string or a list of content blocks")
    return _user(content, path) if role == "user" else _assistant(content, path)


def _user(blocks: list[Any], path: str) -> list[dict[str, Any]]:
    """tool_result blocks become `tool` messages (first: they answer the assistant turn before), the rest one
    user message."""
    results, parts = [], []
    for j, block in enumerate(blocks):
        if _plain_text(block):  # what TextBlock accepts, without a model and a path per block (8,192: 20 -> 5 ms)
            parts.append({"type": "text", "text": block["text"]})
            continue
        where = f"{path}.content.{j}"
        kind = _kind(block, where)
        if kind == "text":
            parts.append({"type": "text", "text": _parse(TextBlock, block, where).text})
        elif kind == "image":
            parts.append(_image(block, where))
        elif kind == "document":
            parts.append(_document(block, where))
        elif kind == "tool_result":
            results.append(_tool_result(block, where))
        elif kind not in DROPPED_BLOCKS:
            raise _unsupported(where, kind, " in user turns")
    return results + ([{"role": "user", "content": parts}] if parts or not results else [])


def _assistant(blocks: list[Any], path: str) -> list[dict[str, Any]]:
    texts, calls = [], []
    for j, block in enumerate(blocks):
        if _plain_text(block):
            texts.append(block["text"])
            continue
        where = f"{path}.content.{j}"
        kind = _kind(block, where)
        if kind == "text":
            texts.append(_parse(TextBlock, block, where).text)
        elif kind == "tool_use":
            use = _parse(ToolUseBlock, block, where)
            calls.append({"id": use.id, "type": "function",
                          "function": {"name": use.name, "arguments": dumps_str(use.input)}})
        elif kind not in DROPPED_BLOCKS:
            raise _unsupported(where, kind, " in assistant turns")
    if not texts and not calls:
        return []  # only thinking: nothing of it survives in the chat form
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _image(block: dict[str, Any], path: str) -> dict[str, Any]:
    source = _parse(ImageBlock, block, path).source
    kind = source.get("type")
    if kind == "base64":
        b64 = _parse(Base64Source, source, f"{path}.source")
        return {"type": "image_url", "image_url": {"url": f"data:{b64.media_type};base64,{b64.data}"}}
    if kind == "url":
        return {"type": "image_url", "image_url": {"url": _parse(URLSource, source, f"{path}.source").url}}
    raise invalid(f"{path}.source.type", "only 'base64' and 'url' image sources are translated")


def _document(block: dict[str, Any], path: str) -> dict[str, Any]:
    """A plain-text document becomes a text part; a PDF or a file cannot be said in the chat form."""
    source = _parse(DocumentBlock, block, path).source
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        text = source["data"]
    elif source.get("type") == "content" and isinstance(source.get("content"), (str, list)):
        inner = source["content"]
        text = inner if isinstance(inner, str) else "\n".join(
            _parse(TextBlock, b, f"{path}.source.content.{k}").text for k, b in enumerate(inner))
    else:
        raise invalid(f"{path}.source.type", "only plain-text documents (source type 'text' or 'content') are "
                                             "translated; PDF, URL and file documents are not")
    title = block.get("title")
    return {"type": "text", "text": f"{title}\n\n{text}" if isinstance(title, str) and title else text}


def _tool_result(block: dict[str, Any], path: str) -> dict[str, Any]:
    result = _parse(ToolResultBlock, block, path)
    if isinstance(result.content, str):
        text = result.content
    else:
        texts = []
        for k, inner in enumerate(result.content):
            if _plain_text(inner):
                texts.append(inner["text"])
                continue
            where = f"{path}.content.{k}"
            if _kind(inner, where) != "text":
                raise invalid(f"{where}.type", "only text blocks are translated inside a tool_result")
            texts.append(_parse(TextBlock, inner, where).text)
        text = "\n".join(texts)
    return {"role": "tool", "tool_call_id": result.tool_use_id,
            "content": TOOL_ERROR_PREFIX + text if result.is_error else text}


def _tool(tool: dict[str, Any], path: str) -> dict[str, Any]:
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise invalid(f"{path}.type", f"server tool '{str(kind)[:60]}' is not supported: only custom tools "
                                      "(name, description, input_schema) are translated")
    spec = _parse(ToolSpec, tool, path)
    function: dict[str, Any] = {"name": spec.name, "parameters": spec.input_schema}
    if spec.description:
        function["description"] = spec.description
    if spec.strict is not None:
        function["strict"] = spec.strict
    return {"type": "function", "function": function}


def _tool_choice(choice: dict[str, Any]) -> dict[str, Any]:
    spec = _parse(ToolChoice, choice, "tool_choice")
    if spec.type == "tool":
        if spec.name is None:
            raise invalid("tool_choice.name", "Field required")
        out: dict[str, Any] = {"tool_choice": {"type": "function", "function": {"name": spec.name}}}
    else:
        out = {"tool_choice": {"auto": "auto", "any": "required", "none": "none"}[spec.type]}
    if spec.disable_parallel_tool_use and spec.type != "none":
        out["parallel_tool_calls"] = False
    return out


def _effort(thinking: dict[str, Any] | None, output_config: dict[str, Any] | None) -> str | None:
    """output_config.effort when given, else extended thinking's budget (see EFFORT_BUDGETS); adaptive or
    disabled thinking leave the model's default."""
    effort = (output_config or {}).get("effort")
    if effort is not None:
        if effort not in EFFORTS:
            raise invalid("output_config.effort", f"Input should be one of {', '.join(map(repr, EFFORTS))}")
        return EFFORTS[effort]
    if thinking is None:
        return None
    spec = _parse(ThinkingConfig, thinking, "thinking")
    if spec.type != "enabled":
        return None
    if spec.budget_tokens is None:
        raise invalid("thinking.budget_tokens", "Field required")
    return next((name for limit, name in EFFORT_BUDGETS if spec.budget_tokens < limit), "high")
