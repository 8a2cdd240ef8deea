"""The RoutingContext that flows through the pipeline, and the small value types it carries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SignalResult:
    matched: bool
    score: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    elapsed_us: float = 0.0


@dataclass(frozen=True)
class Choice:
    """What a selector picked, with every candidate's score and a human reason."""

    model: str
    scores: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    #: the context vector a contextual selector used (kept in the outcome record so the learner can update)
    features: tuple[float, ...] | None = None
    #: the pick was exploration, not exploitation
    explored: bool = False


@dataclass
class Caller:
    """Who is calling: the API key's name and roles, and what it may use (None: everything)."""

    key_id: str = "anonymous"
    roles: tuple[str, ...] = ()
    models: list[str] | None = None
    decisions: list[str] | None = None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return ""


@dataclass
class RoutingContext:
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    caller: Caller = field(default_factory=Caller)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    signals: dict[str, SignalResult] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    # set by the pipeline once routed; plugins may change `model` (e.g. PII → a local model)
    decision: str = ""
    model: str = ""
    #: extra headers for the upstream request and for the response to the client, set by plugins
    upstream_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    #: the plugin that answered without a backend call (a cache hit, a canned reply), if any
    answered_by: str | None = None
    #: turnout's own request fields, taken out of the body before it is forwarded (e.g. `cache`)
    controls: dict[str, Any] = field(default_factory=dict)

    def set_body(self, body: dict[str, Any]) -> None:
        """Replace the request body. Everything in `cache` was derived from the old one (flattened text, token
        counts, language, PII spans, the request embedding) and is dropped — but plugin notes, which plugins
        keep under keys starting with "plugin:"."""
        self.body = body
        for key in [k for k in self.cache if not k.startswith("plugin:")]:
            del self.cache[key]

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def text(self, scope: str = "all") -> str:
        """Flattened text of the conversation: 'all', 'user', 'last_user' or 'system' messages. Cached."""
        key = f"text:{scope}"
        if key not in self.cache:
            self.cache[key] = "\n".join(_text_of(m.get("content")) for m in self._scoped(scope))
        return self.cache[key]

    def _scoped(self, scope: str) -> list[dict[str, Any]]:
        msgs = [m for m in self.messages if isinstance(m, dict)]
        if scope == "all":
            return msgs
        if scope == "system":
            return [m for m in msgs if m.get("role") in ("system", "developer")]
        users = [m for m in msgs if m.get("role") == "user"]
        if scope == "last_user":
            return users[-1:]
        return users

    @property
    def token_estimate(self) -> int:
        """A cheap token count (about 4 characters a token) for routing and cost estimates."""
        if "tokens" not in self.cache:
            self.cache["tokens"] = estimate_tokens(self.text("all"))
        return self.cache["tokens"]


def clean_text(text: str, limit: int | None = None) -> str:
    """Text safe for native tokenizers and models: lone surrogates (from invalid UTF-8 escapes in a JSON body)
    become U+FFFD. Cut to `limit` characters first, so the cost is bounded."""
    text = text[:limit] if limit is not None else text
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def estimate_tokens(text: str) -> int:
    """About 4 characters a token for Latin scripts; CJK and other multi-byte scripts count about a token
    per character (UTF-8 length / 4 lands near both)."""
    if text.isascii():
        return tokens_for_chars(len(text))
    return tokens_for_chars(len(text.encode("utf-8", "replace")))


def usage_count(usage: dict[str, Any] | None, field: str) -> int | None:
    """A token count from an upstream's `usage`, or None when it is missing or not a count (a string, a bool,
    a negative number: a negative count would credit a key's budget)."""
    value = usage.get(field) if usage else None
    return value if type(value) is int and 0 <= value < 1 << 40 else None


def tokens_for_chars(chars: int) -> int:
    """About 4 characters a token: good enough for routing thresholds and cost estimates."""
    return (chars + 3) // 4


OBJECTIVE_HEADER = "x-turnout-objective"


def requested_objective(ctx: RoutingContext, header: str = OBJECTIVE_HEADER) -> str | None:
    """The caller's stated preference for this request (cost, quality, latency or balanced), if any."""
    value = (ctx.headers.get(header) or "").strip().lower()
    return value if value in ("cost", "quality", "latency", "balanced") else None
