"""A name -> object registry with helpful lookup errors, behind models, spaces and strategies.

``register(name)`` is a decorator (or call ``register(name, obj)``); ``lookup(name)`` returns the
object or raises the registry's error type with the closest name suggested and the available
ones listed. Registering modules import lazily, in one of two ways:

* ``modules`` maps names to the module that registers them: the names are known without importing
  anything, and looking one up imports its module only (listing stays cheap);
* ``loader`` runs once before the first read that needs every entry (plug-ins, say).
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, Mapping, TypeVar

from .errors import SRNASError
from .presets import closest_hint

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, *, error: type[SRNASError] = SRNASError,
                 loader: Callable[[], None] | None = None, modules: Mapping[str, str] | None = None):
        self.kind = kind
        self.error = error
        self._loader = loader
        self._loaded = loader is None
        self._modules = dict(modules or {})
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T | None = None):
        """Register ``item`` under ``name``; without ``item``, a decorator."""

        def add(value: T) -> T:
            if name in self._items and self._items[name] is not value:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = value
            return value

        return add(item) if item is not None else add

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True  # first, so a loader that reads the registry does not recurse
            self._loader()

    def _import_module_of(self, name: str) -> None:
        module = self._modules.get(name)
        if module is not None and name not in self._items:
            importlib.import_module(module)
            if name not in self._items:
                raise RuntimeError(f"module {module} was expected to register {self.kind} {name!r}")

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(set(self._items) | set(self._modules))

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items or name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def lookup(self, name: str) -> T:
        self._ensure_loaded()
        self._import_module_of(name)
        if name not in self._items:
            names = self.names()
            raise self.error(f"unknown {self.kind} {name!r}{closest_hint(name, names)}; "
                             f"available: {', '.join(names)}")
        return self._items[name]
