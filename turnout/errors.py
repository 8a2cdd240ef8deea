"""One exception tree for the whole request path.

Every error a client can see is a `TurnoutError`; it knows its HTTP status and renders itself in the
OpenAI error shape. Retry and fallback rules key on the subclasses, never on message text.
"""

from __future__ import annotations

import re
from typing import Any

_SECRET_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{6,}|sk-ant-[A-Za-z0-9_\-*]{6,}|Bearer\s+[A-Za-z0-9._\-]{8,}|AKIA[0-9A-Z]{12,})"
)


# control characters (but tab) would let a value forge log lines or split a header
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]+")
FIELD_LIMIT = 100  # an error's type, code or param: short words, never a place for an upstream's essay
MESSAGE_LIMIT = 2000


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove anything that looks like a credential (and the given secrets) from text shown to clients."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _SECRET_PATTERNS.sub("[redacted]", text)


def scrub_field(value: Any, secrets: tuple[str, ...] = (), limit: int = FIELD_LIMIT) -> str | None:
    """A value an upstream chose (an error's type, code, param), made fit for a client, a log line or a header:
    credentials removed, on one line, bounded. Scrubbed before it is cut, so no part of a secret survives."""
    if value is None:
        return None
    text = _CONTROL.sub(" ", scrub(value if isinstance(value, str) else str(value), secrets))
    return text[:limit] or None


def scrub_message(text: str, secrets: tuple[str, ...] = ()) -> str:
    return scrub_field(text, secrets, MESSAGE_LIMIT) or ""


class TurnoutError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.headers = headers or {}

    def to_dict(self, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
        """The OpenAI error shape, every field scrubbed: an upstream's error may have filled any of them."""
        return {"error": {"message": scrub_message(self.message, secrets),
                          "type": scrub_field(self.type, secrets) or "server_error",
                          "code": scrub_field(self.code, secrets), "param": scrub_field(self.param, secrets)}}


class InvalidRequestError(TurnoutError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ModelNotFoundError(TurnoutError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RouteNotFoundError(TurnoutError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class AuthenticationError(TurnoutError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(TurnoutError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class RateLimited(TurnoutError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(TurnoutError):
    """The upstream answered with an error, or not at all. 4xx keep their status; the rest become 502."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(self, message: str, *, upstream_status: int | None = None, **kwargs: Any) -> None:
        self.upstream_status = upstream_status
        if upstream_status is not None and 400 <= upstream_status < 500 and "status" not in kwargs:
            kwargs["status"] = upstream_status
        super().__init__(message, **kwargs)

    @property
    def retryable(self) -> bool:
        return self.upstream_status is None or self.upstream_status == 429 or self.upstream_status >= 500


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamConnectionError(UpstreamError):
    status = 502
    code = "upstream_unreachable"


class StreamInterruptedError(UpstreamError):
    """The upstream failed after the stream had started: the client gets an error event, not a retry."""

    code = "stream_interrupted"
