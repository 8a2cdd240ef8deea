"""Cost against a baseline: what the recorded traffic cost, and what the same tokens would have cost on each
decision's dearest model ("the same traffic on the strongest model would have cost …"); and the model mix
over time (records per second per model, the last `MIX_S` seconds).

Folded incrementally from the outcome records (every replica's, with a Redis store): each update reads only the
records newer than the last it saw (less a margin for records a replica's writer queued a moment late), so a
dashboard open for a day does not rescan the day every second. Nothing is added to the request path."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from turnout.outcomes import Outcome
from turnout.pipeline import Router
from turnout.state.outcomes import OutcomeQuery, StoreUnavailable

LATE_S = 5.0  # a Redis store's writer lingers and batches: a record may land this long after its time
FIRST_SCAN = 20_000  # records the first fold reads at most (a store holding more: the newest of them)
MIX_S = 300  # seconds of model mix kept
YIELD_EVERY = 1000  # records folded between two turns of the event loop


@dataclass
class Ledger:
    records: int = 0
    cost_usd: float = 0.0
    baseline_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "cost_usd": round(self.cost_usd, 9),
                "baseline_usd": round(self.baseline_usd, 9),
                "saved_usd": round(self.baseline_usd - self.cost_usd, 9)}


def dearest(router: Router, decision: str | None, prompt_tokens: int, completion_tokens: int) -> tuple[str, float]:
    """The decision's model that would have charged most for these tokens, and that price. A record with no
    decision that is configured now (direct requests, a decision removed by a reload): its own model."""
    config = router.config
    compiled = router.decisions.get(decision or "")
    names = [m for m in compiled.config.models if m in config.models] if compiled is not None else []
    if not names:
        return "", -1.0
    priced = [(config.models[m].cost.usd(prompt_tokens, completion_tokens), m) for m in names]
    usd, model = max(priced)
    return model, usd


class Savings:
    """The running totals and the per-second mix; `update` folds in what arrived since the last call (one at
    a time)."""

    def __init__(self, since: float) -> None:
        self.since = since
        self.total = Ledger()
        self.by_decision: dict[str, Ledger] = {}
        self.baseline_model: dict[str, str] = {}
        self.available = True
        self.mix: dict[int, dict[str, int]] = {}  # whole second → model → records
        self._mark: float | None = None
        self._seen: dict[str, float] = {}  # request id → time, for records inside the late margin
        self._lock = asyncio.Lock()

    async def update(self, router: Router) -> None:
        async with self._lock:
            start = self.since if self._mark is None else max(self.since, self._mark - LATE_S)
            limit = FIRST_SCAN if self._mark is None else None
            newest = self._mark or 0.0
            try:
                folded = 0
                async for o in router.outcomes.scan(OutcomeQuery(since=start, limit=1000), max_scan=limit):
                    folded += 1
                    if folded % YIELD_EVERY == 0:  # the first fold of a full memory store: let requests run
                        await asyncio.sleep(0)
                    if o.request_id not in self._seen:
                        self._fold(router, o)
                        self._seen[o.request_id] = o.time
                    newest = max(newest, o.time)
            except StoreUnavailable:
                self.available = False
                return
            self.available = True
            self._mark = newest or time.time()
            cutoff = self._mark - 2 * LATE_S
            self._seen = {rid: t for rid, t in self._seen.items() if t >= cutoff}
            oldest = int(time.time()) - MIX_S
            self.mix = {second: models for second, models in self.mix.items() if second > oldest}

    def _fold(self, router: Router, o: Outcome) -> None:
        model, baseline = dearest(router, o.decision, o.prompt_tokens, o.completion_tokens)
        if baseline < 0:
            baseline = o.cost_usd
        key = o.decision or "(direct)"
        ledger = self.by_decision.setdefault(key, Ledger())
        for account in (ledger, self.total):
            account.records += 1
            account.cost_usd += o.cost_usd
            account.baseline_usd += max(baseline, o.cost_usd)  # a plan's several calls may cost more than one
        if model:
            self.baseline_model[key] = model
        if o.time > time.time() - MIX_S:
            second = self.mix.setdefault(int(o.time), {})
            second[o.model or "none"] = second.get(o.model or "none", 0) + 1

    def series(self, now: float) -> list[dict[str, Any]]:
        """Records per second per model, one point per second of the last MIX_S (empty seconds too, so a
        chart falls to zero), from the first second with a record."""
        if not self.mix:
            return []
        start, end = max(min(self.mix), int(now) - MIX_S + 1), int(now)
        return [{"t": second, "models": dict(self.mix.get(second, {}))} for second in range(start, end + 1)]

    def as_dict(self) -> dict[str, Any]:
        return self.total.as_dict() | {
            "since": self.since, "available": self.available,
            "by_decision": {name: ledger.as_dict() | {"baseline_model": self.baseline_model.get(name)}
                            for name, ledger in sorted(self.by_decision.items())}}
