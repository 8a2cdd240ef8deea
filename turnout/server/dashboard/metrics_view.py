"""The dashboard's view of the Prometheus metrics: totals per model and decision, latency and TTFT percentiles
from the histograms, cache outcomes and errors. Read from the same registry `/metrics` exports, when asked, so
the numbers match a scrape of this process and a request pays nothing for the dashboard."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class Totals:
    """The counters and histograms the dashboard reads, summed over the labels it does not show."""

    requests: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (decision, model, status)
    cost: dict[tuple[str, str], float] = field(default_factory=dict)  # (decision, model)
    tokens: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, kind)
    cache: dict[str, float] = field(default_factory=dict)  # result → count
    upstream_errors: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, code)
    # model → {upper bound: cumulative count}, summed over decisions
    latency: dict[str, dict[float, float]] = field(default_factory=lambda: defaultdict(dict))
    ttft: dict[str, dict[float, float]] = field(default_factory=lambda: defaultdict(dict))


def _families() -> Any:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several workers: their files added up, as /metrics does
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry.collect()
    return REGISTRY.collect()


def _add(table: dict[Any, float], key: Any, value: float) -> None:
    table[key] = table.get(key, 0.0) + value


def read_totals() -> Totals:
    """One pass over the registry (file reads with several workers: call it off the event loop)."""
    t = Totals()
    for family in _families():
        if not family.name.startswith("turnout_"):
            continue
        for s in family.samples:
            labels, value = s.labels, s.value
            if s.name == "turnout_requests_total":
                _add(t.requests, (labels["decision"], labels["model"], labels["status"]), value)
            elif s.name == "turnout_cost_usd_total":
                _add(t.cost, (labels["decision"], labels["model"]), value)
            elif s.name == "turnout_tokens_total":
                _add(t.tokens, (labels["model"], labels["kind"]), value)
            elif s.name == "turnout_cache_total":
                _add(t.cache, labels["result"], value)
            elif s.name == "turnout_upstream_errors_total":
                _add(t.upstream_errors, (labels["model"], labels["code"]), value)
            elif s.name == "turnout_request_duration_seconds_bucket":
                _add(t.latency[labels["model"]], float(labels["le"]), value)
            elif s.name == "turnout_time_to_first_token_seconds_bucket":
                _add(t.ttft[labels["model"]], float(labels["le"]), value)
    return t


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket the rank falls in; the highest finite bound
    when it falls in +Inf; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def percentiles(buckets: dict[float, float]) -> dict[str, Any]:
    count = buckets.get(math.inf, 0.0)
    out: dict[str, Any] = {"count": int(count)}
    for q in QUANTILES:
        value = quantile(q, buckets)
        out[f"p{round(q * 100)}"] = None if value is None else round(value, 6)
    return out


def is_error(status: str) -> bool:
    return not status.startswith("2")
