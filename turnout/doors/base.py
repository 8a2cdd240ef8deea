"""The Door interface and its registry. A door is one inbound protocol (OpenAI chat completions, the Responses
API, Anthropic's Messages API, ...): it translates that protocol's requests into the internal form (a chat
completions body) and the internal answers back, whole or streamed, and shapes errors the way that protocol's
clients expect. Everything between — authentication, limits, routing, plugins, backends, cost — is the same for
every door and is driven by the server's Exchange (server/exchange.py), which calls the door at three points."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from turnout.errors import InvalidRequestError, TurnoutError
from turnout.registry import Registry

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from turnout.context import Caller, RoutingContext
    from turnout.pipeline import Route, Router

#: one internal stream chunk: the JSON text of an OpenAI `chat.completion.chunk`
Chunk = str


class Call(Protocol):
    """What a door may read of the request it translates (the server's Exchange provides it)."""

    router: Router
    headers: dict[str, str]  # the request's, names lower-cased
    caller: Caller  # who is asking (the tenant: stored state is kept per key)
    ctx: RoutingContext | None  # set once the request is translated
    route: Route | None  # set once it is routed
    state: dict[str, Any]  # the door's own notes on this request (the body as it came, ...), empty at first


class Framer(abc.ABC):
    """Turns a stream of internal chunks into this protocol's stream, one write per batch of chunks."""

    media_type: ClassVar[str] = "text/event-stream"
    #: the id the client sees for this answer, when the framer makes it (else it is read from the first event)
    response_id: str | None = None

    @abc.abstractmethod
    def frames(self, batch: list[Chunk], parsed: list[Any]) -> bytes:
        """The bytes to send for a batch of internal chunks (may be empty). `parsed[i]` is `batch[i]` read as JSON
        (None when it is not JSON), read once for the accounting: a framer that needs the values uses these."""

    @abc.abstractmethod
    async def end(self, trailer: str) -> bytes:
        """The bytes that close a stream that finished; `trailer` is turnout's cost comment, for doors whose
        framing can carry one."""

    @abc.abstractmethod
    def error(self, exc: TurnoutError, secrets: tuple[str, ...]) -> bytes:
        """The bytes that end a stream that failed after it started: this protocol's error event."""


class Door(abc.ABC):
    name: ClassVar[str]
    #: the POST endpoints that take this protocol's requests
    paths: ClassVar[tuple[str, ...]]
    #: OpenAPI requestBody for those endpoints, if the door documents one
    openapi: ClassVar[dict[str, Any] | None] = None

    @abc.abstractmethod
    async def inbound(self, body: Any, call: Call) -> dict[str, Any]:
        """The request as an internal chat completions body. Raise InvalidRequestError naming the bad field in
        this protocol's terms (its `param`), never a KeyError or a TypeError."""

    @abc.abstractmethod
    async def outbound(self, completion: dict[str, Any], call: Call) -> dict[str, Any]:
        """An internal chat completion as this protocol's response body."""

    @abc.abstractmethod
    def framer(self, call: Call) -> Framer:
        """A new Framer for one streamed answer."""

    async def route(self, call: Call) -> Route:
        """Where the request goes: by default the Router's decisions, to a chat model. A door whose requests only
        some models serve (embeddings) overrides this."""
        assert call.ctx is not None
        route = await call.router.route(call.ctx)
        if call.router.config.models[route.model].embeddings:
            raise InvalidRequestError(f"model: '{route.model}' is an embeddings model; send it POST /v1/embeddings",
                                      param="model", code="model_not_chat")
        return route

    async def complete(self, call: Call) -> dict[str, Any]:
        """The answer, by default the Router's (the plugins, then the backend chain), in the internal form. A door
        that passes its own protocol through to an upstream that speaks it overrides this (and `tally`)."""
        assert call.ctx is not None and call.route is not None
        return await call.router.complete(call.ctx, call.route)

    async def stream(self, call: Call) -> AsyncIterator[list[Chunk]]:
        """The streamed answer, by default the Router's: batches of internal chunks for this door's Framer."""
        assert call.ctx is not None and call.route is not None
        return await call.router.stream(call.ctx, call.route)

    def tally(self, data: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
        """What an answer, or one streamed chunk, used: its usage (named as chat's: prompt_tokens,
        completion_tokens) and the characters of text it carries (the estimate when there is no usage)."""
        usage = data.get("usage")
        chars = 0
        for choice in data.get("choices") or ():
            if isinstance(choice, dict):
                part = choice.get("message") or choice.get("delta")
                content = part.get("content") if isinstance(part, dict) else None
                if isinstance(content, str):
                    chars += len(content)
        return (usage if isinstance(usage, dict) else None), chars

    def error_body(self, exc: TurnoutError, secrets: tuple[str, ...]) -> dict[str, Any]:
        """This protocol's error body; every field scrubbed (an upstream's error may have filled any)."""
        return exc.to_dict(secrets)

    def routes(self) -> list[BaseRoute]:
        """Other endpoints of this protocol that are not routed requests (stored objects, token counts)."""
        return []

    def owns(self, path: str) -> bool:
        """Whether a path belongs to this protocol (its errors then take this door's shape)."""
        return any(path == p or path.startswith(p + "/") for p in self.paths)


def check_sizes(call: Call, messages: Any, parts: int, tools: Any, *, items: str = "messages") -> None:
    """Refuse a request with more messages (`items`: the protocol's name for them), content parts or tools than
    the server takes, before anything walks them: 8 MiB of tiny parts is hundreds of thousands of them, and
    validating those one by one held the event loop for seconds. Counting costs one len() per message."""
    server = call.router.config.server
    if isinstance(messages, list) and len(messages) > server.max_messages:
        raise InvalidRequestError(f"{items}: {len(messages)} messages, more than this server takes "
                                  f"({server.max_messages})", param=items, code="too_many_messages")
    if parts > server.max_parts:
        raise InvalidRequestError(f"{items}: {parts} content parts in all, more than this server takes "
                                  f"({server.max_parts})", param=items, code="too_many_parts")
    if isinstance(tools, list) and len(tools) > server.max_tools:
        raise InvalidRequestError(f"tools: {len(tools)} tools, more than this server takes ({server.max_tools})",
                                  param="tools", code="too_many_tools")


def count_parts(messages: Any, *fields: str, nested_up_to: int = 0) -> int:
    """Content parts of a list of messages: the lengths of each message's list-valued `fields` (content, and a
    protocol's other lists of blocks) and of the `content` lists inside those blocks (a tool_result's own
    blocks), these only while the outer count is at most `nested_up_to` (the limit): a count past the limit
    costs one len() per message."""
    lists = [value for message in (messages if isinstance(messages, list) else ()) if isinstance(message, dict)
             for value in (message.get(name) for name in fields) if isinstance(value, list)]
    total = sum(map(len, lists))
    if total <= nested_up_to:
        total += sum(len(inner) for blocks in lists for block in blocks if isinstance(block, dict)
                     for inner in (block.get("content"),) if isinstance(inner, list))
    return total


doors: Registry[Door] = Registry("door", attr="name")
register = doors.register

