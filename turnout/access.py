"""API keys, their roles and permissions, and their limits: requests and tokens per minute and USD budgets per
UTC day and month. Keys are kept only as SHA-256 digests (from `auth.keys` or `auth.key_file`); a presented
key is hashed and looked up. Counters live in the state layer, so several processes share them via Redis.

Without an `auth` section turnout is open (every caller is "anonymous"). With one, a request needs a known key
(`Authorization: Bearer KEY`, or `x-api-key` / `api-key`): 401 otherwise; 403 for a model or decision the
key may not use; 429 with Retry-After when a limit is reached.

A request's limits are taken in two atomic steps: `admit_request` (before the body is read) counts it against
`rpm` and refuses it if a token or budget window is already full; `reserve` (once routed, when the model and
so the price are known) reserves its estimated tokens and cost, which `settle` replaces by the actual ones and
`release` gives back (a failure, a cache hit). Parallel requests therefore see each other's reservations and
cannot overshoot a limit by more than one request's estimate."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from turnout.config import ApiKeyConfig, Config, ConfigError, ConfigIssue, parse_yaml
from turnout.config.issues import from_validation_error
from turnout.context import Caller, usage_count
from turnout.errors import AuthenticationError, PermissionDenied, RateLimited
from turnout.state.counters import Limit, counters
from turnout.state.redis import StoreUnavailable

MINUTE_TTL_S, DAY_TTL_S, MONTH_TTL_S = 120, 2 * 86400, 32 * 86400


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def presented_key(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or headers.get("api-key") or None


def _seconds_to_next_day(now: dt.datetime) -> int:
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()))


def _seconds_to_next_month(now: dt.datetime) -> int:
    first = (now.replace(day=28) + dt.timedelta(days=4)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((first - now).total_seconds()))


@dataclass(frozen=True)
class Estimate:
    """What a request may cost at most, as far as it can be told before the answer."""

    prompt_tokens: int
    tokens: int  # prompt + the most output it may get
    cost_usd: float


@dataclass
class Reservation:
    """What a request holds against its key's tokens per minute and budgets until settled or released; it
    stays in the windows it was admitted in."""

    tokens: int
    cost_usd: float
    token_counters: tuple[str, ...]
    usd_counters: tuple[str, ...]
    open: bool = True


class _Windows:
    """The counter names of one key at one moment. The key's name is a Redis hash tag, so one script may touch
    all of a key's counters on a Redis Cluster."""

    def __init__(self, key: ApiKeyConfig, now: dt.datetime) -> None:
        self.now = now
        tag = "{" + key.name + "}"
        self.rpm = f"{tag}:rpm:{now:%Y%m%d%H%M}"
        self.tpm = f"{tag}:tpm:{now:%Y%m%d%H%M}"
        self.day = f"{tag}:usd:{now:%Y%m%d}"
        self.month = f"{tag}:usd:{now:%Y%m}"

    def refusal(self, key: ApiKeyConfig, name: str) -> RateLimited:
        to_next_minute = str(60 - self.now.second)
        if name == self.day:
            return RateLimited(f"the daily budget of ${key.budget_usd_day:g} for this key is spent",
                               code="budget_exceeded", headers={"retry-after": str(_seconds_to_next_day(self.now))})
        if name == self.month:
            return RateLimited(f"the monthly budget of ${key.budget_usd_month:g} for this key is spent",
                               code="budget_exceeded", headers={"retry-after": str(_seconds_to_next_month(self.now))})
        if name == self.tpm:
            return RateLimited(f"this key's limit of {key.tpm} tokens per minute is reached",
                               headers={"retry-after": to_next_minute})
        return RateLimited(f"this key's limit of {key.rpm} requests per minute is reached",
                           headers={"retry-after": to_next_minute})


def _limits(key: ApiKeyConfig, w: _Windows, estimate: Estimate | None) -> list[Limit]:
    """Budgets first, then tokens, then requests: the first refusal is the one the caller is told. Without an
    estimate (before the body is read) a full window refuses and only the request is counted."""
    tokens = estimate.tokens if estimate else 0
    usd = estimate.cost_usd if estimate else 0.0
    limits = []
    if key.budget_usd_day is not None:
        limits.append(Limit(w.day, key.budget_usd_day, 0.0, usd, DAY_TTL_S))
    if key.budget_usd_month is not None:
        limits.append(Limit(w.month, key.budget_usd_month, 0.0, usd, MONTH_TTL_S))
    if key.tpm:
        limits.append(Limit(w.tpm, key.tpm, estimate.prompt_tokens if estimate else 0, tokens, MINUTE_TTL_S))
    if key.rpm and estimate is None:
        limits.append(Limit(w.rpm, key.rpm, 1, 1, MINUTE_TTL_S))
    return limits


