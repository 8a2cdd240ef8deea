"""Plugins: one file each, registered by name in `plugins`."""

from turnout.plugins import fast_response, system_prompt  # noqa: F401  (registration)
from turnout.plugins.base import Plugin, plugins, register

__all__ = ["Plugin", "plugins", "register"]
