"""POST /v1/completions, OpenAI's legacy text completions. Routed like chat (the prompt is the one user message
signals and decisions see). An OpenAI-compatible upstream (openai, azure) gets the request as it came, `model`
replaced, at its own /completions: suffix, echo, logprobs, best_of and token-id prompts all work there. Any other
upstream is asked through chat, one call per prompt, and its answers come back as text_completion objects (echo
works; suffix, logprobs, best_of > 1 and token-id prompts are refused, naming the field). A route with plugins
(PII redaction, a jailbreak guard, the semantic cache) always goes through the Router in the chat form, so the
legacy endpoint is no way around them: one prompt per request there, as plugins see one conversation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, StrictBool, StrictInt, StrictStr, TypeAdapter

from turnout.access import allowed
from turnout.doors.base import Call, Chunk, Door, Framer, register
from turnout.doors.chat import ChatFramer
from turnout.doors.chat_schema import Open, StreamOptions
from turnout.doors.openai_inputs import TextOrTokens, check_body, check_text_or_tokens
from turnout.errors import InvalidRequestError, StreamInterruptedError
from turnout.jsonutil import dumps_str, loads

if TYPE_CHECKING:
    from turnout.backends import Backend

#: where the request's notes (Call.state) keep the completions request itself
REQUEST = "completions_request"
#: request fields that mean the same to chat completions, copied into the internal (chat) body
CHAT_FIELDS = ("max_tokens", "temperature", "top_p", "stop", "n", "stream", "stream_options", "user", "seed",
               "presence_penalty", "frequency_penalty", "logit_bias")


class CompletionRequest(Open):
    model: StrictStr = Field(min_length=1)
    prompt: TextOrTokens
    max_tokens: StrictInt | None = Field(None, ge=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: StrictStr | list[StrictStr] | None = Field(None, max_length=4)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(None, ge=1, le=128)
    suffix: StrictStr | None = None
    echo: StrictBool | None = None
    logprobs: StrictInt | None = Field(None, ge=0, le=5)
    best_of: StrictInt | None = Field(None, ge=1, le=20)
    user: StrictStr | None = None


_adapter = TypeAdapter(CompletionRequest)


def _prompts(request: dict[str, Any]) -> list[str] | None:
    prompt = request["prompt"]
    if isinstance(prompt, str):
        return [prompt]
    return list(prompt) if all(isinstance(p, str) for p in prompt) else None


def _chat_body(request: dict[str, Any], prompt: str) -> dict[str, Any]:
    body = {k: request[k] for k in CHAT_FIELDS if request.get(k) is not None}
    return {**body, "model": request["model"], "messages": [{"role": "user", "content": prompt}]}


def _translatable(request: dict[str, Any], who: str) -> list[str]:
    """The prompts, if this request means the same asked through chat; else the field that would be lost."""
    prompts = _prompts(request)
    lost = "prompt" if prompts is None else next(
        (f for f in ("suffix", "logprobs") if request.get(f) is not None),
        "best_of" if (request.get("best_of") or 1) > 1 else None)
    if lost or prompts is None:
        raise InvalidRequestError(f"{lost}: {who} is asked through chat completions, which have no such thing",
                                  param=lost)
    return prompts


def _asked_by(backend: Backend) -> str:
    return f"model '{backend.name}' (provider '{backend.provider}')"


def _text_choice(text: str, index: int, finish: Any) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}


def _add_usage(total: dict[str, int], usage: Any) -> None:
    if isinstance(usage, dict):
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if isinstance(usage.get(key), int):
                total[key] = total.get(key, 0) + usage[key]


def _as_text_completion(request: dict[str, Any], prompts: list[str], answers: list[dict[str, Any]]) -> dict[str, Any]:
    n, echo = request.get("n") or 1, bool(request.get("echo"))
    choices, usage = [], {}
    for p, (prompt, answer) in enumerate(zip(prompts, answers)):
        _add_usage(usage, answer.get("usage"))
        for choice in answer.get("choices") or ():
            content = (choice.get("message") or {}).get("content") or ""
            choices.append(_text_choice((prompt if echo else "") + content, p * n + int(choice.get("index") or 0),
                                        choice.get("finish_reason")))
    first = answers[0]
    return {"id": "cmpl-" + str(first.get("id", "")).removeprefix("chatcmpl-"), "object": "text_completion",
            "created": first.get("created", 0), "model": first.get("model", request["model"]), "choices": choices,
            "usage": usage or None}


async def complete_through_chat(backend: Backend, request: dict[str, Any],
                                headers: dict[str, str] | None) -> dict[str, Any]:
    prompts = _translatable(request, _asked_by(backend))
    answers = await asyncio.gather(*(backend.complete(_chat_body(request, p), headers) for p in prompts))
    return _as_text_completion(request, prompts, list(answers))


async def as_text_chunks(request: dict[str, Any], prompts: list[str],
                         streams: Callable[[str], Awaitable[AsyncIterator[list[Chunk]]]],
                         who: str) -> AsyncIterator[list[Chunk]]:
    """Each prompt's chat stream in turn, its chunks as text_completion chunks; one usage chunk at the end."""
    n, echo = request.get("n") or 1, bool(request.get("echo"))
    usage: dict[str, int] = {}
    head: dict[str, Any] = {}
    for p, prompt in enumerate(prompts):
        async for batch in await streams(prompt):
            out = []
            for chunk in batch:
                try:
                    data = loads(chunk)
                except ValueError:
                    raise StreamInterruptedError(f"{who} sent a chunk that is not JSON") from None
                head = head or {"id": "cmpl-" + str(data.get("id", "")).removeprefix("chatcmpl-"),
                                "object": "text_completion", "created": data.get("created", 0),
                                "model": data.get("model", request["model"])}
                _add_usage(usage, data.get("usage"))
                choices = []
                for choice in data.get("choices") or ():
                    delta = choice.get("delta") or {}
                    text = delta.get("content") or ""
                    if echo and "role" in delta:  # a choice's first chunk
                        text = prompt + text
                    if text or choice.get("finish_reason"):
                        choices.append(_text_choice(text, p * n + int(choice.get("index") or 0),
                                                    choice.get("finish_reason")))
                if choices:
                    out.append(dumps_str({**head, "choices": choices}))
            if out:
                yield out
    if usage and (request.get("stream_options") or {}).get("include_usage"):
        yield [dumps_str({**head, "choices": [], "usage": usage})]


