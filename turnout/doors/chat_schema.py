"""The request bodies turnout accepts, validated strictly enough to name the bad field, loosely enough to
pass every unknown field through to the upstream untouched."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, Tag, TypeAdapter, ValidationError

from turnout.config.issues import format_path
from turnout.errors import InvalidRequestError
from turnout.plugins.semantic_cache import CacheRequest


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(Open):
    type: Literal["text"]
    text: str


class ContentPart(Open):
    type: str = Field(min_length=1)


Part = Annotated[
    Union[Annotated[TextPart, Tag("text")], Annotated[ContentPart, Tag("other")]],
    Discriminator(lambda v: "text" if (v.get("type") if isinstance(v, dict) else getattr(v, "type", None)) == "text"
                  else "other"),
]


class Message(Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(Open):
    include_usage: StrictBool | None = None


class ChatCompletionRequest(Open):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=128)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    cache: StrictBool | CacheRequest | None = None  # turnout's own: never forwarded


def _shallow() -> type[BaseModel]:
    """The request model with each message's parts left to _first_bad_part; its classes keep the names the
    errors quote ("an instance of Message")."""
    class Message(globals()["Message"]):  # type: ignore[misc, valid-type]
        content: str | list[Any] | None = None

    class ChatCompletionRequest(globals()["ChatCompletionRequest"]):  # type: ignore[misc, valid-type]
        messages: list[Message] = Field(min_length=1)  # type: ignore[valid-type]

    return ChatCompletionRequest


# ChatCompletionRequest documents the body (OpenAPI); requests are validated against _shallow(), the same
# model with each message's parts left to _first_bad_part: pydantic spent ~10 µs a part (a model and a
# discriminator call each), which made 8 MiB of tiny parts seconds on the event loop and 8 MiB of bad ones (a
# list of 4 million 1s, one error per branch per item) 35 s
_adapter = TypeAdapter(_shallow())
_part = TypeAdapter(Part)

_SCALARS = frozenset({"str", "bool", "int", "float"})  # pydantic's labels for a union's branches

#: request fields that are turnout's, not the model's: taken out of the body before anything is forwarded
TURNOUT_FIELDS = ("cache",)


def check_chat_request(body: Any) -> None:
    """Raise InvalidRequestError naming the first bad field; the body itself is forwarded unchanged."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    if _plainly_valid(body):
        return
    err = _part_error(body.get("messages"))  # a bad part's error is the most specific the body can have
    if err is None:
        try:
            _adapter.validate_python(_declared(body))
            return
        except ValidationError as exc:
            err = max(exc.errors(include_url=False), key=lambda e: len(e["loc"]))  # the most specific
    loc: list[object] = []
    previous: object = None
    for part in err["loc"]:  # drop pydantic's union-branch labels, keep the field path
        is_tag = part in ("text", "other") and isinstance(previous, int) and "content" in loc
        previous = part
        if is_tag or (isinstance(part, str) and (part in _SCALARS or part[:1].isupper()  # a branch: CacheRequest
                                                 or part.startswith(("list[", "tagged-union[")))):
            continue
        loc.append(part)
    param = format_path(loc)
    message = "required but missing" if err["type"] == "missing" else err["msg"]
    raise InvalidRequestError(f"{param}: {message}" if param else message, param=param or None) from None


_FIELDS = tuple(ChatCompletionRequest.model_fields)
_MESSAGE_FIELDS = tuple(Message.model_fields)
_ROLES = frozenset(get_args(Message.model_fields["role"].annotation))
# what _plainly_valid reads; any other declared field present sends the body to the model
_OTHER_FIELDS = tuple(f for f in _FIELDS if f not in ("model", "messages", "stream"))
_OTHER_MESSAGE_FIELDS = tuple(f for f in _MESSAGE_FIELDS if f not in ("role", "content", "name", "tool_call_id"))


def _plainly_valid(body: dict[str, Any]) -> bool:
    """True only for a body the model accepts, of the commonest shape: a non-empty string model, a non-empty list
    of messages that each have a known role and string (or no) content, name and tool_call_id, `stream` a bool or
    absent, and none of the other declared fields. Checking that costs a tenth of pydantic's validation (about
    0.3 µs against 3.5 µs a request); any other body, valid or not, is left to the model, which names the error.
    tests/doors/test_chat_schema.py holds it to the model's verdict."""
    model, messages, stream = body.get("model"), body.get("messages"), body.get("stream")
    if type(model) is not str or not model or type(messages) is not list or not messages or \
            not (stream is None or stream is True or stream is False):
        return False
    for name in _OTHER_FIELDS:
        if name in body:
            return False
    for message in messages:
        if type(message) is not dict:
            return False
        role, content = message.get("role"), message.get("content")
        if type(role) is not str or role not in _ROLES or (content is not None and type(content) is not str):
            return False
        for name in ("name", "tool_call_id"):
            value = message.get(name)
            if value is not None and type(value) is not str:
                return False
        for name in _OTHER_MESSAGE_FIELDS:
            if message.get(name) is not None:
                return False
    return True


def _declared(body: dict[str, Any]) -> dict[str, Any]:
    """The body and its messages with their declared fields only: the models allow any other field (it goes
    upstream untouched) and never fail on one, so leaving them out changes no error, while pydantic copied each
    (700,000 extra keys: 0.3 s)."""
    out = {k: body[k] for k in _FIELDS if k in body}
    if isinstance(out.get("messages"), list):
        out["messages"] = [{k: m[k] for k in _MESSAGE_FIELDS if k in m} if isinstance(m, dict) else m
                           for m in out["messages"]]
    return out


def _part_error(messages: Any) -> Any:
    """The error of the part _first_bad_part finds, as the whole body's validation reports it, or None."""
    where = _first_bad_part(messages)
    if where is None:
        return None
    i, j = where
    try:
        _part.validate_python(messages[i]["content"][j])
    except ValidationError as exc:
        err = max(exc.errors(include_url=False), key=lambda e: len(e["loc"]))
        return {**err, "loc": ("messages", i, "content", "list[Part]", j, *err["loc"])}
    return None  # unreachable: _first_bad_part and Part agree on what is bad


def _first_bad_part(messages: Any) -> tuple[int, int] | None:
    """(message, part) of the part whose error the whole body's validation would name: the first part with a bad
    field (its error is the most specific of the body's), else the first part that is not an object. One cheap
    test a part: a text part needs a string `text`, any other a non-empty string `type`."""
    not_object = None
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                not_object = not_object or (i, j)
                continue
            kind = part.get("type")
            if kind == "text" and not isinstance(part.get("text"), str) or \
                    kind != "text" and not (isinstance(kind, str) and kind):
                return i, j
    return not_object
