"""Validation of a component's parameters against its own pydantic `Params` model, with YAML paths."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from turnout.config.issues import ConfigError, ConfigIssue, did_you_mean, format_path

P = TypeVar("P", bound=BaseModel)


class Params(BaseModel):
    """Base of every component's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def validate_params(model: type[P], data: dict[str, Any], path: str) -> P:

    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = format_path(err["loc"])
            full = f"{path}.{loc}" if loc else path
            if err["type"] == "extra_forbidden":
                key = str(err["loc"][-1])
                parent = format_path(err["loc"][:-1])
                issues.append(ConfigIssue(f"{path}.{parent}" if parent else path,
                                          f"unknown key '{key}'{did_you_mean(key, model.model_fields)}"
                                          f" (valid: {', '.join(model.model_fields) or 'none'})"))
            elif err["type"] == "missing":
                issues.append(ConfigIssue(full, "required but missing"))
            else:
                issues.append(ConfigIssue(full, err["msg"]))
        raise ConfigError(issues) from None
