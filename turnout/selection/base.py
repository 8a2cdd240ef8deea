"""Selectors pick one model among a decision's candidates. They are estimators in scikit-learn's spirit:
explicit keyword parameters in `__init__`, learned state in attributes ending in `_` set by `fit`."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, create_model

from turnout.config import Cost
from turnout.context import Choice, RoutingContext
from turnout.params import validate_params
from turnout.registry import Registry


@dataclass(frozen=True)
class Candidate:
    name: str
    cost: Cost
    stats: Any = None  # live BackendStats (in flight, EWMA latency and TTFT) when served; None offline


class Selector(abc.ABC):
    #: True for selectors that must be fitted on a RoutingTable before they can select
    needs_fit: bool = False
    #: True for selectors that learn from outcomes (`update`): the online ones
    online: bool = False
    #: the encoder whose request embedding `select` reads (None: no embedding needed)
    encoder: str | None = None

    def fit(self, table: Any) -> Selector:
        return self

    @abc.abstractmethod
    def select(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
        """Return one of the candidates, with every candidate's score and a reason."""

    # ----- closing the loop (online selectors override these; offline ones ignore outcomes) -------------
    def reward(self, outcome: Any, quality: float, ctx_objective: str | None = None) -> float:
        """What an outcome was worth to this selector: its quality here (online selectors net off cost, latency
        and energy)."""
        return quality

    async def update(self, outcome: Any, reward: float) -> None:
        """Learn from one outcome (a turnout.outcomes.Outcome) and its reward."""
        return

    async def revise(self, outcome: Any, old: float, new: float | None) -> None:
        """The outcome's reward changed from `old` to `new` (None: taken back): learn it as if only `new` came."""
        return

    def bind_state(self, state_config: Any, namespace: str) -> None:
        """Keep learned state where `state_config` says (memory, or Redis under `namespace`)."""
        return

    def bind_models(self, models: dict[str, Any]) -> None:
        """The decision's models' configs (prices, energy per token), for rewards that net them off."""
        return

    async def aclose(self) -> None:
        return None

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _init_params(type(self))}


#: routers trained on ../shared/data and shipped with turnout: `artifact: builtin:NAME`
BUILTIN_ROUTERS = Path(__file__).resolve().parent.parent / "models" / "data" / "routers"

selectors: Registry[Selector] = Registry("selection algorithm", attr="name")
register = selectors.register


def _init_params(cls: type) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(cls.__init__)
    return {n: p for n, p in sig.parameters.items() if n != "self" and p.kind is p.KEYWORD_ONLY}


#: weights that price a model's cost or latency against its predicted quality: a negative one would pay a
#: selector to pick the dearer (or slower) model, so it is rejected wherever params are read
PENALTY_WEIGHTS = ("cost_weight", "latency_weight", "energy_weight")


@cache
def _params_model(cls: type) -> type:
    fields: dict[str, Any] = {}
    for name, p in _init_params(cls).items():
        annotation = p.annotation if p.annotation is not inspect.Parameter.empty else Any
        default = ... if p.default is inspect.Parameter.empty else p.default
        if name in PENALTY_WEIGHTS:
            default = Field(default, ge=0, description="0: quality only; larger: cheaper (or faster) models win")
        fields[name] = (annotation, default)
    return create_model(f"{cls.__name__}Params", __config__=ConfigDict(extra="forbid"), **fields)


def checked_params(cls: type, params: dict[str, Any], where: str) -> dict[str, Any]:
    """`params` validated by the selector's params model; a ValueError naming `where` and the field otherwise
    (for params read from an artifact's router.json, which no config validation has seen)."""
    try:
        return _params_model(cls).model_validate(params).model_dump()
    except ValidationError as exc:
        problems = "; ".join(f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise ValueError(problems) from None


def build_selector(name: str, params: dict[str, Any], path: str, artifact: str | None = None,
                   candidates: Sequence[str] = ()) -> Selector:
    """Instantiate a registered selector (a learned one from its artifact directory); unknown names, bad
    params, a missing artifact or candidates the artifact was not trained on are ConfigErrors naming `path`."""
    from turnout.config import ConfigError, ConfigIssue

    cls = selectors.get(name)
    model = _params_model(cls)
    checked = validate_params(model, params, f"{path}.params")
    overrides = {k: v for k, v in checked.model_dump().items() if k in params}
    if not getattr(cls, "needs_fit", False):
        selector = cls(**checked.model_dump())
        prepare = getattr(selector, "prepare", None)  # online selectors: a warm-start artifact, clusters
        if prepare is not None:
            try:
                prepare(candidates)
            except ValueError as exc:
                raise ConfigError([ConfigIssue(f"{path}.params.{getattr(exc, 'field', 'warm_start')}", str(exc))]) from None
        return selector
    if artifact is None:
        raise ConfigError([ConfigIssue(f"{path}.artifact", f"'{name}' is a learned router: give the directory "
                                                          f"written by `turnout train --router {name}`")])
    if artifact.startswith("builtin:"):
        artifact = str(BUILTIN_ROUTERS / artifact[len("builtin:"):])
    try:
        selector = cls.load(artifact, **overrides)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError([ConfigIssue(f"{path}.artifact", f"cannot load {artifact}: {exc}")]) from None
    unknown = selector.check_models(candidates)
    if unknown:
        raise ConfigError([ConfigIssue(f"{path}.artifact", f"the router was trained on {', '.join(selector.models_)}; "
                                                          f"it knows nothing of {', '.join(unknown)}")])
    return selector