def stream_through_chat(backend: Backend, request: dict[str, Any],
                        headers: dict[str, str] | None) -> AsyncIterator[list[Chunk]]:
    prompts = _translatable(request, _asked_by(backend))

    async def streams(prompt: str) -> AsyncIterator[list[Chunk]]:
        return backend.stream(_chat_body(request, prompt), headers)

    return as_text_chunks(request, prompts, streams, f"upstream '{backend.name}'")


def _one_prompt(request: dict[str, Any]) -> list[str]:
    """A route with plugins: the request must mean the same as one chat conversation."""
    prompts = _translatable(request, "a route with plugins")
    if len(prompts) != 1:
        raise InvalidRequestError("prompt: this route runs plugins, which see one conversation: send one prompt "
                                  "per request", param="prompt")
    return prompts


@register("completions")
class CompletionsDoor(Door):
    paths = ("/v1/completions", "/completions")
    openapi: ClassVar[dict[str, Any] | None] = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": CompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}}

    async def inbound(self, body: Any, call: Call) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidRequestError("the request body must be a JSON object")
        texts = check_text_or_tokens(body, "prompt")
        check_body(_adapter, body, checked="prompt")
        call.state[REQUEST] = body
        return _chat_body(body, "\n".join(texts or ()))

    def _chain(self, call: Call) -> tuple[list[str], dict[str, Any], dict[str, str] | None]:
        ctx, route = call.ctx, call.route
        assert ctx is not None and route is not None
        chain = allowed(ctx.caller, call.router.dispatcher.chain(route.model, route.fallbacks))
        return chain, call.state[REQUEST], ctx.upstream_headers or None

    async def complete(self, call: Call) -> dict[str, Any]:
        assert call.route is not None and call.ctx is not None
        if call.route.plugins:  # through the Router in the chat form: the plugins see it and may answer
            request = call.state[REQUEST]
            prompts = _one_prompt(request)
            return _as_text_completion(request, prompts, [await call.router.complete(call.ctx, call.route)])
        chain, request, headers = self._chain(call)

        async def ask(backend: Backend) -> dict[str, Any]:
            passthrough = getattr(backend, "text_completion", None)  # an upstream with its own /completions
            if passthrough is not None:
                return await passthrough(request, headers)
            return await complete_through_chat(backend, request, headers)

        assert call.route is not None and call.ctx is not None
        call.route.model, answer = await call.router.dispatcher.call(chain, ask, call.route.dispatch)
        call.ctx.model = call.route.model
        return answer

    async def stream(self, call: Call) -> AsyncIterator[list[Chunk]]:
        assert call.route is not None and call.ctx is not None
        if call.route.plugins:
            request, ctx, route = call.state[REQUEST], call.ctx, call.route
            prompts = _one_prompt(request)
            first = await call.router.stream(ctx, route)  # opened now: a refusal is an error status, not an event

            async def streams(prompt: str) -> AsyncIterator[list[Chunk]]:
                return first

            return as_text_chunks(request, prompts, streams, f"upstream '{route.model}'")
        chain, request, headers = self._chain(call)

        def ask(backend: Backend) -> AsyncIterator[list[Chunk]]:
            passthrough = getattr(backend, "text_completion_stream", None)
            if passthrough is not None:
                return passthrough(request, headers)
            return stream_through_chat(backend, request, headers)

        assert call.route is not None and call.ctx is not None
        call.route.model, batches = await call.router.dispatcher.open_stream(chain, ask, call.route.dispatch)
        call.ctx.model = call.route.model
        return batches

    def tally(self, data: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
        usage = data.get("usage")
        chars = sum(len(c["text"]) for c in data.get("choices") or () if isinstance(c, dict)
                    and isinstance(c.get("text"), str))
        return (usage if isinstance(usage, dict) else None), chars

    async def outbound(self, completion: dict[str, Any], call: Call) -> dict[str, Any]:
        return completion

    def framer(self, call: Call) -> Framer:
        return ChatFramer()  # the same SSE framing as chat: data: lines, then [DONE]
