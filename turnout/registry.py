"""A name → class registry, one per extension point (signals, selectors, plugins, backends)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from turnout.config.issues import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, attr: str = "registered_name") -> None:
        self.what = what
        self.attr = attr  # the class attribute that receives the registered name (e.g. Signal.kind)
        self._items: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorate(cls: type[T]) -> type[T]:
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"{self.what} '{name}' is registered twice")
            self._items[name] = cls
            setattr(cls, self.attr, name)
            return cls

        return decorate

    def get(self, name: str) -> type[T]:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(unknown_name(self.what, name, self._items)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)


def import_modules(package: str, path: list[str], skip: tuple[str, ...] = ("base",)) -> None:
    """Import every module of a package, so that each registers its classes: adding a component is adding its
    file, with no import list to edit."""
    for module in pkgutil.iter_modules(path):
        if module.name not in skip and not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
