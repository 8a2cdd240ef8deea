"""Semantic cache: answer a request from an earlier answer to the same question, asked the same way (exact,
after normalisation) or in other words (the request embedding within `threshold` of a cached prompt's).

What must match exactly, as the cache's *bucket*: the tenant (API key, and the `tenant_header` if set), the
decision, the model, every message but the last user message (system prompt, history), and the sampling
parameters. Only the last user message is compared by meaning: the embedding (a static model, about half a
millisecond of CPU at 200 tokens, so a miss costs next to nothing) finds the nearest cached prompts, and a hit
must also pass the `judge` (same_question): no other numbers, no negation on one side only, no content word
swapped for another, and, when the question is asked the same way, the same content words in the same order —
the near misses an embedding alone cannot tell apart. The judge is rules (µs for a short question, ~65 µs
at 200 tokens), run only on the candidates above the threshold.

Skipped (x-turnout-cache: skip): tools or functions, n > 1, an explicit temperature above `max_temperature`,
images or audio, prompts over `max_prompt_chars`, and requests with `x-turnout-cache: off` or body `cache:
false`. A request may also ask for less (see `Wanted`): not to be answered from the cache (`no-cache`: the fresh
answer is still stored), not to be stored (`no-store`), a shorter lifetime for its answer (`ttl`), or only a
recent answer (`s-maxage` / `max-age`). A cache failure (Redis down) is a miss: the request goes on."""

from __future__ import annotations

import hashlib
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from turnout.completions import assemble_completion
from turnout.context import RoutingContext
from turnout.jsonutil import dumps
from turnout.models.encoders import ENCODERS
from turnout.models.request import request_embedding
from turnout.params import Params
from turnout.plugins.base import Plugin, register
from turnout.plugins.same_question import JUDGES, is_one_word, judge, synonym_forms
from turnout.state.cache import CacheEntry, CacheStore, StoreUnavailable, cache_store

HEADER = "x-turnout-cache"
KEY_HEADER = "x-turnout-cache-key"  # the entry that answered, or that will hold this answer: DELETE /v1/cache/KEY
NOTE = "plugin:semantic_cache"  # the pending entry of this request, between before and after
_SAMPLING = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "response_format", "stop", "seed",
             "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "reasoning_effort")
_CACHEABLE_FINISH = {"stop", "length"}


class SemanticCacheParams(Params):
    threshold: float = Field(0.8, ge=0.5, le=1.0, description="least cosine similarity for a semantic hit")
    signal_thresholds: dict[str, float] = Field(default_factory=dict, description=(
        "a stricter or looser threshold while a signal matched, e.g. {code: 0.95}; the strictest applies"))
    semantic: bool = Field(True, description="false: exact (normalised) matches only")
    synonyms: list[list[str]] = Field(default_factory=list, description=(
        "groups of words that mean the same here, e.g. [[kubernetes, k8s], [cancel, stop]]: a question asked the "
        "same way with one of them for another is still the same question"))
    encoder: Literal[ENCODERS] = Field(  # type: ignore[valid-type]
        "minilm-static", description="embeds the last user message (minilm-onnx: ~80x the CPU per miss)")
    judge: Literal[JUDGES] = Field(  # type: ignore[valid-type]
        "strict", description=(
            "strict: a content word swapped for another (key / value, enable / disable) is another question, in "
            "any wording; frame: only when the question is asked the same way (more hits, fewer right ones)"))
    candidates: int = Field(8, ge=1, le=64, description="nearest cached prompts the judge looks at")
    ttl_s: float = Field(3600.0, gt=0)
    max_entries: int = Field(10_000, ge=1)
    max_entry_bytes: int = Field(262_144, ge=1024, description="larger responses are not cached")
    max_prompt_chars: int = Field(8_000, ge=1)
    max_temperature: float = Field(0.0, ge=0, description="requests with a higher explicit temperature skip the cache")
    store: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: str = Field("turnout:cache", min_length=1)
    tenant_header: str | None = Field(
        None, description="a request header that further scopes entries, e.g. x-tenant-id")

    @field_validator("synonyms")
    @classmethod
    def _one_word_each(cls, groups: list[list[str]]) -> list[list[str]]:
        for group in groups:
            if len(group) < 2:
                raise ValueError(f"a synonym group needs two words or more, got {group}")
            if bad := [w for w in group if not is_one_word(w)]:
                raise ValueError(f"synonyms are single words (no spaces or digits first): {bad}")
        return groups


