"""The serving config as the dashboard's tables: decisions in the order they are tried (priority, then file
order) with their rules written out, models, algorithm, plan and plugins; the models with their prices; and
the warnings `turnout validate` prints. Params are shown with every backend secret and every field whose name
says it holds one masked."""

from __future__ import annotations

from typing import Any

from turnout.config import AllRule, AnyRule, NotRule, SignalRule
from turnout.pipeline import Router

MASK = "***"
SECRET_WORDS = ("key", "secret", "token", "password", "authorization")


def rule_text(rule: Any) -> str:
    """A rule as one line: `code`, `toxicity ≥ 0.8`, `all(a, not b)`; no rule: the default."""
    if rule is None:
        return "(always)"
    if isinstance(rule, SignalRule):
        return rule.signal if rule.min_score is None else f"{rule.signal} ≥ {rule.min_score:g}"
    if isinstance(rule, AllRule):
        return "all(" + ", ".join(rule_text(r) for r in rule.all) + ")"
    if isinstance(rule, AnyRule):
        return "any(" + ", ".join(rule_text(r) for r in rule.any) + ")"
    if isinstance(rule, NotRule):
        return "not " + rule_text(rule.not_)
    return str(rule)


def masked(value: Any, secrets: tuple[str, ...], field: str = "") -> Any:
    if field and any(word in field.lower() for word in SECRET_WORDS) and isinstance(value, str):
        return MASK
    if isinstance(value, dict):
        return {str(k): masked(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:  # longest first: a secret inside another goes with it
            if secret:
                value = value.replace(secret, MASK)
        return value
    return value


def config_view(router: Router) -> dict[str, Any]:
    config, secrets = router.config, router.secrets()
    order = sorted(enumerate(config.decisions), key=lambda item: (-item[1].priority, item[0]))
    decisions = [{
        "name": d.name, "priority": d.priority, "description": d.description, "rule": rule_text(d.when),
        "models": list(d.models), "fallbacks": list(d.fallbacks),
        "algorithm": {"name": d.algorithm.name, "params": masked(d.algorithm.params, secrets)},
        "plan": None if d.plan is None else {"name": d.plan.name, "params": masked(d.plan.params, secrets)},
        "plugins": [{"name": p.name, "params": masked(p.params, secrets)} for p in d.plugins],
        "stickiness": None if d.stickiness is None else d.stickiness.mode,
    } for _, d in order]
    models = {name: {"provider": m.provider, "upstream_model": m.model or name,
                     "cost": {"input": m.cost.input, "output": m.cost.output}, "fallbacks": list(m.fallbacks),
                     "embeddings": m.embeddings} for name, m in config.models.items()}
    signals = {name: {"kind": s.kind} for name, s in config.signals.items()}
    warnings = [{"path": i.path, "message": i.message} for i in [*config.load_warnings, *router.warnings]]
    return {"object": "dashboard.config", "decisions": decisions, "models": models, "signals": signals,
            "global_plugins": [p.name for p in config.plugins], "aliases": list(config.routing.aliases),
            "allow_direct": config.routing.allow_direct, "warnings": warnings}
