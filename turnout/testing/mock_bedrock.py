"""A mock of Amazon Bedrock's Converse and ConverseStream APIs, with the mock upstream's directives (see
mock_upstream: #tool, #error:<status>, #sleep, #trickle, #midstream-fail, #flaky, #leakerror, #leakstream,
#malformed) and two of its own:
  #throttle:<n>         answer 429 ThrottlingException the first n times this exact text is asked
  #streamexception:<t>  (streams) messageStart, then an exception event of type t (default throttlingException)

Like AWS it checks every request's Signature Version 4 (recomputed with botocore from the request as received
and the secret it knows for the access key id): a missing, malformed, wrong or stale signature is a 403 in
Bedrock's shape ({"message"} with the kind in x-amzn-ErrorType). Streams are AWS event-stream frames
(prelude, headers, payload, CRC32s), so botocore's own client parses what it sends."""

from __future__ import annotations

import asyncio
import datetime
import hmac
import itertools
import json
import re
import struct
import zlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from turnout.testing.mock_upstream import (
    TOOL_ARGS,
    Mock,
    _credentials,
    _directive,
    _paced,
    _reply,
    _words,
)

# Identities the mock knows: access key id → (secret, session token or None)
TEST_ACCESS_KEY_ID = "AKIAMOCKBEDROCKTEST01"
TEST_SECRET_ACCESS_KEY = "mockBedrockSecret/0123456789+abcdefghijKLMN"
TEST_TEMP_ACCESS_KEY_ID = "ASIAMOCKBEDROCKTEST02"
TEST_TEMP_SECRET_ACCESS_KEY = "mockBedrockTempSecret/9876543210+zyxwvuTSRQ"
TEST_SESSION_TOKEN = "IQoJb3JpZ2luX2VjEMockSessionToken0123456789abcdefghijklmnopqrstuvwxyz"
IDENTITIES = {TEST_ACCESS_KEY_ID: (TEST_SECRET_ACCESS_KEY, None),
              TEST_TEMP_ACCESS_KEY_ID: (TEST_TEMP_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN)}
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
MAX_SKEW = datetime.timedelta(minutes=5)  # AWS refuses a signature more than 5 minutes from its clock
REQUEST_ID = "4f6d3c2a-mock-bedrock-request"
ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
               408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
               500: "InternalServerException", 503: "ServiceUnavailableException"}
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([^/,]+)/([^/,]+)/aws4_request,\s*"
                   r"SignedHeaders=([a-z0-9;._-]+),\s*Signature=([0-9a-f]{64})")


def aws_error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status,
                        headers={"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                                 "x-amzn-RequestId": REQUEST_ID, **(headers or {})})


def signature_problem(request: Request, body: bytes) -> JSONResponse | None:
    """None when the request is signed as AWS would accept it; else AWS's 403."""
    from botocore.auth import (
        SigV4Auth,  # botocore only once a Bedrock request comes: the mock serves without it
    )
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = request.headers.get("authorization")
    if not auth:
        return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.fullmatch(auth.strip())
    if match is None:
        return aws_error(403, "IncompleteSignatureException", "Authorization header requires 'Credential', "
                         "'Signature' and 'SignedHeaders' parameters in AWS4-HMAC-SHA256 form.")
    key_id, day, region, service, signed, signature = match.groups()
    secret, token = IDENTITIES.get(key_id, (None, None))
    if secret is None or request.headers.get("x-amz-security-token") != token:
        return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    stamp = request.headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=datetime.UTC)
    except ValueError:
        return aws_error(403, "IncompleteSignatureException", "Date must be in ISO-8601 'basic format'.")
    now = datetime.datetime.now(datetime.UTC)
    if abs(now - when) > MAX_SKEW:
        return aws_error(403, "InvalidSignatureException", f"Signature expired: {stamp} is now earlier than "
                         f"{(now - MAX_SKEW).strftime(SIGV4_TIMESTAMP)} ({now.strftime(SIGV4_TIMESTAMP)} - 5 min.)")
    names = signed.split(";")
    if service != "bedrock" or day != stamp[:8] or not {"host", "x-amz-date"} <= set(names) or (
            token and "x-amz-security-token" not in names):
        return aws_error(403, "InvalidSignatureException", "Credential should be scoped to a valid region and "
                         "service 'bedrock', and sign host and x-amz-date.")
    raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
    query = request.url.query
    url = f"{request.url.scheme}://{request.headers.get('host', '')}{raw_path}" + (f"?{query}" if query else "")
    copy = AWSRequest(method=request.method, url=url, data=body, headers={n: request.headers.get(n, "") for n in names})
    copy.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key_id, secret, token), service, region)
    expected = signer.signature(signer.string_to_sign(copy, signer.canonical_request(copy)), copy)
    if not hmac.compare_digest(expected, signature):
        return aws_error(403, "InvalidSignatureException", "The request signature we calculated does not match "
                         "the signature you provided. Check your AWS Secret Access Key and signing method. "
                         "Consult the service documentation for details.")
    return None


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages or []):
        if message.get("role") == "user":
            return " ".join(b["text"] for b in message.get("content") or [] if isinstance(b, dict) and "text" in b)
    return ""


