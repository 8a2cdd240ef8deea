"""The dashboard's summary: one JSON object that `GET /v1/dashboard/summary` returns and
`GET /v1/dashboard/events` sends every second (docs/dashboard.md describes each field).

Built on demand and shared: however many dashboards are open, the summary is computed at most once per
`REFRESH_S`, and a server nobody watches computes nothing. Rates and the model mix over time come from the
differences between successive summaries, kept in a ring of the last `HISTORY` ones; the model mix over time
from the outcome records (savings.py), so it covers every replica and the minutes before the page opened."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import deque
from typing import Any

from turnout import __version__
from turnout.pipeline import Router
from turnout.server.dashboard import metrics_view
from turnout.server.dashboard.budgets import key_usage
from turnout.server.dashboard.metrics_view import Totals, is_error, percentiles
from turnout.server.dashboard.savings import Savings
from turnout.server.holder import RouterHolder

REFRESH_S = 1.0
HISTORY = 300  # points of the rate series: five minutes at one a second
RATE_WINDOW_S = 10.0  # requests/s is averaged over about this long
# The cost baseline covers the records made since this process started (read when the app is built, which
# imports this module): Prometheus' counters, which the other totals come from, start then too.
PROCESS_STARTED = time.time()


class Board:
    def __init__(self, holder: RouterHolder) -> None:
        self.holder = holder
        self.started = PROCESS_STARTED
        self.savings = Savings(self.started)
        self._history: deque[tuple[float, dict[str, float]]] = deque(maxlen=HISTORY + 1)
        self._last: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def summary(self) -> dict[str, Any]:
        async with self._lock:
            if self._last is not None and time.time() - self._last["time"] < REFRESH_S * 0.9:
                return self._last
            self._last = await self._build(self.holder.router)
            return self._last

    async def _build(self, router: Router) -> dict[str, Any]:
        # several workers: the metric files are read from disk, which is blocking I/O
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            totals = await asyncio.to_thread(metrics_view.read_totals)
        else:
            totals = metrics_view.read_totals()
        now = time.time()
        per_model = _requests_by_model(totals)
        self._history.append((now, per_model))
        await self.savings.update(router)
        holder = self.holder
        return {
            "object": "dashboard.summary", "time": now, "version": __version__, "since": self.started,
            "config": {"generation": holder.generation, "rejected": holder.rejected,
                       "path": holder.path.name if holder.path is not None else None},
            "requests": _requests(totals) | {"per_second": self._rate(now)},
            "models": _models(router, totals),
            "decisions": _decisions(totals),
            "cost": {"total_usd": round(sum(totals.cost.values()), 9), "baseline": self.savings.as_dict()},
            "cache": _cache(totals),
            "errors": _errors(totals),
            "budgets": await key_usage(router),
            # the fleet's mix from the records (every replica's, with Redis); without records, this process's
            "series": self.savings.series(now) if router.config.outcomes.enabled else self._series(),
            "series_source": "records" if router.config.outcomes.enabled else "metrics",
            "outcomes_dropped": router.outcomes.dropped,
        }

    def _rate(self, now: float) -> float | None:
        """Requests per second over the last RATE_WINDOW_S of summaries (None until there are two)."""
        older = [(t, m) for t, m in self._history if now - t >= RATE_WINDOW_S] or list(self._history)[:1]
        t0, first = older[-1]
        if now - t0 <= 0:
            return None
        return round((sum(self._history[-1][1].values()) - sum(first.values())) / (now - t0), 4)

    def _series(self) -> list[dict[str, Any]]:
        """Requests per second per model between successive summaries, oldest first."""
        points = list(self._history)
        out = []
        for (t0, before), (t1, after) in itertools.pairwise(points):
            span = t1 - t0
            if span <= 0:
                continue
            out.append({"t": round(t1, 3), "models": {m: round((n - before.get(m, 0.0)) / span, 4)
                                                       for m, n in after.items() if n - before.get(m, 0.0) > 0}})
        return out


def _requests_by_model(t: Totals) -> dict[str, float]:
    out: dict[str, float] = {}
    for (_, model, _), n in t.requests.items():
        out[model] = out.get(model, 0.0) + n
    return out


def _requests(t: Totals) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    for (_, _, status), n in t.requests.items():
        by_status[status] = by_status.get(status, 0) + int(n)
    return {"total": sum(by_status.values()), "by_status": dict(sorted(by_status.items()))}


def _models(router: Router, t: Totals) -> dict[str, Any]:
    names = set(router.config.models) | {m for _, m, _ in t.requests if m != "none"}
    out: dict[str, Any] = {}
    for name in sorted(names):
        requests = sum(n for (_, m, _), n in t.requests.items() if m == name)
        errors = sum(n for (_, m, s), n in t.requests.items() if m == name and is_error(s))
        row: dict[str, Any] = {
            "requests": int(requests), "errors": int(errors),
            "cost_usd": round(sum(c for (_, m), c in t.cost.items() if m == name), 9),
            "tokens": {"prompt": int(t.tokens.get((name, "prompt"), 0)),
                       "completion": int(t.tokens.get((name, "completion"), 0))},
            "latency_s": percentiles(t.latency.get(name, {})), "ttft_s": percentiles(t.ttft.get(name, {})),
            "upstream_errors": {code: int(n) for (m, code), n in sorted(t.upstream_errors.items()) if m == name},
        }
        if name in router.config.models:  # a model a reload removed has numbers but no breaker any more
            health = router.dispatcher.health(name)
            row["breaker"] = health.breaker.state
            row["in_flight"] = health.stats.in_flight
        out[name] = row
    return out


def _decisions(t: Totals) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for (decision, model, _), n in t.requests.items():
        row = out.setdefault(decision, {"requests": 0, "cost_usd": 0.0, "models": {}})
        row["requests"] += int(n)
        row["models"][model] = row["models"].get(model, 0) + int(n)
    for (decision, _), c in t.cost.items():
        out.setdefault(decision, {"requests": 0, "cost_usd": 0.0, "models": {}})["cost_usd"] += c
    for row in out.values():
        row["cost_usd"] = round(row["cost_usd"], 9)
    return dict(sorted(out.items()))


def _cache(t: Totals) -> dict[str, Any]:
    hits, misses = t.cache.get("hit", 0.0), t.cache.get("miss", 0.0)
    return {"hit": int(hits), "miss": int(misses), "skip": int(t.cache.get("skip", 0.0)),
            "hit_rate": round(hits / (hits + misses), 6) if hits + misses else None}


def _errors(t: Totals) -> dict[str, Any]:
    by_status = {}
    for (_, _, status), n in t.requests.items():
        if is_error(status):
            by_status[status] = by_status.get(status, 0) + int(n)
    upstream: dict[str, int] = {}
    for (_, code), n in t.upstream_errors.items():
        upstream[code] = upstream.get(code, 0) + int(n)
    return {"requests": sum(by_status.values()), "by_status": dict(sorted(by_status.items())),
            "upstream": dict(sorted(upstream.items()))}
