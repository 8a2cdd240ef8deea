"""Pydantic models of the YAML config file (a decision's rules in turnout/config/rules.py). Imports nothing from
turnout outside turnout/config."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from turnout.config.rules import Rule, Strict


class Cost(Strict):
    """USD per 1M tokens."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)

    def usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


class Timeouts(Strict):
    connect: float = Field(5.0, gt=0)
    read: float = Field(600.0, gt=0)
    write: float = Field(30.0, gt=0)
    pool: float = Field(10.0, gt=0)


class RetryConfig(Strict):
    """Retries of failures before the first byte: connection errors, timeouts, 429 and 5xx."""

    attempts: int = Field(2, ge=0, le=10, description="retries after the first try (0: none)")
    backoff_s: float = Field(0.2, ge=0, description="first wait; doubles each retry, with ±50 % jitter")
    max_backoff_s: float = Field(5.0, ge=0, description="longest wait, Retry-After included (longer: no retry)")


class BreakerConfig(Strict):
    """Per backend: open after `failures` failures within `window_s`; after `cooldown_s` one probe request
    goes through (half-open); its success closes the breaker, its failure opens it again."""

    failures: int = Field(5, ge=1)
    window_s: float = Field(30.0, gt=0)
    cooldown_s: float = Field(15.0, gt=0)


class HealthCheckConfig(Strict):
    """Active health checks: GET `path` on the backend every `interval_s`; a failure counts for the breaker."""

    interval_s: float = Field(10.0, gt=0)
    path: str = "/models"
    timeout_s: float = Field(2.0, gt=0)


class ModelConfig(Strict):
    provider: str
    model: str | None = Field(None, description="upstream model id; defaults to the config key")
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_version: str | None = None
    deployment: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    cost: Cost = Field(default_factory=Cost)
    timeout: Timeouts = Field(default_factory=Timeouts)
    max_connections: int = Field(100, ge=1)
    max_response_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="the most an answer may hold, decompressed (a whole non-streamed body, "
        "or one event of a stream): past it the attempt fails as the upstream's fault (502 "
        "upstream_response_too_large; retried and fallen back like a 5xx) before the rest is read")
    transport: Literal["aiohttp", "httpx"] = Field(
        "aiohttp", description="connection layer under the httpx client: aiohttp (less CPU) or httpx's own (HTTP/2, proxies)")
    options: dict[str, Any] = Field(default_factory=dict, description="provider-specific settings")
    fallbacks: list[str] = Field(default_factory=list, description="models tried, in order, when this one fails")
    retry: RetryConfig | None = Field(None, description="default: server.retry")
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    health_check: HealthCheckConfig | None = None
    embeddings: bool = Field(False, description="serves POST /v1/embeddings (an embedding model, not a chat one)")
    responses_api: bool = Field(
        False, description="the upstream speaks OpenAI's Responses API itself: /v1/responses requests routed to "
                           "it are passed through unchanged instead of translated to chat completions")
    joules_per_token: float | None = Field(
        None, ge=0, description="energy per token (prompt and completion): online selectors with an energy_weight "
                                "net it off their reward")


class SignalConfig(BaseModel):
    """`kind` picks the signal class; every other key is that class's parameter (checked at build)."""

    model_config = ConfigDict(extra="allow")
    kind: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AlgorithmConfig(Strict):
    name: str = "static"
    params: dict[str, Any] = Field(default_factory=dict)
    artifact: str | None = None


