"""The mock upstream's Gemini API: POST /v1beta/models/{model}:generateContent and
:streamGenerateContent?alt=sse, answering like generativelanguage.googleapis.com does.

It shares the mock's request log and directives (see mock_upstream): #tool, #error:<status>, #sleep, #trickle,
#midstream-fail, #flaky, #malformed, #leakerror, #leakstream, and its own:
  #block           the prompt is blocked: promptFeedback.blockReason SAFETY and no candidate
  #block:output    the answer is blocked: a candidate with finishReason SAFETY and no content
  #think           the answer comes after a thought part, and usage counts thoughtsTokenCount
With generationConfig.responseMimeType application/json the answer is the JSON text {"echo": <text>}.
Like the real API it refuses what it does not know: a request without `x-goog-api-key` (403), a key in the
query string (400: this mock's rule, so that a key in a URL fails a test), unknown request fields, schema keys
outside Gemini's OpenAPI subset, a functionResponse that is not an object, and a replayed functionCall without
the thoughtSignature it was sent with or Google's skip sentinel (as Gemini 3 does).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from turnout.testing.mock_upstream import (
    FAKE_KEY_IN_ERRORS,
    TOOL_ARGS,
    JSONResponse,
    Mock,
    _credentials,
    _directive,
    _paced,
    _reply,
    _sse,
    _words,
)

SIGNATURE = "bW9jay10aG91Z2h0LXNpZ25hdHVyZQ=="  # what the mock signs its function calls with
SKIP_SIGNATURE = "skip_thought_signature_validator"  # Google's documented "do not check" value
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED"}
REQUEST_FIELDS = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
                  "cachedContent", "labels"}
GENERATION_FIELDS = {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
                     "presencePenalty", "frequencyPenalty", "seed", "responseMimeType", "responseSchema",
                     "responseJsonSchema", "responseLogprobs", "logprobs", "thinkingConfig", "responseModalities",
                     "mediaResolution", "speechConfig"}
SCHEMA_FIELDS = {"type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems",
                 "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
                 "example", "anyOf", "propertyOrdering", "default", "minimum", "maximum"}
SAFETY_RATINGS = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]


def error(code: int, message: str, status: str | None = None, details: list[Any] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message, "status": status or STATUS_NAMES.get(code, "UNKNOWN")}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=code)


def _schema_problem(schema: Any, path: str) -> str | None:
    if not isinstance(schema, dict):
        return None
    for key, value in schema.items():
        if key not in SCHEMA_FIELDS:
            return f'Invalid JSON payload received. Unknown name "{key}" at \'{path}\': Cannot find field.'
        if key == "properties" and isinstance(value, dict):
            if not value:
                return f"{path}.properties: should be non-empty for OBJECT type"
            for name, sub in value.items():
                if problem := _schema_problem(sub, f"{path}.properties[{name}].value"):
                    return problem
        elif key == "items" and (problem := _schema_problem(value, f"{path}.items")):
            return problem
        elif key == "anyOf" and isinstance(value, list):
            for i, sub in enumerate(value):
                if problem := _schema_problem(sub, f"{path}.any_of[{i}]"):
                    return problem
    return None


def _content_problem(contents: Any) -> str | None:
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(contents):
        if content.get("role") not in ("user", "model") or not content.get("parts"):
            return f"* GenerateContentRequest.contents[{i}]: a role (user or model) and parts are required"
        calls = 0
        for j, part in enumerate(content["parts"]):
            response = (part.get("functionResponse") or {}).get("response", {})
            if not isinstance(response, dict):
                return f"contents[{i}].parts[{j}].function_response.response: Starting an object on a scalar field"
            calls += "functionCall" in part
            # the first call of a turn is checked; the parallel calls after it carry no signature
            if calls == 1 and "functionCall" in part and part.get("thoughtSignature") not in (SIGNATURE,
                                                                                              SKIP_SIGNATURE):
                return f"Function call is missing a thought_signature in functionCall parts (contents[{i}].parts[{j}])"
    return None


def _request_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Invalid JSON payload received."
    if unknown := sorted(set(body) - REQUEST_FIELDS):
        return f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
    for t, tool in enumerate(body.get("tools") or []):
        for d, declaration in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{t}].function_declarations[{d}].parameters"
            if problem := _schema_problem(declaration.get("parameters"), where):
                return problem
    if unknown := sorted(set(body.get("generationConfig") or {}) - GENERATION_FIELDS):
        return f'Invalid JSON payload received. Unknown name "{unknown[0]}" at \'generation_config\''
    schema = (body.get("generationConfig") or {}).get("responseSchema")
    return _schema_problem(schema, "generation_config.response_schema") or _content_problem(body.get("contents"))


def _last_turn(contents: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The last user turn's text, and the function responses it carries."""
    for content in reversed(contents):
        if content.get("role") == "user":
            parts = content.get("parts") or []
            text = " ".join(p["text"] for p in parts if isinstance(p.get("text"), str))
            return text, [p["functionResponse"] for p in parts if "functionResponse" in p]
    return "", []