def shape_problem(body: Any) -> str | None:
    """What Bedrock's validation would refuse in a Converse body (the part a translator can get wrong)."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: required, a non-empty list"
    roles = [m.get("role") for m in body["messages"]]
    if roles[0] != "user" or any(a == b for a, b in itertools.pairwise(roles)) or not set(roles) <= {"user", "assistant"}:
        return "A conversation must start with a user message and alternate user and assistant roles."
    for i, message in enumerate(body["messages"]):
        if not message.get("content"):
            return f"messages.{i}.content: must not be empty"
        for block in message["content"]:
            if not isinstance(block, dict) or len(block) != 1:
                return f"messages.{i}.content: each block sets exactly one member"
            if block.get("text") == "":
                return "The text field in the ContentBlock object is blank."
    if any(("toolUse" in b or "toolResult" in b) for m in body["messages"] for b in m["content"]) and \
            not body.get("toolConfig"):
        return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    return None


async def _early(mock: Mock, request: Request, text: str) -> Response | None:
    """The directives that answer before any model output, in Bedrock's error shape."""
    for name, status in (("flaky", 500), ("throttle", 429)):
        if (count := _directive(text, name)) is not None:
            mock.seen[f"bedrock:{text}"] = seen = mock.seen.get(f"bedrock:{text}", 0) + 1
            if seen <= int(count or 1):
                return aws_error(status, ERROR_TYPES[status], "Too many requests, please wait before trying again."
                                 if status == 429 else "The server encountered an internal error.")
    if (sleep := _directive(text, "sleep")) is not None:
        await asyncio.sleep(float(sleep or 1))
    if (status := _directive(text, "error")) is not None:
        code = int(status or 500)
        return aws_error(code, ERROR_TYPES.get(code, "InternalServerException"), f"mock failure {code}",
                         {"retry-after": "1"} if code == 429 else None)
    if (status := _directive(text, "leakerror")) is not None:
        key = _credentials(request.headers)
        return aws_error(int(status or 403), f"Leak{key}", f"rejected {key}", {"retry-after": key})
    return None


def _content(text: str, tool_name: str | None) -> list[dict[str, Any]]:
    if tool_name:
        return [{"text": "Let me check."},
                {"toolUse": {"toolUseId": "tooluse_mock_1", "name": tool_name, "input": TOOL_ARGS}}]
    return [{"text": _reply(text)}]


async def _prepare(request: Request) -> tuple[Mock, dict[str, Any], str, Response | None]:
    mock: Mock = request.app.state.mock
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    mock.record(request, body)
    if mock.requests:
        mock.requests[-1]["raw_path"] = request.scope.get("raw_path", b"").decode("latin-1")
    if (problem := signature_problem(request, raw)) is not None:
        return mock, {}, "", problem
    if (shape := shape_problem(body)) is not None:
        return mock, {}, "", aws_error(400, "ValidationException", shape)
    text = _last_user_text(body["messages"])
    return mock, body, text, await _early(mock, request, text)


