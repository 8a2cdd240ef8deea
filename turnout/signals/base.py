"""The Signal interface and its registry. A signal looks at a request and says how strongly it applies."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from turnout.config import ConfigError, ConfigIssue
from turnout.context import RoutingContext, SignalResult
from turnout.cpu import off_loop  # noqa: F401  (re-exported: the signals' and judges' import)
from turnout.params import Params, validate_params
from turnout.registry import Registry


class Signal(abc.ABC):
    kind: ClassVar[str]
    Params: ClassVar[type[Params]] = Params
    #: evaluation order: cheap signals (0) first; neural ones (10) run concurrently after them
    cost: ClassVar[int] = 0

    def __init__(self, name: str, params: Params) -> None:
        self.name = name
        self.params = params

    @classmethod
    def from_config(cls, name: str, params: dict[str, Any], path: str) -> "Signal":
        checked = validate_params(cls.Params, params, path)
        try:
            return cls(name, checked)
        except (ValueError, OSError) as exc:  # e.g. an artifact that is missing or does not fit the params
            raise ConfigError([ConfigIssue(path, f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError)
                                           else str(exc))]) from None

    @abc.abstractmethod
    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        """Score the request; the result is cached on the context by the caller."""

    def runs_inline(self, ctx: RoutingContext) -> bool:
        """True when evaluate() will finish on this request without suspending (no thread hop, no I/O). When every
        costly signal of a request says so, the router runs them one after another instead of as concurrent tasks:
        the same work in the same order, without a task and a timeout each. False (the safe answer) by default."""
        return False


signals: Registry[Signal] = Registry("signal kind", attr="kind")
register = signals.register