async def _before(mock: Mock, text: str, request: Request) -> Response | None:
    """The shared directives that end a request early, with Gemini-shaped errors."""
    if (flaky := _directive(text, "flaky")) is not None:
        mock.seen[text] = mock.seen.get(text, 0) + 1
        if mock.seen[text] <= int(flaky or 1):
            text += " #error:500"
    if (sleep := _directive(text, "sleep")) is not None:
        await asyncio.sleep(float(sleep or 1))
    if (status := _directive(text, "error")) is not None:
        code = int(status or 500)
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}] if code == 429 else None
        return error(code, f"mock failure {code}; API key not valid: {FAKE_KEY_IN_ERRORS}", details=details)
    if _directive(text, "malformed") is not None:
        return Response(b"<html>not json</html>", media_type="application/json")
    if (status := _directive(text, "leakerror")) is not None:
        return JSONResponse(_leaky_error(_credentials(request.headers), int(status or 401)),
                            status_code=int(status or 401))
    return None


def _leaky_error(key: str, code: int) -> dict[str, Any]:
    return {"error": {"code": code, "message": f"rejected {key}", "status": f"DENIED:{key}",
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": key}]}}


def _usage(text: str, reply: str, think: bool) -> dict[str, Any]:
    prompt, answer, thoughts = max(1, len(text) // 4), len(_words(reply)), 5 if think else 0
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": answer, "totalTokenCount": prompt + answer + thoughts}
    if think:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _answer(body: dict[str, Any], text: str, responses: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The parts of the answer, and its finish reason."""
    declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    if _directive(text, "tool") is not None and declarations:
        call = {"name": declarations[0]["name"], "args": TOOL_ARGS}
        return [{"functionCall": call, "thoughtSignature": SIGNATURE}], "STOP"
    if responses and not text:
        return [{"text": f"tool said: {json.dumps(responses[0].get('response'))}"}], "STOP"
    if (body.get("generationConfig") or {}).get("responseMimeType") == "application/json":
        return [{"text": json.dumps({"echo": text})}], "STOP"
    return [{"text": _reply(text)}], "STOP"


async def generate(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    model, _, method = request.path_params["target"].partition(":")
    try:
        body = await request.json()
    except ValueError:
        body = None
    mock.record(request, body)
    if "key" in request.query_params:
        return error(400, "this mock refuses an API key in the URL: send it in the x-goog-api-key header")
    if not request.headers.get("x-goog-api-key"):
        return error(403, "Method doesn't allow unregistered callers (callers without established identity). "
                          "Please use API Key or other form of API consumer identity to call this API.")
    if method not in ("generateContent", "streamGenerateContent"):
        return error(404, f"method {method} is not found")
    if problem := _request_problem(body):
        return error(400, problem)
    text, responses = _last_turn(body["contents"])
    if (early := await _before(mock, text, request)) is not None:
        return early
    think = _directive(text, "think") is not None
    parts, finish = _answer(body, text, responses)
    reply = " ".join(p.get("text", "") for p in parts)
    head = {"modelVersion": model, "responseId": "mock-gemini-response"}
    usage = _usage(text, reply, think)
    n = int((body.get("generationConfig") or {}).get("candidateCount") or 1)
    block = _directive(text, "block")
    if method == "generateContent":
        if block == "":
            return JSONResponse({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": SAFETY_RATINGS},
                                 "usageMetadata": {"promptTokenCount": usage["promptTokenCount"]}, **head})
        thought = [{"text": "Thinking it over.", "thought": True}] if think else []
        candidates = [{"content": {"role": "model", "parts": thought + parts}, "finishReason": finish, "index": i}
                      for i in range(n)]
        if block is not None:
            candidates = [{"finishReason": "SAFETY", "index": 0, "safetyRatings": SAFETY_RATINGS}]
        return JSONResponse({"candidates": candidates, "usageMetadata": usage, **head})
    if request.query_params.get("alt") != "sse":
        return error(400, "this mock streams server-sent events only: add ?alt=sse")
    events = _stream_events(parts, finish, usage, head, n, block, think)
    events = _leak_in_stream(events, text, request.headers)
    return StreamingResponse(_paced(mock, events, text), media_type="text/event-stream")


def _stream_events(parts: list[dict[str, Any]], finish: str, usage: dict[str, Any], head: dict[str, Any], n: int,
                   block: str | None, think: bool) -> list[bytes]:
    if block == "":
        return [_sse({"promptFeedback": {"blockReason": "SAFETY"}, **head})]
    if block is not None:
        return [_sse({"candidates": [{"content": {"role": "model", "parts": [{"text": "Here is"}]}, "index": 0}],
                      **head}),
                _sse({"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": SAFETY_RATINGS}],
                      "usageMetadata": usage, **head})]
    pieces: list[dict[str, Any]] = [{"text": "Thinking it over.", "thought": True}] if think else []
    for part in parts:
        pieces += [{"text": w} for w in _words(part["text"])] if "text" in part else [part]
    partial = {"promptTokenCount": usage["promptTokenCount"], "totalTokenCount": usage["promptTokenCount"]}
    events = []
    for j, piece in enumerate(pieces):
        last = j == len(pieces) - 1
        candidates = [{"content": {"role": "model", "parts": [piece]}, "index": i,
                       **({"finishReason": finish} if last else {})} for i in range(n)]
        events.append(_sse({"candidates": candidates, "usageMetadata": usage if last else partial, **head}))
    return events


def _leak_in_stream(events: list[bytes], text: str, headers: Any) -> list[bytes]:
    where = _directive(text, "leakstream")
    if where is None:
        return events
    return events[:0 if where == "first" else 2] + [_sse(_leaky_error(_credentials(headers), 500))]


ROUTES = [
    Route("/v1beta/models/{target}", generate, methods=["POST"]),
    Route("/v1/models/{target}", generate, methods=["POST"]),
]
