"""API keys, their roles and permissions, and their limits: requests and tokens per minute and USD budgets per
UTC day and month. Keys are kept only as SHA-256 digests (from `auth.keys` or `auth.key_file`); a presented
key is hashed and looked up. Counters live in the state layer, so several processes share them via Redis.

Without an `auth` section turnout is open (every caller is "anonymous"). With one, a request needs a known key
(`Authorization: Bearer KEY`, or `x-api-key` / `api-key`): 401 otherwise; 403 for a model or decision the
key may not use; 429 with Retry-After when a limit is reached."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from turnout.config import ApiKeyConfig, Config, ConfigIssue
from turnout.config.issues import from_validation_error
from turnout.context import Caller
from turnout.errors import AuthenticationError, PermissionDenied, RateLimited
from turnout.state.redis import StoreUnavailable
from turnout.state.counters import counters


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


class AccessControl:
    def __init__(self, config: Config, keys: list[ApiKeyConfig], admin_digest: str | None) -> None:
        self.enabled = config.auth is not None
        self.state = config.state
        self.by_digest = {k.digest(): k for k in keys}
        self.admin_digest = admin_digest

    @classmethod
    def build(cls, config: Config, issues: list[ConfigIssue]) -> "AccessControl":
        auth = config.auth
        keys: list[ApiKeyConfig] = list(auth.keys) if auth else []
        if auth and auth.key_file:
            path = Path(config.resolve_path(auth.key_file) or auth.key_file)
            try:
                raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
                keys += TypeAdapter(list[ApiKeyConfig]).validate_python(raw)
            except OSError as exc:
                issues.append(ConfigIssue("auth.key_file", f"cannot read {path}: {exc.strerror or exc}"))
            except yaml.YAMLError as exc:
                issues.append(ConfigIssue("auth.key_file", f"{path} is not valid YAML: {exc}"))
            except ValidationError as exc:
                issues += [ConfigIssue(f"auth.key_file:{i.path}", i.message) for i in from_validation_error(exc)]
        seen: dict[str, str] = {}
        for key in keys:
            d = key.digest()
            if d in seen:
                issues.append(ConfigIssue("auth.keys", f"keys '{seen[d]}' and '{key.name}' are the same key"))
            seen[d] = key.name
            for model in key.models or []:
                if model not in config.models and auth and key not in auth.keys:
                    issues.append(ConfigIssue("auth.key_file", f"key '{key.name}': unknown model '{model}'"))
        admin = None
        if auth and auth.admin_key:
            admin = digest(auth.admin_key.get_secret_value())
        elif auth and auth.admin_key_sha256:
            admin = auth.admin_key_sha256
        return cls(config, keys, admin)

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

    async def admit(self, key: ApiKeyConfig | None, prompt_tokens: int) -> None:
        """Count the request; refuse it (429) if it is over the key's rate or budget."""
        if key is None or not (key.rpm or key.tpm or key.budget_usd_day is not None or key.budget_usd_month is not None):
            return
        now = dt.datetime.now(dt.timezone.utc)
        minute = now.strftime("%Y%m%d%H%M")
        to_next_minute = 60 - now.second
        store = self._counters()
        try:
            if key.budget_usd_day is not None and await store.get(f"usd:{key.name}:{now:%Y%m%d}") >= key.budget_usd_day:
                raise RateLimited(f"the daily budget of ${key.budget_usd_day:g} for this key is spent",
                                  code="budget_exceeded", headers={"retry-after": str(_seconds_to_next_day(now))})
            if (key.budget_usd_month is not None
                    and await store.get(f"usd:{key.name}:{now:%Y%m}") >= key.budget_usd_month):
                raise RateLimited(f"the monthly budget of ${key.budget_usd_month:g} for this key is spent",
                                  code="budget_exceeded", headers={"retry-after": str(_seconds_to_next_month(now))})
            if key.tpm and await store.get(f"tpm:{key.name}:{minute}") + prompt_tokens > key.tpm:
                raise RateLimited(f"this key's limit of {key.tpm} tokens per minute is reached",
                                  headers={"retry-after": str(to_next_minute)})
            if key.rpm and await store.add(f"rpm:{key.name}:{minute}", 1, 120) > key.rpm:
                raise RateLimited(f"this key's limit of {key.rpm} requests per minute is reached",
                                  headers={"retry-after": str(to_next_minute)})
        except StoreUnavailable:
            pass  # availability first; the counters logged it

    async def record(self, key: ApiKeyConfig | None, tokens: int, cost_usd: float) -> None:
        """After an answer: its tokens and cost count against the key's limits."""
        if key is None or not (key.tpm or key.budget_usd_day is not None or key.budget_usd_month is not None):
            return
        now = dt.datetime.now(dt.timezone.utc)
        store = self._counters()
        try:
            if key.tpm:
                await store.add(f"tpm:{key.name}:{now:%Y%m%d%H%M}", tokens, 120)
            if key.budget_usd_day is not None:
                await store.add(f"usd:{key.name}:{now:%Y%m%d}", cost_usd, 2 * 86400)
            if key.budget_usd_month is not None:
                await store.add(f"usd:{key.name}:{now:%Y%m}", cost_usd, 32 * 86400)
        except StoreUnavailable:
            pass  # availability first; the counters logged it

    @staticmethod
    def check_model(caller: Caller, model: str) -> None:
        if caller.models is not None and model not in caller.models:
            raise PermissionDenied(f"this key may not use the model '{model}'", code="model_not_allowed", param="model")


def allowed(caller: Caller, names: list[str]) -> list[str]:
    return names if caller.models is None else [n for n in names if n in caller.models]


def usage_tokens(usage: dict[str, Any] | None, fallback: int) -> int:
    usage = usage or {}
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0) or fallback