class PluginConfig(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_single_key(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and "name" not in value:
            if len(value) != 1:
                raise ValueError("a plugin is written {PLUGIN_NAME: {params}} with exactly one key")
            (name, params), = value.items()
            return {"name": name, "params": params or {}}
        return value


# Model and decision names go into response headers (x-turnout-model, x-turnout-decision) and metric labels:
# printable ASCII only, so that no name can break a header or forge one.
def _header_safe(name: str) -> str:
    if not name or len(name) > 200 or not name.isascii() or not name.isprintable() or name != name.strip():
        raise ValueError(f"{name!r}: a name is 1 to 200 printable ASCII characters with no space at either end "
                         "(it is sent in response headers)")
    return name


HeaderSafeName = Annotated[str, AfterValidator(_header_safe)]


class StickinessConfig(Strict):
    """Session-aware routing: a conversation stays on the model it was first routed to (keeping the upstream's
    prefix cache warm and its answers consistent) unless a higher-priority decision forces a switch. Sessions
    are per caller (API key): two tenants never share one, whatever ids they send."""

    mode: Literal["session", "none"] = Field("session", description="session: pin a conversation to its model")
    ttl_s: float = Field(3600.0, gt=0, description="a session is forgotten this long after its last request")
    key: list[Literal["header", "user", "prefix"]] = Field(
        default_factory=lambda: ["header", "user", "prefix"], min_length=1,
        description="what identifies a conversation, the first present wins: the session header, the body's "
                    "`user`, or a hash of the conversation's prefix (system + first user message)")
    header: str = Field("x-session-id", description="the request header that names a session")
    breaks: list[str] = Field(default_factory=list, description="decisions that may break the session even "
                              "inside a tool-call loop (a jailbreak or PII guard, typically)")

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", value):
            raise ValueError(f"{value!r} is not an HTTP header name")
        return value.lower()  # request headers are looked up lowercased

    @field_validator("key")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each key kind at most once")
        return value


class PlanConfig(Strict):
    """A decision's multi-model plan (turnout/plans: cascade, fanout, multi_round): `name` picks it, `params` are
    that plan's (checked when the config is compiled, errors naming decisions[i].plan.params.X)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class DecisionConfig(Strict):
    name: HeaderSafeName
    description: str = ""
    priority: int = 0
    when: Rule | None = Field(None, description="no condition: this decision is the default")
    models: list[str] = Field(min_length=1)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    plugins: list[PluginConfig] = Field(default_factory=list)
    fallbacks: list[str] = Field(default_factory=list, description="tried after the chosen model's own fallbacks")
    stickiness: StickinessConfig | None = Field(None, description="keep a conversation on its model (none: off)")
    plan: PlanConfig | None = Field(None, description="several models for one answer (cascade, fanout, "
                                                    "multi_round); none: the selected model answers")


class RoutingConfig(Strict):
    aliases: list[str] = Field(default_factory=lambda: ["auto"], description="model names that are routed")
    allow_direct: bool = Field(True, description="a configured model name in a request goes straight to it")

    @field_validator("aliases")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if any(not a for a in value):
            raise ValueError("an alias cannot be empty")
        return value


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="a larger body is refused (413) as soon as "
                                "its size is known or, chunked, as soon as that many bytes have arrived")
    body_timeout_s: float = Field(30.0, gt=0, description="the whole body must arrive within this; else 408")
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="request line and headers; more: 431, connection closed")
    max_headers: int = Field(128, ge=8, description="header lines in one request; more: 431")
    header_timeout_s: float = Field(10.0, gt=0, description="a request's line and headers must arrive within this; else 408")
    keep_alive_s: float = Field(75.0, gt=0, le=3600, description="an idle kept-alive connection is closed after this; "
                                "keep it longer than the idle timeout of a load balancer in front (AWS ALB: 60 s), or "
                                "the server closes connections the balancer is about to reuse")
    max_json_depth: int = Field(128, ge=8, le=1000, description="nesting of arrays and objects in a request body")
    max_json_containers: int = Field(250_000, ge=1000, le=10_000_000, description="arrays and objects in one "
                                     "request body, all levels together; more: 400 before the body is parsed")
    max_messages: int = Field(2048, ge=1, description="messages in one request")
    max_parts: int = Field(8192, ge=1, description="content parts and blocks in one request, all messages together "
                           "(text, images, tool calls, tool results, ...); more: 400 before any of them is validated")
    max_tools: int = Field(1024, ge=1, description="tools offered in one request; more: 400")
    max_concurrent: int = Field(1024, ge=1, description="requests in flight per process; more get 503 + Retry-After")
    request_timeout_s: float = Field(900.0, gt=0, description="deadline for a request until its first byte, all retries and fallbacks included")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"  # any other crashed serve at start
    log_format: Literal["text", "json"] = "text"
    shutdown_grace_s: float = Field(60.0, gt=0, description="on SIGTERM: new connections are refused and requests "
                                    "and streams in flight get this long to finish, then the rest are cut")
    cpu_processes: int = Field(1, ge=0, le=64, description=(
        "worker processes (per server process) for the costliest scans of a long prompt (the injection "
        "detector's, PII's, the static embedding's), so that they never hold the event loop's GIL; 0: worker "
        "threads. Started on the first long prompt; read at start"))
    retry: RetryConfig = Field(default_factory=RetryConfig)


class ApiKeyConfig(Strict):
    """One caller. Give the key itself (`key`, e.g. env:TEAM_A_KEY; hashed when loaded) or its SHA-256
    (`key_sha256`, what `turnout hash-key` prints) — a key file should only ever hold hashes."""

    name: str = Field(min_length=1)
    key: SecretStr | None = None
    key_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    roles: list[str] = Field(default_factory=list)
    models: list[str] | None = Field(None, description="models this key may use (default: all)")
    decisions: list[str] | None = Field(None, description="decisions this key may be routed by (default: all)")
    rpm: int | None = Field(None, ge=1, description="requests per minute")
    tpm: int | None = Field(None, ge=1, description="tokens (prompt + completion) per minute")
    budget_usd_day: float | None = Field(None, ge=0)
    budget_usd_month: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_secret(self):
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of `key` or `key_sha256`")
        return self

    def digest(self) -> str:
        import hashlib

        if self.key_sha256:
            return self.key_sha256
        return hashlib.sha256(self.key.get_secret_value().encode()).hexdigest()  # type: ignore[union-attr]


class AuthConfig(Strict):
    keys: list[ApiKeyConfig] = Field(default_factory=list)
    key_file: str | None = Field(None, description="a YAML list of keys (same fields), relative to the config file")
    admin_key: SecretStr | None = Field(None, description="for /v1/route and admin endpoints; e.g. env:TURNOUT_ADMIN_KEY")
    admin_key_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    reserve_output_tokens: int = Field(
        1024, ge=0, description="output tokens a request without max_tokens (or max_completion_tokens) reserves "
        "against tpm and budgets until its answer settles them")
    protect: list[Literal["models", "metrics", "readyz", "openapi"]] = Field(
        default_factory=list, description="endpoints that are open by default and should need a key here: "
        "models takes any API key (or the admin key); metrics, readyz and openapi take the admin key")


class StateConfig(Strict):
    """Where counters shared by several turnout processes live (rate limits, budgets)."""

    store: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "turnout"


class ResponsesConfig(Strict):
    """Responses kept for `previous_response_id` and GET /v1/responses/{id} (where `state.store` says: this
    process's memory, or Redis shared by every process)."""

    ttl_s: float = Field(30 * 86400, gt=0, description="a stored response is forgotten this long after it was made")
    max_stored: int = Field(10_000, ge=1, description="memory store only: the most responses kept; the oldest go "
                                                      "first (Redis keeps each until its TTL)")


class OutcomesConfig(Strict):
    """A record of every routed request (decision, model, scores, cost, latency), kept where `state.store` says,
    listed by GET /v1/router/outcomes, rated by POST /v1/feedback and fed to online selectors."""

    enabled: bool = Field(True, description="write a record for every routed request")
    store_prompt: bool = Field(False, description="keep the last user message in the record, PII-redacted "
                                                  "(off: a record holds no request text)")
    ttl_s: float = Field(7 * 86400, gt=0, description="Redis store: a record is forgotten this long after it "
                                                      "was written")
    max_records: int = Field(10_000, ge=1, description="memory store only: the most records kept (about 1 KB "
                                                       "each), the oldest going first")
    backlog: int = Field(10_000, ge=1, description="records waiting to be written; beyond it new ones are "
                                                   "dropped (and counted) rather than slowing requests")


class ObservabilityConfig(Strict):
    """OpenTelemetry traces (docs/tracing.md): a span per request, signal, decision, selection, plugin hook and
    upstream attempt, exported over OTLP/HTTP (protobuf). No endpoint: off, and free."""

    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP collector URL (http://host:4318); with no path, /v1/traces is appended")
    service_name: str = Field("turnout", min_length=1, description="the traces' service.name")
    sample_ratio: float = Field(1.0, ge=0, le=1, description="share of new traces kept; a client's traceparent "
                                                             "decides for the requests it sends")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="sent with every export (a "
                                                                             "collector's auth token)")
    batch_delay_s: float = Field(2.0, gt=0, le=60, description="spans are exported in batches at least this often")
    export_timeout_s: float = Field(10.0, gt=0, le=120, description="one export's time limit")

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ValueError("must be an http:// or https:// URL, such as http://127.0.0.1:4318")
        return value

    def traces_url(self) -> str:
        assert self.otlp_endpoint is not None
        base = self.otlp_endpoint.rstrip("/")
        return base if re.match(r"https?://[^/]+/", base) else base + "/v1/traces"


class Config(Strict):
    _load_warnings: list[Any] = PrivateAttr(default_factory=list)
    _base_dir: str | None = PrivateAttr(default=None)  # the config file's folder: relative paths start there
    server: ServerConfig = Field(default_factory=ServerConfig)
    models: dict[HeaderSafeName, ModelConfig] = Field(min_length=1)
    signals: dict[str, SignalConfig] = Field(default_factory=dict)
    decisions: list[DecisionConfig] = Field(default_factory=list)
    plugins: list[PluginConfig] = Field(default_factory=list, description="run on every request, before a decision's")
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    auth: AuthConfig | None = Field(None, description="no auth section: no API keys are required")
    state: StateConfig = Field(default_factory=StateConfig)
    responses: ResponsesConfig = Field(default_factory=ResponsesConfig)
    outcomes: OutcomesConfig = Field(default_factory=OutcomesConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)

    @property
    def load_warnings(self) -> list[Any]:
        """Non-fatal problems found while loading (ConfigIssue with severity 'warning')."""
        return self._load_warnings

    def resolve_path(self, path: str | None) -> str | None:
        """A path from the config (an artifact): `builtin:NAME` and absolute paths as they are; a relative path
        from the config file's folder (from the working directory for a config not read from a file)."""
        import os

        if path is None or path.startswith("builtin:") or os.path.isabs(path) or self._base_dir is None:
            return path
        return os.path.join(self._base_dir, path)

    def effective_decisions(self) -> list[DecisionConfig]:
        """The configured decisions; with none, one default decision over every model."""
        if self.decisions:
            return self.decisions
        chat = [name for name, model in self.models.items() if not model.embeddings]  # decisions route chat
        return [DecisionConfig(name="default", models=chat or list(self.models))]
