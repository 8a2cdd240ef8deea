"""Backends: provider adapters registered by provider name in `backends`."""

from turnout.backends import anthropic, azure, openai_compat, replay  # noqa: F401  (registration)
from turnout.backends.base import Backend, Chunk, backends, build_backend, register

__all__ = ["Backend", "Chunk", "backends", "build_backend", "register"]
