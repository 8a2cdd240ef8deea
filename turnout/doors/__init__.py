"""Doors: the inbound protocols, one file each, registered by name in `doors`."""

from turnout.doors.base import Call, Door, Framer, doors, register
from turnout.registry import import_modules

import_modules(__name__, __path__)  # every module here registers its door

__all__ = ["Call", "Door", "Framer", "doors", "register"]
