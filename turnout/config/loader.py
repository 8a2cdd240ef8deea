"""Read YAML, resolve `env:VAR` secrets, validate into `Config`, and check cross-references."""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from turnout.config.issues import (
    ConfigError,
    ConfigIssue,
    format_path,
    from_validation_error,
    unknown_ref,
)
from turnout.config.models import Config
from turnout.config.rules import AllRule, AnyRule, NotRule, SignalRule
from turnout.config.salvage import Partial, salvage

ENV_PREFIX = "env:"


def _resolve_env(node: Any, loc: tuple[object, ...], issues: list[ConfigIssue], severity: str) -> Any:
    if isinstance(node, dict):
        return {k: _resolve_env(v, loc + (k,), issues, severity) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env(v, loc + (i,), issues, severity) for i, v in enumerate(node)]
    if isinstance(node, str) and node.startswith(ENV_PREFIX):
        var = node[len(ENV_PREFIX):].strip()
        if var not in os.environ:
            issues.append(ConfigIssue(format_path(loc), f"environment variable {var} is not set", severity))
            return ""
        return os.environ[var]
    return node


def _model_class(annotation: Any) -> Any:
    """Unwrap Optional/Annotated/list/dict down to the pydantic model a path segment leads to."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def _fields_at(loc: list[object]) -> list[str]:
    current: Any = Config
    for part in loc:
        current = _model_class(current)
        origin = typing.get_origin(current)
        if origin in (list, dict):
            current = typing.get_args(current)[-1]
            continue
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            if field is None:
                for f in current.model_fields.values():
                    if f.alias == part:
                        field = f
            if field is None:
                return []
            current = field.annotation
        elif isinstance(part, str) and part in ("all", "any", "not", "signal"):
            current = {"all": AllRule, "any": AnyRule, "not": NotRule, "signal": SignalRule}[part]
    current = _model_class(current)
    members = [_model_class(a) for a in typing.get_args(current)] or [current]
    return [
        f.alias or name
        for cls in members
        if isinstance(cls, type) and issubclass(cls, BaseModel)
        for name, f in cls.model_fields.items()
    ]


def parse_config(data: Any, *, source: str = "config", missing_env: str = "error") -> Config:
    """Validate a loaded YAML document. Raises ConfigError listing every problem found: when the schema
    rejects part of the file, the references of the part that parsed are still checked, and that part is
    kept on the error (`partial`) for the next stage to check its components. With missing_env="warning"
    (for `turnout validate` where secrets are absent) an unset `env:VAR` is a warning; warnings are kept on
    `config.load_warnings`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue("", f"{source}: the top level must be a mapping, got {type(data).__name__}")])
    issues: list[ConfigIssue] = []
    data = _resolve_env(data, (), issues, missing_env)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        issues += from_validation_error(exc, fields_of=_fields_at)
        partial = salvage(data)
        if partial is not None:
            issues += partial.report(check_references(partial.config))
        raise ConfigError(issues, partial) from None
    issues += check_references(config)
    if any(i.severity == "error" for i in issues):
        raise ConfigError(issues, Partial(config))
    config._load_warnings = [i for i in issues if i.severity == "warning"]
    return config