def normalise(text: str) -> str:
    """Case, Unicode form, spacing and trailing punctuation do not change a question."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.split()).rstrip(" ?!.。？！")


class CacheRequest(BaseModel):
    """The body's `cache` field, LiteLLM's shape; turnout takes it out of the body before forwarding."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    no_cache: StrictBool = Field(False, alias="no-cache")  # do not answer from the cache (the answer may be stored)
    no_store: StrictBool = Field(False, alias="no-store")  # do not store this answer
    ttl: float | None = Field(None, gt=0)  # keep this answer at most this many seconds
    s_maxage: float | None = Field(None, ge=0, alias="s-maxage")  # accept only a cached answer at most this old


@dataclass(frozen=True)
class Wanted:
    """What one request asks of the cache: from `x-turnout-cache: off`, `cache-control` (no-cache, no-store,
    max-age=N) and the body's `cache` (false, or LiteLLM's {no-cache, no-store, ttl, s-maxage})."""
    lookup: bool = True
    store: bool = True
    ttl_s: float | None = None
    max_age_s: float | None = None

    def accepts(self, entry: CacheEntry | None) -> bool:
        return entry is not None and (self.max_age_s is None or time.time() - entry.created <= self.max_age_s)

    @classmethod
    def of(cls, ctx: RoutingContext) -> Wanted:
        if (ctx.headers.get(HEADER) or "").strip().lower() in ("off", "false", "no", "skip", "0"):
            return cls(lookup=False, store=False)
        directives = {d.strip().partition("=")[0]: d.strip().partition("=")[2]
                      for d in (ctx.headers.get("cache-control") or "").lower().split(",")}
        lookup, store = "no-cache" not in directives, "no-store" not in directives
        max_age = _seconds(directives.get("max-age"))
        asked = ctx.controls.get("cache")  # validated with the request body
        if asked is False:
            return cls(lookup=False, store=False)
        if not isinstance(asked, dict):
            return cls(lookup, store, None, max_age)
        asked = CacheRequest.model_validate(asked)
        return cls(lookup and not asked.no_cache, store and not asked.no_store, asked.ttl,
                   asked.s_maxage if asked.s_maxage is not None else max_age)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _has_media(messages: list[Any]) -> bool:
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") not in (None, "text")
                                             for p in content):
            return True
    return False


