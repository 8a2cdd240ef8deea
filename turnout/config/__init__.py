"""Typed config: pydantic models of the YAML file, loading, validation and cross-reference checks."""

from turnout.config.issues import ConfigError, ConfigIssue, unknown_ref
from turnout.config.loader import load_config, parse_config, parse_yaml, rule_signals
from turnout.config.models import (
    AlgorithmConfig,
    ApiKeyConfig,
    AuthConfig,
    BreakerConfig,
    Config,
    Cost,
    DecisionConfig,
    HealthCheckConfig,
    ModelConfig,
    PluginConfig,
    RetryConfig,
    RoutingConfig,
    ServerConfig,
    SignalConfig,
    StateConfig,
    StickinessConfig,
)
from turnout.config.rules import AllRule, AnyRule, NotRule, SignalRule

__all__ = [
    "AlgorithmConfig",
    "AllRule",
    "AnyRule",
    "ApiKeyConfig",
    "AuthConfig",
    "BreakerConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Cost",
    "DecisionConfig",
    "HealthCheckConfig",
    "ModelConfig",
    "NotRule",
    "PluginConfig",
    "RetryConfig",
    "RoutingConfig",
    "ServerConfig",
    "SignalConfig",
    "SignalRule",
    "StateConfig",
    "StickinessConfig",
    "load_config",
    "parse_config",
    "parse_yaml",
    "rule_signals",
    "unknown_ref",
]
