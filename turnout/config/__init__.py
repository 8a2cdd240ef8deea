"""Typed config: pydantic models of the YAML file, loading, validation and cross-reference checks."""

from turnout.config.issues import ConfigError, ConfigIssue
from turnout.config.loader import load_config, parse_config, parse_yaml, rule_signals
from turnout.config.models import (
    AlgorithmConfig,
    AllRule,
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
)

__all__ = [
    "AlgorithmConfig", "AllRule", "AnyRule", "Config", "ConfigError", "ConfigIssue", "Cost", "DecisionConfig",
    "ModelConfig", "NotRule", "PluginConfig", "RoutingConfig", "ServerConfig", "SignalConfig", "SignalRule",
    "load_config", "parse_config", "parse_yaml", "rule_signals",
]