@register("semantic_cache")
class SemanticCachePlugin(Plugin):
    Params = SemanticCacheParams

    def __init__(self, params: SemanticCacheParams) -> None:
        super().__init__(params)
        self.synonyms = synonym_forms(params.synonyms)

    def store(self) -> CacheStore:
        p = self.params
        return cache_store(p.store, url=p.redis_url, namespace=p.namespace, max_entries=p.max_entries)

    def referenced_signals(self) -> list[str]:
        return sorted(self.params.signal_thresholds)

    def skip_reason(self, ctx: RoutingContext, wanted: Wanted) -> str | None:
        body, p = ctx.body, self.params
        if not (wanted.lookup or wanted.store):
            return "the request asked not to be cached"
        if body.get("tools") or body.get("functions"):
            return "tools"
        if int(body.get("n") or 1) != 1:
            return "n > 1"
        temperature = body.get("temperature")
        if isinstance(temperature, (int, float)) and temperature > p.max_temperature:
            return f"temperature {temperature} > {p.max_temperature}"
        if _has_media(ctx.messages):
            return "images or audio"
        text = ctx.text("last_user")
        if not text.strip():
            return "no user message"
        if len(text) > p.max_prompt_chars:
            return "prompt too long"
        return None

    def _bucket(self, ctx: RoutingContext) -> str:
        messages = ctx.messages
        last_user = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
                        default=-1)
        context = [m for i, m in enumerate(messages) if i != last_user]
        tenant = ctx.caller.key_id
        if self.params.tenant_header:
            tenant += "|" + ctx.headers.get(self.params.tenant_header.lower(), "")
        sampling = {k: ctx.body[k] for k in _SAMPLING if k in ctx.body}
        scope = [tenant, ctx.decision, ctx.model, context, sampling, self.params.encoder]
        return hashlib.sha256(dumps(scope)).hexdigest()[:32]

    def _threshold(self, ctx: RoutingContext) -> float:
        matched = [t for name, t in self.params.signal_thresholds.items()
                   if (r := ctx.signals.get(name)) is not None and r.matched]
        return max(matched, default=self.params.threshold)

    async def before(self, ctx: RoutingContext) -> dict[str, Any] | None:
        wanted = Wanted.of(ctx)
        if self.skip_reason(ctx, wanted) is not None:
            ctx.response_headers[HEADER] = "skip"
            return None
        text = ctx.text("last_user")  # as written: case matters to the fact checks (World War II vs I)
        bucket = self._bucket(ctx)
        key = hashlib.sha256(f"{bucket}\n{normalise(text)}".encode("utf-8", "replace")).hexdigest()[:40]
        ctx.cache[NOTE] = None  # what after() is to store: nothing, unless the request lets it
        if wanted.store:
            ttl = min(wanted.ttl_s or self.params.ttl_s, self.params.ttl_s)
            ctx.cache[NOTE] = {"bucket": bucket, "key": key, "prompt": text, "vector": None, "ttl_s": ttl}
            ctx.response_headers[KEY_HEADER] = key
        if not wanted.lookup:  # no-cache: not consulted, but the fresh answer is stored
            ctx.response_headers[HEADER] = "skip"
            return None
        ctx.response_headers[HEADER] = "miss"
        store = self.store()
        try:
            entry = await store.get(key)
            if wanted.accepts(entry):
                return self._hit(ctx, entry, "exact", 1.0)
            if not self.params.semantic:
                return None
            vector = await request_embedding(ctx, self.params.encoder, "last_user")
            if ctx.cache[NOTE]:
                ctx.cache[NOTE]["vector"] = vector
            threshold = self._threshold(ctx)
            candidates = await store.nearest(bucket, vector, self.params.candidates)
            near = [(k, s) for k, s in candidates if s >= threshold]
            for (k, similarity), entry in zip(near, await store.get_many([k for k, _ in near])):
                if (wanted.accepts(entry) and entry.bucket == bucket
                        and judge(self.params.judge, entry.prompt, text, self.synonyms)):
                    return self._hit(ctx, entry, "semantic", similarity)
        except StoreUnavailable:
            ctx.cache[NOTE] = None  # the store is down: a miss, and nothing to store
            ctx.response_headers.pop(KEY_HEADER, None)
        return None

    def _hit(self, ctx: RoutingContext, entry: CacheEntry, kind: str, similarity: float) -> dict[str, Any]:
        ctx.response_headers[HEADER] = "hit"
        ctx.response_headers[KEY_HEADER] = entry.key
        ctx.response_headers["x-turnout-cache-similarity"] = f"{similarity:.4f}"
        ctx.cache[NOTE] = None
        return {**entry.response, "turnout_cache": {"hit": kind, "similarity": round(similarity, 4),
                                                    "age_s": round(time.time() - entry.created, 3)}}

    async def after(self, ctx: RoutingContext, response: dict[str, Any]) -> dict[str, Any]:
        await self._store_response(ctx, response)
        return response

    def wrap_stream(self, ctx: RoutingContext, batches: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
        if not ctx.cache.get(NOTE):
            return batches
        return self._recording(ctx, batches)

    async def _recording(self, ctx: RoutingContext, batches: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
        chunks: list[str] = []
        size = 0
        async for batch in batches:
            size += sum(len(c) for c in batch)
            if size <= self.params.max_entry_bytes * 4:
                chunks.extend(batch)
            yield batch
        # the stream finished cleanly (an upstream failure raised out of the loop above): keep it whole
        response = assemble_completion(chunks) if size <= self.params.max_entry_bytes * 4 else None
        if response is not None:
            await self._store_response(ctx, response)

    async def _store_response(self, ctx: RoutingContext, response: dict[str, Any]) -> None:
        pending = ctx.cache.get(NOTE)
        if not pending:
            return
        ctx.cache[NOTE] = None
        choices = response.get("choices") or []
        if not choices or any(c.get("finish_reason") not in _CACHEABLE_FINISH
                              or (c.get("message") or {}).get("tool_calls") for c in choices):
            return
        kept = {k: v for k, v in response.items() if k not in ("turnout_cache",)}
        if len(dumps(kept)) > self.params.max_entry_bytes:
            return
        vector = pending["vector"]
        if vector is None and self.params.semantic:
            vector = await request_embedding(ctx, self.params.encoder, "last_user")
        now = time.time()
        entry = CacheEntry(pending["key"], pending["bucket"], pending["prompt"], kept, now, now + pending["ttl_s"])
        try:
            await self.store().put(entry, vector if self.params.semantic else None)
        except StoreUnavailable:
            pass


def cache_stores(plugins: list[Plugin]) -> list[CacheStore]:
    """The distinct stores of these plugins' semantic caches."""
    stores: dict[int, CacheStore] = {}
    for plugin in plugins:
        if isinstance(plugin, SemanticCachePlugin):
            store = plugin.store()
            stores[id(store)] = store
    return list(stores.values())