def _tool_name(body: dict[str, Any], text: str) -> str | None:
    tools = (body.get("toolConfig") or {}).get("tools") or []
    if _directive(text, "tool") is None or not tools:
        return None
    return tools[0].get("toolSpec", {}).get("name", "get_weather")


async def converse(request: Request) -> Response:
    _, body, text, early = await _prepare(request)
    if early is not None:
        return early
    if _directive(text, "malformed") is not None:
        return Response(b"<html>not json</html>", media_type="application/json")
    tool = _tool_name(body, text)
    usage_in, usage_out = max(1, len(text) // 4), len(_words(_reply(text)))
    return JSONResponse({"output": {"message": {"role": "assistant", "content": _content(text, tool)}},
                         "stopReason": "tool_use" if tool else "end_turn",
                         "usage": {"inputTokens": usage_in, "outputTokens": usage_out,
                                   "totalTokens": usage_in + usage_out},
                         "metrics": {"latencyMs": 12}}, headers={"x-amzn-RequestId": REQUEST_ID})


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (total and headers lengths, CRC32), string headers, payload, CRC32."""
    encoded = b"".join(bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
                       for k, v in headers.items())
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    # AWS pads each payload with a "p" field of varying length (against size side channels): so does the mock
    body = json.dumps({**payload, "p": "abcdefghij"[:len(kind) % 10]}).encode()
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"}, body)


def exception(kind: str, message: str) -> bytes:
    return frame({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                 json.dumps({"message": message}).encode())


def _stream_events(text: str, tool: str | None) -> list[bytes]:
    events = [event("messageStart", {"role": "assistant"})]
    if tool:
        args = json.dumps(TOOL_ARGS)
        events.append(event("contentBlockDelta", {"delta": {"text": "Let me check."}, "contentBlockIndex": 0}))
        events.append(event("contentBlockStop", {"contentBlockIndex": 0}))
        events.append(event("contentBlockStart", {"start": {"toolUse": {"toolUseId": "tooluse_mock_1", "name": tool}},
                                                  "contentBlockIndex": 1}))
        events += [event("contentBlockDelta", {"delta": {"toolUse": {"input": args[j:j + 8]}}, "contentBlockIndex": 1})
                   for j in range(0, len(args), 8)]
        events.append(event("contentBlockStop", {"contentBlockIndex": 1}))
    else:
        events += [event("contentBlockDelta", {"delta": {"text": w}, "contentBlockIndex": 0})
                   for w in _words(_reply(text))]
        events.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    usage_in, usage_out = max(1, len(text) // 4), len(_words(_reply(text)))
    events.append(event("messageStop", {"stopReason": "tool_use" if tool else "end_turn"}))
    events.append(event("metadata", {"usage": {"inputTokens": usage_in, "outputTokens": usage_out,
                                               "totalTokens": usage_in + usage_out}, "metrics": {"latencyMs": 12}}))
    return events


async def converse_stream(request: Request) -> Response:
    mock, body, text, early = await _prepare(request)
    if early is not None:
        return early
    events = _stream_events(text, _tool_name(body, text))
    if (kind := _directive(text, "streamexception")) is not None:
        events = events[:1] + [exception(kind or "throttlingException",
                                         "Too many tokens, please wait before trying again.")]
    if (where := _directive(text, "leakstream")) is not None:
        key = _credentials(request.headers)
        events = events[:0 if where == "first" else 2] + [exception(f"leak{key}", f"rejected {key}")]
    return StreamingResponse(_paced(mock, events, text), media_type="application/vnd.amazon.eventstream",
                             headers={"x-amzn-RequestId": REQUEST_ID})


ROUTES = [
    Route("/model/{model_id:path}/converse", converse, methods=["POST"]),
    Route("/model/{model_id:path}/converse-stream", converse_stream, methods=["POST"]),
]