def load_config(path: str | os.PathLike[str], *, missing_env: str = "error", text: str | None = None) -> Config:
    """The config file at `path`; `text`, when given, is its content already read (relative paths in it still
    start at the file's folder)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8") if text is None else text
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read {path}: {exc.strerror or exc}")]) from None
    base_dir = str(path.resolve().parent)
    try:
        config = parse_config(parse_yaml(text, source=str(path)), source=str(path), missing_env=missing_env)
    except ConfigError as exc:
        if exc.partial is not None:  # relative paths of the part that parsed start at the file's folder too
            exc.partial.config._base_dir = base_dir
        raise
    config._base_dir = base_dir
    return config


def parse_yaml(text: str, *, source: str = "config") -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue("", f"{source}: invalid YAML{where}: {problem}")]) from None


def rule_signals(rule: Any, path: str) -> list[tuple[str, str]]:
    """Every (signal name, path) referenced by a rule tree."""
    if isinstance(rule, SignalRule):
        return [(rule.signal, f"{path}.signal")]
    if isinstance(rule, AllRule):
        return [s for i, r in enumerate(rule.all) for s in rule_signals(r, f"{path}.all[{i}]")]
    if isinstance(rule, AnyRule):
        return [s for i, r in enumerate(rule.any) for s in rule_signals(r, f"{path}.any[{i}]")]
    if isinstance(rule, NotRule):
        return rule_signals(rule.not_, f"{path}.not")
    return []


def check_references(config: Config) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: dict[str, int] = {}
    for i, decision in enumerate(config.decisions):
        path = f"decisions[{i}]"
        if decision.name in seen:
            issues.append(ConfigIssue(f"{path}.name", f"duplicate decision name '{decision.name}' (also decisions[{seen[decision.name]}])"))
        seen.setdefault(decision.name, i)
        for j, model in enumerate(decision.models):
            if model not in config.models:
                issues.append(unknown_ref(f"{path}.models[{j}]", "model", model, config.models))
        if decision.when is not None:
            for name, spath in rule_signals(decision.when, f"{path}.when"):
                if name not in config.signals:
                    issues.append(unknown_ref(spath, "signal", name, config.signals))
    if config.decisions and all(d.when is not None for d in config.decisions):
        issues.append(ConfigIssue("decisions", "no default decision: give one decision no `when` so every request has "
                                              "a route", refers=("decision", "")))
    for i, alias in enumerate(config.routing.aliases):
        if alias in config.models:
            issues.append(ConfigIssue(f"routing.aliases[{i}]", f"alias '{alias}' is also a model name"))
    for i, decision in enumerate(config.decisions):
        for j, model in enumerate(decision.fallbacks):
            if model not in config.models:
                issues.append(unknown_ref(f"decisions[{i}].fallbacks[{j}]", "model", model, config.models))
    for name, model in config.models.items():
        for j, fallback in enumerate(model.fallbacks):
            if fallback == name:
                issues.append(ConfigIssue(f"models.{name}.fallbacks[{j}]", f"'{fallback}' is not another model"))
            elif fallback not in config.models:
                issues.append(unknown_ref(f"models.{name}.fallbacks[{j}]", "model", fallback, config.models))
    if config.auth is not None:
        for i, key in enumerate(config.auth.keys):
            for j, model in enumerate(key.models or []):
                if model not in config.models:
                    issues.append(unknown_ref(f"auth.keys[{i}].models[{j}]", "model", model, config.models))
            names = {d.name for d in config.effective_decisions()}
            for j, decision in enumerate(key.decisions or []):
                if decision not in names:
                    issues.append(unknown_ref(f"auth.keys[{i}].decisions[{j}]", "decision", decision, names))
    for name, model in config.models.items():
        if model.provider in ("openai", "azure") and not model.base_url:
            issues.append(ConfigIssue(f"models.{name}.base_url", f"required for provider '{model.provider}'"))
        if model.provider == "azure" and not model.deployment:
            issues.append(ConfigIssue(f"models.{name}.deployment", "required for provider 'azure'"))
        if model.responses_api and model.provider not in ("openai", "azure"):
            issues.append(ConfigIssue(f"models.{name}.responses_api", f"provider '{model.provider}' does not speak "
                                      "the Responses API; only openai and azure models may pass it through"))
    return issues + check_embeddings(config)


def _kind(embeddings: bool) -> str:
    return "an embeddings model" if embeddings else "a chat model"


def check_embeddings(config: Config) -> list[ConfigIssue]:
    """Embeddings models serve POST /v1/embeddings and nothing else: decisions, which route chat requests, may not
    list one, and a model falls back only to one of its own kind. (Whether a provider can embed at all is its
    backend's to say: `models.X.embeddings` is checked when the backend is built.)"""
    issues: list[ConfigIssue] = []
    models = config.models
    for i, decision in enumerate(config.decisions):
        for field, names in (("models", decision.models), ("fallbacks", decision.fallbacks)):
            for j, name in enumerate(names):
                if name in models and models[name].embeddings:
                    issues.append(ConfigIssue(f"decisions[{i}].{field}[{j}]", (
                        f"'{name}' is an embeddings model (models.{name}.embeddings); decisions route chat "
                        "requests, and embeddings asked of an alias go to the embeddings models in config order")))
    for name, model in models.items():
        for j, fallback in enumerate(model.fallbacks):
            if fallback in models and fallback != name and models[fallback].embeddings != model.embeddings:
                issues.append(ConfigIssue(f"models.{name}.fallbacks[{j}]", (
                    f"'{fallback}' is {_kind(models[fallback].embeddings)} and '{name}' is "
                    f"{_kind(model.embeddings)} (models.X.embeddings): a fallback must serve the same requests")))
    return issues
