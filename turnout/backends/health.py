"""Live health of each backend: a circuit breaker and load/latency statistics (in-flight requests, EWMA of
latency and of time to first token). One registry per Router; a reload hands it on (models whose upstream did
not change keep their record). The `least_busy` and `latency` selectors read the statistics. With
`state.store: redis` the breakers of every replica act as one (turnout/state/breakers.py): an open or a close
is published, and the others' are applied from a view refreshed in the background."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

from turnout.config import BreakerConfig, ModelConfig, StateConfig
from turnout.state.breakers import BreakerBoard, BreakerEvent, breaker_board, wall

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
EWMA_ALPHA = 0.2

log = logging.getLogger("turnout.breaker")


class CircuitBreaker:
    """One backend's breaker. Every change of state is one log line naming the model (WARNING when it opens,
    INFO when it half-opens or closes): an operator sees when and for how long a model was taken out."""

    def __init__(self, config: BreakerConfig, model: str = "") -> None:
        self.config = config
        self.model = model
        self.state = CLOSED
        self.failures: deque[float] = deque()
        self.opened_at = 0.0
        self.probing = False
        self.board: BreakerBoard | None = None  # set when the breaker is shared with other replicas
        self._seen_at = 0.0  # wall-clock time of the last shared event applied or published

    def allow(self) -> bool:
        """May a request go to this backend now? In half-open state, only one probe at a time."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if time.monotonic() - self.opened_at < self.config.cooldown_s:
                return False
            self.state = HALF_OPEN
            self.probing = False
            log.info("circuit breaker for model '%s' half-open: cooldown of %gs over, one probe request goes through",
                     self.model, self.config.cooldown_s)
        if self.probing:
            return False
        self.probing = True
        return True

    def record_success(self) -> None:
        if self.state != CLOSED:
            log.info("circuit breaker for model '%s' closed: it answered again", self.model)
            self._publish(BreakerEvent(CLOSED, wall()))
        self.state, self.probing = CLOSED, False
        self.failures.clear()

    def record_failure(self) -> None:
        now = time.monotonic()
        if self.state == HALF_OPEN:
            self._open(now, "its probe request failed")
            return
        self.failures.append(now)
        while self.failures and now - self.failures[0] > self.config.window_s:
            self.failures.popleft()
        if len(self.failures) >= self.config.failures:
            self._open(now, f"{len(self.failures)} failures within {self.config.window_s:g}s")

    def release_probe(self) -> None:
        """A probe that ended without a verdict (a client error): let the next request probe."""
        self.probing = False

    def _open(self, now: float, why: str) -> None:
        was, self.state, self.opened_at, self.probing = self.state, OPEN, now, False
        self.failures.clear()
        if was != OPEN:  # failures of requests sent before it opened only extend the pause
            log.warning("circuit breaker for model '%s' opened (%s): requests skip it for %gs",
                        self.model, why, self.config.cooldown_s)
        at = wall()
        self._publish(BreakerEvent(OPEN, at, at + self.config.cooldown_s))

    def _publish(self, event: BreakerEvent) -> None:
        if self.board is not None:
            self._seen_at = event.at
            self.board.publish(self.model, event)

    def apply(self, event: BreakerEvent) -> None:
        """Another replica's change (or this one's, seen again at a refresh: skipped by its time)."""
        if event.at <= self._seen_at:
            return
        self._seen_at = event.at
        now = wall()
        if event.state == OPEN and event.until > now:
            # paused for as long as the replica that opened it said, whatever this one's cooldown
            self.opened_at = time.monotonic() + (event.until - now) - self.config.cooldown_s
            if self.state != OPEN:
                log.warning("circuit breaker for model '%s' opened by another replica: requests skip it for %.3gs",
                            self.model, event.until - now)
            self.state, self.probing = OPEN, False
            self.failures.clear()
        elif event.state == CLOSED and self.state != CLOSED:
            log.info("circuit breaker for model '%s' closed: it answered another replica's probe", self.model)
            self.state, self.probing = CLOSED, False
            self.failures.clear()

    @property
    def retry_after_s(self) -> float:
        return max(0.0, self.config.cooldown_s - (time.monotonic() - self.opened_at)) if self.state == OPEN else 0.0


@dataclass
class BackendStats:
    in_flight: int = 0
    latency_s: float | None = None  # EWMA of complete requests' duration
    ttft_s: float | None = None  # EWMA of streams' time to first token

    def observe_latency(self, seconds: float) -> None:
        self.latency_s = seconds if self.latency_s is None else (1 - EWMA_ALPHA) * self.latency_s + EWMA_ALPHA * seconds

    def observe_ttft(self, seconds: float) -> None:
        self.ttft_s = seconds if self.ttft_s is None else (1 - EWMA_ALPHA) * self.ttft_s + EWMA_ALPHA * seconds


@dataclass
class BackendHealth:
    breaker: CircuitBreaker
    stats: BackendStats = field(default_factory=BackendStats)


class HealthRegistry:
    def __init__(self, state: StateConfig | None = None) -> None:
        self.records: dict[tuple[str, str, str], BackendHealth] = {}
        self.shared = state if state is not None and state.store == "redis" else None

    def of(self, name: str, config: ModelConfig) -> BackendHealth:
        key = (name, config.base_url or "", config.model or name)
        record = self.records.get(key)
        if record is None or (record.breaker.config is not config.breaker and record.breaker.config != config.breaker):
            record = self.records[key] = BackendHealth(CircuitBreaker(config.breaker, name),
                                                       record.stats if record else BackendStats())
        if self.shared is not None and record.breaker.board is None:
            self._share(record.breaker)
        return record

    def _share(self, breaker: CircuitBreaker) -> None:
        """Attach the breaker to this event loop's board (none outside a loop: it is tried again next time)."""
        assert self.shared is not None
        board = breaker_board(self.shared.redis_url, self.shared.namespace)
        if board is not None:
            breaker.board = board
            board.register(breaker)

    def adopt(self, previous: "HealthRegistry") -> None:
        """Keep the records of a previous config's models (after a reload)."""
        for key, record in previous.records.items():
            self.records.setdefault(key, record)
