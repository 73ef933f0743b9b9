"""Presets are data: the YAML presets of spaces and strategies, and the papers' published architectures.

They ship inside the package, in three folders read through :mod:`importlib.resources` (so a wheel
install finds them as a clone does):

* ``search_spaces/``: a space builder and its arguments (``dlsr-proxy.yaml``);
* ``strategies/``: a strategy and its options (``nsga2.yaml``);
* ``published/``: each paper's final architecture as a frozen sample (``dlsr.json``; see :class:`Preset`).

In a clone, the top-level ``search_spaces/`` and ``strategies/`` are links to the first two folders:
one copy, where users look for them. A YAML preset is referred to by its file stem (``dlsr-proxy``) or
by a path (``my/space.yaml``). Errors name the file, or list the presets when a name is unknown (with
the closest one suggested). This module imports neither torch nor NNI: listing presets stays fast.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import ModelSpecError, SRNASError

__all__ = ["SPACE_PRESETS", "STRATEGY_PRESETS", "PUBLISHED_PRESETS", "closest_hint", "preset_names", "read_preset",
           "Preset", "published_presets", "get_published"]

#: The preset folders (``pathlib.Path`` objects for an installed package or a clone).
SPACE_PRESETS: Traversable = files(__name__) / "search_spaces"
STRATEGY_PRESETS: Traversable = files(__name__) / "strategies"
PUBLISHED_PRESETS: Traversable = files(__name__) / "published"


def closest_hint(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(str(name), list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _stems(folder: Traversable, suffix: str) -> list[str]:
    return sorted(entry.name[: -len(suffix)] for entry in folder.iterdir()
                  if entry.name.endswith(suffix) and entry.is_file())


def preset_names(folder: Traversable) -> list[str]:
    """The YAML presets in ``folder``, by name."""
    return _stems(folder, ".yaml")


def read_preset(reference: str | Path, folder: Traversable, *, kind: str,
                required_key: str) -> tuple[dict[str, Any], Traversable]:
    """The mapping of preset ``reference`` (a name in ``folder``, or a ``.yaml``/``.yml`` path) and its file.

    ``kind`` ("space", "strategy") words the errors; ``required_key`` must be present.
    """
    path: Traversable = Path(reference)
    if Path(reference).suffix not in (".yaml", ".yml"):
        path = folder / f"{reference}.yaml"
        if not path.is_file():
            names = preset_names(folder)
            raise SRNASError(f"unknown {kind} preset {str(reference)!r}{closest_hint(str(reference), names)}; "
                             f"available: {', '.join(names)}")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SRNASError(f"{path}: no such {kind} preset file") from None
    except yaml.YAMLError as exc:
        raise SRNASError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or required_key not in data:
        raise SRNASError(f"{path}: a {kind} preset is a mapping with a {required_key!r} key")
    return data, path


@dataclass(frozen=True)
class Preset:
    """A paper's final architecture: a frozen sample of one of the spaces.

    A file in ``published/`` holds::

        {"space": "dlsr", "space_kwargs": {...}, "scales": [2, 4], "sample": {label: value, ...},
         "published": {"2": {"params": ..., "multadds": ...}}, "source": "...", "notes": "..."}

    ``published`` keeps the paper's figures (per scale, any of ``params``/``multadds``) so tests and
    benchmarks compare the rebuilt model with them; ``notes`` says what the paper does not state and
    what was chosen instead.
    """

    name: str
    space: str
    sample: dict[str, Any]
    scales: tuple[int, ...]
    space_kwargs: dict[str, Any] = field(default_factory=dict)
    published: dict[int, dict[str, float]] = field(default_factory=dict)
    source: str = ""
    notes: str = ""

    def spec(self, scale: int) -> dict[str, Any]:
        """The model spec that rebuilds this preset (what exports and model files store)."""
        return {"space": self.space, "space_kwargs": dict(self.space_kwargs), "sample": dict(self.sample),
                "scale": int(scale)}


def _read_published(entry: Traversable) -> Preset:
    try:
        data = json.loads(entry.read_text())
        return Preset(
            name=entry.name.rsplit(".", 1)[0],
            space=data["space"],
            sample=dict(data["sample"]),
            scales=tuple(int(s) for s in data["scales"]),
            space_kwargs=dict(data.get("space_kwargs", {})),
            published={int(k): dict(v) for k, v in data.get("published", {}).items()},
            source=data.get("source", ""),
            notes=data.get("notes", ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelSpecError(f"{entry}: malformed preset ({type(exc).__name__}: {exc})") from None


@lru_cache(maxsize=1)
def published_presets() -> dict[str, Preset]:
    """Every published architecture, by name."""
    return {name: _read_published(PUBLISHED_PRESETS / f"{name}.json") for name in _stems(PUBLISHED_PRESETS, ".json")}


def get_published(name: str) -> Preset:
    table = published_presets()
    if name not in table:
        raise ModelSpecError(f"unknown preset {name!r}; available: {', '.join(sorted(table))}")
    return table[name]
