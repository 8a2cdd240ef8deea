"""Backends: provider adapters, one file each, registered by provider name in `backends`."""

from turnout.backends.base import Backend, Chunk, backends, build_backend, register
from turnout.registry import import_modules

import_modules(__name__, __path__)  # every module here registers its backends

__all__ = ["Backend", "Chunk", "backends", "build_backend", "register"]
