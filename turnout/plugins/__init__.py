"""Plugins: one file each, registered by name in `plugins`."""

from turnout.plugins import (fast_response, header_mutation, jailbreak, pii, request_params,  # noqa: F401
                             semantic_cache, system_prompt)  # (registration)
from turnout.plugins.base import Plugin, plugins, register

__all__ = ["Plugin", "plugins", "register"]
