"""Typed config: pydantic models of the YAML file, loading, validation and cross-reference checks."""

from turnout.config.issues import ConfigError, ConfigIssue, unknown_ref
from turnout.config.loader import load_config, parse_config, parse_yaml, rule_signals
from turnout.config.models import (
    AlgorithmConfig,
    AllRule,
    ApiKeyConfig,
    AuthConfig,
    BreakerConfig,
    HealthCheckConfig,
    RetryConfig,
    StateConfig,
    AnyRule,
    Config,
    Cost,
    DecisionConfig,
    ModelConfig,
    NotRule,
    PluginConfig,
    RoutingConfig,
    ServerConfig,
    SignalConfig,
    SignalRule,
    StickinessConfig,
)

__all__ = [
    "AlgorithmConfig", "AllRule", "AnyRule", "ApiKeyConfig", "AuthConfig", "BreakerConfig", "HealthCheckConfig",
    "RetryConfig", "StateConfig", "Config", "ConfigError", "ConfigIssue", "Cost", "DecisionConfig",
    "ModelConfig", "NotRule", "PluginConfig", "RoutingConfig", "ServerConfig", "SignalConfig", "SignalRule", "StickinessConfig",
    "load_config", "parse_config", "parse_yaml", "rule_signals", "unknown_ref",
]