class AccessControl:
    def __init__(self, config: Config, keys: list[ApiKeyConfig], admin_digest: str | None) -> None:
        self.enabled = config.auth is not None
        self.state = config.state
        self.models = config.models
        self.reserve_output_tokens = config.auth.reserve_output_tokens if config.auth else 0
        self.by_digest = {k.digest(): k for k in keys}
        self.admin_digest = admin_digest
        self._settling: set[asyncio.Task] = set()

    @classmethod
    def build(cls, config: Config, issues: list[ConfigIssue]) -> AccessControl:
        auth = config.auth
        keys: list[tuple[str, ApiKeyConfig]] = [(f"auth.keys[{i}]", k) for i, k in enumerate(auth.keys)] if auth else []
        path: Path | None = None
        if auth and auth.key_file:
            path = Path(config.resolve_path(auth.key_file) or auth.key_file)
            try:
                # parse_yaml names the line and the problem only: a YAMLError's text quotes the line, a key in it
                raw = parse_yaml(path.read_text(encoding="utf-8"), source=str(path)) or []
                listed = TypeAdapter(list[ApiKeyConfig]).validate_python(raw)
                keys += [(f"auth.key_file:[{i}]", k) for i, k in enumerate(listed)]
            except OSError as exc:
                issues.append(ConfigIssue("auth.key_file", f"cannot read {path}: {exc.strerror or exc}"))
            except ConfigError as exc:
                issues += [ConfigIssue("auth.key_file", i.message) for i in exc.issues]
            except ValidationError as exc:
                issues += [ConfigIssue(f"auth.key_file:{i.path}", i.message) for i in from_validation_error(exc)]
        issues += _key_issues(config, keys, path)
        admin = None
        if auth and auth.admin_key:
            admin = digest(auth.admin_key.get_secret_value())
        elif auth and auth.admin_key_sha256:
            admin = auth.admin_key_sha256
        return cls(config, [k for _, k in keys], admin)

    # ----- who ------------------------------------------------------------------------------------------
    def authenticate(self, headers: dict[str, str]) -> tuple[Caller, ApiKeyConfig | None]:
        if not self.enabled:
            return Caller(), None
        key = presented_key(headers)
        if key is None:
            raise AuthenticationError("missing API key: send `Authorization: Bearer <key>`")
        found = self.by_digest.get(digest(key))
        if found is None:
            raise AuthenticationError("invalid API key")
        return Caller(found.name, tuple(found.roles), found.models, found.decisions), found

    def require_admin(self, headers: dict[str, str]) -> None:
        if not self.enabled:
            return
        key = presented_key(headers)
        if key is None or self.admin_digest is None or not hmac.compare_digest(digest(key), self.admin_digest):
            raise AuthenticationError("this endpoint needs the admin key", code="admin_key_required")

    # ----- limits ---------------------------------------------------------------------------------------
    def _counters(self):
        return counters(self.state.store, self.state.redis_url, self.state.namespace)

    async def admit_request(self, key: ApiKeyConfig | None) -> None:
        """Count the request against `rpm`; refuse it (429) over `rpm` or when a token or budget window is
        already full. Needs no body, so it can run before the body is read."""
        if key is None or not _limited(key):
            return
        w = _Windows(key, dt.datetime.now(dt.UTC))
        limits = _limits(key, w, None)
        try:
            refused = await self._counters().reserve(limits)
        except StoreUnavailable:
            return  # availability first; the counters logged it
        if refused is not None:
            raise w.refusal(key, limits[refused].name)

    def estimate(self, body: dict[str, Any], prompt_tokens: int, models: Iterable[str]) -> Estimate:
        """The most a request may use: its prompt plus `max_completion_tokens` / `max_tokens` (else
        `auth.reserve_output_tokens`) for each of its `n` choices, at the dearest price among the models it
        may be answered by (the chosen one and its fallbacks)."""
        asked = [v for v in (body.get("max_completion_tokens"), body.get("max_tokens"))
                 if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
        n = body.get("n")
        choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
        output = (max(asked) if asked else self.reserve_output_tokens) * choices
        cost = max((self.models[m].cost.usd(prompt_tokens, output) for m in models if m in self.models), default=0.0)
        return Estimate(prompt_tokens, prompt_tokens + output, cost)

    @staticmethod
    def reserves(key: ApiKeyConfig | None) -> bool:
        """Whether `reserve` holds anything for this key (a token or budget limit): without one, the estimate
        need not be made."""
        return key is not None and bool(key.tpm or key.budget_usd_day is not None or key.budget_usd_month is not None)

    async def reserve(self, key: ApiKeyConfig | None, estimate: Estimate) -> Reservation | None:
        """Reserve the estimate against the key's tokens per minute and budgets, or refuse (429) when it does
        not fit: a window already full, or the prompt alone over what is left of `tpm`. None: nothing to hold
        (no such limit, or the store is down and the request goes through uncounted)."""
        if key is None or not self.reserves(key):
            return None
        if key.tpm and estimate.prompt_tokens > key.tpm:  # no Retry-After: waiting will not make it fit
            raise RateLimited(f"this request's prompt, about {estimate.prompt_tokens} tokens, is more than this "
                              f"key's limit of {key.tpm} tokens per minute", code="prompt_exceeds_tpm")
        w = _Windows(key, dt.datetime.now(dt.UTC))
        limits = _limits(key, w, estimate)
        try:
            refused = await self._counters().reserve(limits)
        except StoreUnavailable:
            return None  # availability first; the counters logged it
        if refused is not None:
            raise w.refusal(key, limits[refused].name)
        return Reservation(estimate.tokens, estimate.cost_usd, (w.tpm,) if key.tpm else (),
                           tuple(x.name for x in limits if x.name in (w.day, w.month)))

    async def settle(self, reservation: Reservation | None, tokens: int, cost_usd: float) -> None:
        """Replace what the request reserved by what it used (once; later calls do nothing)."""
        if reservation is None or not reservation.open:
            return
        reservation.open = False
        changes = [(name, tokens - reservation.tokens) for name in reservation.token_counters]
        changes += [(name, cost_usd - reservation.cost_usd) for name in reservation.usd_counters]
        try:
            await self._counters().adjust(changes)
        except StoreUnavailable:
            pass  # the reservation stays counted: the safe side of a budget

    async def release(self, reservation: Reservation | None) -> None:
        """Give the reservation back: the request failed, or a cache or a plugin answered it (they cost 0)."""
        await self.settle(reservation, 0, 0.0)

    def settle_later(self, reservation: Reservation | None, tokens: int = 0, cost_usd: float = 0.0) -> None:
        """`settle` from code that cannot await (a stream's end, a cleanup after a cancelled request)."""
        if reservation is None or not reservation.open:
            return
        task = asyncio.get_running_loop().create_task(self.settle(reservation, tokens, cost_usd))
        self._settling.add(task)  # a task nobody holds may be collected before it ran
        task.add_done_callback(self._settling.discard)

    @staticmethod
    def check_model(caller: Caller, model: str) -> None:
        if caller.models is not None and model not in caller.models:
            raise PermissionDenied(f"this key may not use the model '{model}'", code="model_not_allowed", param="model")


def per_process_limits(config: Config, processes: int) -> str | None:
    """Why `processes` workers must not serve this config, if they must not: memory counters are each
    process's own, so every worker would grant a key its whole rpm, tpm and budgets."""
    if processes < 2 or config.state.store != "memory" or config.auth is None:
        return None
    limited = sorted(k.name for k in AccessControl.build(config, []).by_digest.values() if _limited(k))
    if not limited:
        return None
    return (f"state.store: memory counts limits in each process, so {processes} workers would each grant the "
            f"keys with limits ({', '.join(limited[:3])}{', ...' if len(limited) > 3 else ''}) their whole rpm, "
            "tpm and budgets; set state.store: redis, or serve with one worker")


def _limited(key: ApiKeyConfig) -> bool:
    return bool(key.rpm or key.tpm or key.budget_usd_day is not None or key.budget_usd_month is not None)


def _key_issues(config: Config, keys: list[tuple[str, ApiKeyConfig]], key_file: Path | None) -> list[ConfigIssue]:
    """Each key needs its own secret and its own name: counters and cache entries are kept per name, so two
    keys of one name would share limits and each other's cached answers."""
    issues: list[ConfigIssue] = []
    by_digest: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for path, key in keys:
        where = f" (in {key_file})" if path.startswith("auth.key_file") else ""
        d = key.digest()
        if d in by_digest:
            issues.append(ConfigIssue(path, f"key '{key.name}'{where} is the same secret as {by_digest[d]}"))
        by_digest.setdefault(d, f"{path}{where} ('{key.name}')")
        if key.name in by_name:
            issues.append(ConfigIssue(f"{path}.name", f"'{key.name}'{where} is already the name of "
                                      f"{by_name[key.name]}; each key needs its own name (limits and cached "
                                      "answers are kept per name)"))
        by_name.setdefault(key.name, path + where)
        if path.startswith("auth.key_file"):
            issues += [ConfigIssue(f"{path}.models", f"key '{key.name}'{where}: unknown model '{m}'")
                       for m in key.models or [] if m not in config.models]
    return issues


def allowed(caller: Caller, names: list[str]) -> list[str]:
    return names if caller.models is None else [n for n in names if n in caller.models]


def usage_tokens(usage: dict[str, Any] | None, fallback: int) -> int:
    total = usage_count(usage, "total_tokens")
    if total is not None:
        return total
    return (usage_count(usage, "prompt_tokens") or 0) + (usage_count(usage, "completion_tokens") or 0) or fallback
