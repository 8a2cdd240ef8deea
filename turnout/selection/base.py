"""Selectors pick one model among a decision's candidates. They are estimators in scikit-learn's spirit:
explicit keyword parameters in `__init__`, learned state in attributes ending in `_` set by `fit`."""

from __future__ import annotations

import abc
import inspect
from dataclasses import dataclass
from functools import cache
from typing import Any, Sequence

from pydantic import ConfigDict, create_model

from turnout.config import Cost
from turnout.context import Choice, RoutingContext
from turnout.params import validate_params
from turnout.registry import Registry


@dataclass(frozen=True)
class Candidate:
    name: str
    cost: Cost


class Selector(abc.ABC):
    #: True for selectors that must be fitted on a RoutingTable before they can select
    needs_fit: bool = False

    def fit(self, table: Any) -> "Selector":
        return self

    @abc.abstractmethod
    def select(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
        """Return one of the candidates, with every candidate's score and a reason."""

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _init_params(type(self))}


selectors: Registry[Selector] = Registry("selection algorithm", attr="name")
register = selectors.register


def _init_params(cls: type) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(cls.__init__)
    return {n: p for n, p in sig.parameters.items() if n != "self" and p.kind is p.KEYWORD_ONLY}


@cache
def _params_model(cls: type) -> type:
    fields = {
        name: (p.annotation if p.annotation is not inspect.Parameter.empty else Any,
               ... if p.default is inspect.Parameter.empty else p.default)
        for name, p in _init_params(cls).items()
    }
    return create_model(f"{cls.__name__}Params", __config__=ConfigDict(extra="forbid"), **fields)


def build_selector(name: str, params: dict[str, Any], path: str) -> Selector:
    """Instantiate a registered selector; unknown names and bad params are ConfigErrors naming `path`."""
    cls = selectors.get(name)
    model = _params_model(cls)
    checked = validate_params(model, params, f"{path}.params")
    return cls(**checked.model_dump())
