"""The mock's OpenAI endpoints beyond chat: POST /v1/embeddings (deterministic vectors from each text, so the same
text always gets the same vector) and the legacy POST /v1/completions (the echo, whole or streamed), plus their
Azure deployment twins. The directives of mock_upstream (#error:<status>, #sleep, #midstream-fail, ...) apply to
the first input or prompt."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from turnout.testing.mock_upstream import (
    MOCK_CREATED,
    JSONResponse,
    Mock,
    _paced,
    _reply,
    _sse,
    _words,
)

MOCK_DIM = 8


def mock_vector(text: str, dim: int = MOCK_DIM) -> list[float]:
    """A unit vector that depends on the text alone (its SHA-256, stretched to `dim` values)."""
    raw = b"".join(hashlib.sha256(f"{text}:{i}".encode()).digest() for i in range(dim // 8 + 1))
    values = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dim}I", raw[:4 * dim])]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def _texts(value: Any) -> list[str]:
    """Each input as text: token id lists become their ids joined by spaces."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    if isinstance(value, list):
        return [v if isinstance(v, str) else " ".join(map(str, v)) if isinstance(v, list) else str(v) for v in value]
    return [str(value)]


async def embeddings(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    body = await request.json()
    mock.record(request, body)
    texts = _texts(body.get("input"))
    if (early := await mock.before(texts[0] if texts else "", anthropic=False, headers=request.headers)) is not None:
        return early
    dim = int(body.get("dimensions") or MOCK_DIM)
    data = []
    for i, text in enumerate(texts):
        vector = mock_vector(text, dim)
        if body.get("encoding_format") == "base64":
            encoded: Any = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    tokens = sum(max(1, len(t) // 4) for t in texts)
    return JSONResponse({"object": "list", "data": data, "model": body.get("model", "mock-embed"),
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def completions(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    body = await request.json()
    mock.record(request, body)
    prompts = _texts(body.get("prompt"))
    if (early := await mock.before(prompts[0], anthropic=False, headers=request.headers)) is not None:
        return early
    n = int(body.get("n") or 1)
    model, cid = body.get("model", "mock"), "cmpl-mock"
    replies = [(body.get("echo") and prompt or "") + _reply(prompt) for prompt in prompts]
    prompt_tokens = sum(max(1, len(p) // 4) for p in prompts)
    completion_tokens = n * sum(len(_words(r)) for r in replies)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    indexed = [(p * n + j, reply) for p, reply in enumerate(replies) for j in range(n)]
    if not body.get("stream"):
        choices = [{"text": reply, "index": i, "logprobs": None, "finish_reason": "stop"} for i, reply in indexed]
        return JSONResponse({"id": cid, "object": "text_completion", "created": MOCK_CREATED, "model": model,
                             "choices": choices, "usage": usage})

    def chunk(index: int, text: str, finish: str | None = None) -> bytes:
        return _sse({"id": cid, "object": "text_completion", "created": MOCK_CREATED, "model": model,
                     "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}]})

    chunks = [chunk(i, w) for i, reply in indexed for w in _words(reply)] + [chunk(i, "", "stop") for i, _ in indexed]
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append(_sse({"id": cid, "object": "text_completion", "created": MOCK_CREATED, "model": model,
                            "choices": [], "usage": usage}))
    chunks.append(b"data: [DONE]\n\n")
    return StreamingResponse(_paced(mock, chunks, prompts[0]), media_type="text/event-stream")


ROUTES = [
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/openai/deployments/{deployment}/embeddings", embeddings, methods=["POST"]),
    Route("/openai/deployments/{deployment}/completions", completions, methods=["POST"]),
]
