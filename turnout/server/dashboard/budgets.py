"""Budget use per API key: the limit counters' current windows (requests and tokens this minute, USD today and
this month, UTC), read from the same store the limits use, so with Redis every replica's use is counted."""

from __future__ import annotations

import datetime as dt
from typing import Any

from turnout.access import _Windows  # the counters' names: one definition, in access.py
from turnout.config import ApiKeyConfig
from turnout.pipeline import Router
from turnout.state.counters import counters
from turnout.state.redis import StoreUnavailable

MAX_KEYS = 100  # one read per key each refresh; a key file of thousands shows its first keys by name


def _windows(key: ApiKeyConfig, w: _Windows) -> list[tuple[str, str, float]]:
    """(limit, counter name, cap) of each limit the key has."""
    found = [("rpm", w.rpm, key.rpm), ("tpm", w.tpm, key.tpm), ("budget_usd_day", w.day, key.budget_usd_day),
             ("budget_usd_month", w.month, key.budget_usd_month)]
    return [(limit, name, float(cap)) for limit, name, cap in found if cap is not None]


async def key_usage(router: Router) -> dict[str, Any]:
    keys = sorted(router.access.by_digest.values(), key=lambda k: k.name)
    state = router.config.state
    store = counters(state.store, state.redis_url, state.namespace)
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    try:
        for key in keys[:MAX_KEYS]:
            limits = _windows(key, _Windows(key, now))
            totals = await store.totals([name for _, name, _ in limits]) if limits else []
            row: dict[str, Any] = {"name": key.name}
            for (limit, _, cap), used in zip(limits, totals, strict=True):
                row[limit] = {"used": round(used, 9), "limit": cap, "share": round(used / cap, 6) if cap else None}
            rows.append(row)
    except StoreUnavailable:
        return {"available": False, "keys": rows, "total": len(keys)}
    return {"available": True, "keys": rows, "total": len(keys)}
