"""A name -> object registry with helpful lookup errors, behind models, spaces and strategies.

``register(name)`` is a decorator (or call ``register(name, obj)``); ``lookup(name)`` returns the
object or raises the registry's error type with the closest name suggested and the available
ones listed. ``loader`` runs once before the first read, so registering modules import lazily.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import SRNASError
from .presets import closest_hint

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, *, error: type[SRNASError] = SRNASError,
                 loader: Callable[[], None] | None = None):
        self.kind = kind
        self.error = error
        self._loader = loader
        self._loaded = loader is None
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

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def lookup(self, name: str) -> T:
        self._ensure_loaded()
        if name not in self._items:
            raise self.error(f"unknown {self.kind} {name!r}{closest_hint(name, self._items)}; "
                             f"available: {', '.join(sorted(self._items))}")
        return self._items[name]
