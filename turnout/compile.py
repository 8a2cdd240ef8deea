"""Compiling a validated config into the Router's parts: signals, decisions (selector, plugins, plan), the
global plugins, access control and backends. Every unknown name or bad parameter becomes a ConfigIssue with its
YAML path, and compiling goes on, so `turnout validate` lists every problem in one run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from turnout.access import AccessControl
from turnout.backends import Backend, build_backend
from turnout.config import Config, ConfigError, ConfigIssue, DecisionConfig, unknown_ref
from turnout.plans import build_plan
from turnout.plugins import Plugin, plugins
from turnout.selection import Selector, build_selector
from turnout.sessions import check_stickiness
from turnout.signals import Signal, signals


def collect(issues: list[ConfigIssue], path: str, make: Callable[[], Any]) -> Any:
    """Run a constructor; record its problems as issues (an unknown registry name at `path`) instead of
    stopping at the first, so `turnout validate` lists every problem at once."""
    try:
        return make()
    except ConfigError as exc:
        issues.extend(exc.issues)
    except KeyError as exc:
        issues.append(ConfigIssue(path, str(exc.args[0])))
    return None


@dataclass
class CompiledDecision:
    config: DecisionConfig
    selector: Selector
    plugins: list[Plugin]
    plan: Any = None  # turnout.plans.Plan


def compile_config(config: Config, issues: list[ConfigIssue]) -> tuple[
        dict[str, Signal], dict[str, CompiledDecision], dict[str, Backend], list[Plugin], AccessControl]:
    """Every component of a config, in Router's argument order; problems go to `issues`."""
    built_signals = _build_signals(config, issues)
    issues.extend(check_stickiness(config))
    decisions = _build_decisions(config, issues)
    global_plugins = _build_plugins(config.plugins, "plugins", config, issues)
    access = AccessControl.build(config, issues)
    built_backends = {name: backend for name, model in config.models.items()
                      if (backend := collect(issues, f"models.{name}.provider",
                                              lambda: build_backend(name, model))) is not None}
    return built_signals, decisions, built_backends, global_plugins, access


def close_all(backends: dict[str, Backend]) -> None:
    for backend in backends.values():
        _close_soon(backend)


def _build_signals(config: Config, issues: list[ConfigIssue]) -> dict[str, Signal]:
    built = {}
    for name, spec in config.signals.items():
        path = f"signals.{name}"
        kind = collect(issues, f"{path}.kind", lambda: signals.get(spec.kind))
        params = spec.params
        if isinstance(params.get("artifact"), str):
            params = {**params, "artifact": config.resolve_path(params["artifact"])}
        signal = kind and collect(issues, path, lambda: kind.from_config(name, params, path))
        if signal is not None:
            built[name] = signal
    return built


def _build_plugins(specs: list[Any], path: str, config: Config, issues: list[ConfigIssue]) -> list[Plugin]:
    chain = []
    for j, p in enumerate(specs):
        ppath = f"{path}[{j}]"
        plugin_cls = collect(issues, ppath, lambda: plugins.get(p.name))
        plugin = plugin_cls and collect(issues, ppath, lambda: plugin_cls.from_config(p.params, f"{ppath}.{p.name}"))
        if plugin is None:
            continue
        for name in plugin.referenced_signals():
            if name not in config.signals:
                issues.append(unknown_ref(f"{ppath}.{p.name}", "signal", name, config.signals))
        for model in plugin.referenced_models():
            if model not in config.models:
                issues.append(unknown_ref(f"{ppath}.{p.name}.model", "model", model, config.models))
        chain.append(plugin)
    return chain


def _build_decisions(config: Config, issues: list[ConfigIssue]) -> dict[str, CompiledDecision]:
    built = {}
    for i, d in enumerate(config.effective_decisions()):
        path = f"decisions[{i}]"
        selector = collect(issues, f"{path}.algorithm.name",
                            lambda: build_selector(d.algorithm.name, d.algorithm.params, f"{path}.algorithm",
                                                   config.resolve_path(d.algorithm.artifact), d.models))
        chain = _build_plugins(d.plugins, f"{path}.plugins", config, issues)
        if selector is not None:
            if selector.online:  # learned state where `state:` says, one namespace per decision
                selector.bind_state(config.state, f"{config.state.namespace}:bandit:{d.name}")
                selector.bind_models({m: config.models[m] for m in d.models if m in config.models})
            plan = d.plan and collect(issues, f"{path}.plan", lambda: build_plan(d.plan, f"{path}.plan", config, d))
            built[d.name] = CompiledDecision(d, selector, chain, plan)
    return built


def _close_soon(backend: Backend) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # built outside a loop (CLI validate): the clients hold no connections yet
    loop.create_task(backend.aclose())
