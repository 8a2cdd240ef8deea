"""Scripted answers per model, for plans and judges: POST /scripted/v1/chat/completions (a model whose base_url
is {mock}/scripted/v1).

Directives of the form `#as:<model>=<directive>` in the last user message apply to the upstream model named
(the request's `model`) and are dropped for the others: "2+2? #as:mock-cheap=say:wrong #as:mock-strong=say:right"
makes mock-cheap answer CANNED["wrong"] and mock-strong CANNED["right"]; any directive of mock_upstream works
(`#as:mock-cheap=sleep:3`, `#as:mock-cheap=error:500`). Then, for plain (non-stream) answers:
  #call:<tool>     call the offered tool <tool> with {"question": <the text, less this model's directives>}
                   (text once a tool result is last), as a coordinator would
  #choices:<a>.<b>  one choice per name, CANNED[<a>], CANNED[<b>], ... (a request's n > 1, choices that differ)
  #vary            "The answer is <n>", n counting up per model and text: samples that disagree
  logprobs         a request with `logprobs: true` gets them, every token at the value of `#logprob:<x>`
                   (default -0.05), with `top_logprobs` alternatives (the rest of the mass spread evenly)
Everything else is mock_upstream's OpenAI chat (the request log, the fault schedule, streams)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from turnout.testing.mock_upstream import (
    CANNED,
    MOCK_CREATED,
    JSONResponse,
    Mock,
    _words,
    openai_chat,
)

_AS = re.compile(r"#as:([\w.\-]+)=([\w.:\-]+)")


def for_model(text: str, model: str) -> str:
    return _AS.sub(lambda m: f"#{m.group(2)}" if m.group(1) == model else "", text)


def _rewrite_last_user(body: dict[str, Any], model: str) -> tuple[str, str]:
    """The last user text as sent and as rewritten for `model` (the body now holds the rewritten one)."""
    original = text = ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            if isinstance(message.get("content"), str):
                original = message["content"]
                message["content"] = text = for_model(original, model)
            break
    return original, text


async def scripted_chat(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    body = await request.json()
    model = str(body.get("model", ""))
    original, text = _rewrite_last_user(body, model)
    if not body.get("stream") and (early := _scripted(mock, request, body, model, text, original)) is not None:
        return early
    raw = json.dumps(body).encode()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    response = await openai_chat(Request(request.scope, receive))
    if body.get("logprobs") and not body.get("stream") and response.status_code == 200:
        out = json.loads(bytes(response.body))
        for choice in out.get("choices") or []:
            choice["logprobs"] = _logprobs((choice.get("message") or {}).get("content") or "", text,
                                           int(body.get("top_logprobs") or 0))
        return JSONResponse(out)
    return response


def _scripted(mock: Mock, request: Request, body: dict[str, Any], model: str, text: str,
              original: str) -> Response | None:
    messages = body.get("messages") or []
    answered = bool(messages) and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"
    tool = re.search(r"#call:([\w\-]+)", text)
    offered = {(t.get("function") or {}).get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    if tool and not answered and tool.group(1) in offered and body.get("tool_choice") != "none":
        mock.record(request, body)
        # the question passes the other models' directives on (the asked model answers as scripted)
        question = " ".join(re.sub(rf"#as:{re.escape(model)}=\S+", "", original).split())
        call = {"id": f"call_{tool.group(1)}", "type": "function",
                "function": {"name": tool.group(1), "arguments": json.dumps({"question": question})}}
        return JSONResponse(_completion(model, {"role": "assistant", "content": None, "tool_calls": [call]},
                                        "tool_calls", len(text)))
    if choices := re.search(r"#choices:([\w.]+)", text):
        mock.record(request, body)
        out = _completion(model, {"role": "assistant", "content": ""}, "stop", len(text))
        out["choices"] = [{"index": i, "message": {"role": "assistant", "content": CANNED.get(name, name)},
                           "logprobs": None, "finish_reason": "stop"} for i, name in enumerate(choices[1].split("."))]
        return JSONResponse(out)
    if "#vary" in text:
        mock.record(request, body)
        key = f"vary:{model}:{text}"
        mock.seen[key] = mock.seen.get(key, 0) + 1
        return JSONResponse(_completion(model, {"role": "assistant", "content": f"The answer is {mock.seen[key]}."},
                                        "stop", len(text)))
    return None


def _completion(model: str, message: dict[str, Any], finish: str, prompt_chars: int) -> dict[str, Any]:
    completion = len(_words(message.get("content") or "x"))
    prompt = max(1, prompt_chars // 4)
    return {"id": "chatcmpl-scripted", "object": "chat.completion", "created": MOCK_CREATED, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}


def _logprobs(content: str, text: str, top: int) -> dict[str, Any]:
    found = re.search(r"#logprob:(-?\d+(?:\.\d+)?)", text)
    value = min(0.0, float(found.group(1))) if found else -0.05
    rest = (1 - math.exp(value)) / max(1, top - 1)  # the other alternatives share what the chosen one leaves
    tokens = []
    for word in _words(content):
        alternatives = [{"token": word, "logprob": value, "bytes": None}]
        alternatives += [{"token": f"alt{i}", "logprob": math.log(rest) if rest > 0 else -100.0, "bytes": None}
                         for i in range(max(0, top - 1))]
        tokens.append({"token": word, "logprob": value, "bytes": None, "top_logprobs": alternatives[:top]})
    return {"content": tokens, "refusal": None}


ROUTES = [Route("/scripted/v1/chat/completions", scripted_chat, methods=["POST"])]
