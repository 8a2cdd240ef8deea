"""Plugins: one file each, registered by name in `plugins`."""

from turnout.plugins import (fast_response, hallucination, header_mutation, jailbreak, pii,  # noqa: F401
                             request_params, semantic_cache, system_prompt)  # (registration)
from turnout.plugins.base import Plugin, plugins, register

__all__ = ["Plugin", "plugins", "register"]
