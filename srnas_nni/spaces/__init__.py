"""The search spaces of the five seed SR-NAS systems, as NNI 3.0 model spaces.

A name maps to a builder (``get("dlsr", scale=4)``); YAML presets (:data:`srnas_nni.presets.SPACE_PRESETS`,
``search_spaces/`` in a clone) name a builder and its arguments (``load_space_preset("dlsr-proxy")``);
the papers' final architectures are frozen samples, built by :mod:`srnas_nni.spaces.published`.

Each space (its network and its cost model) lives in the module of its name and is imported on first
use, so listing the spaces and their presets imports neither torch nor NNI. The supernet forms the
one-shot strategies build from the spaces' custom modules are in :mod:`srnas_nni.spaces.oneshot`.

Spaces: ``hnas`` (Guo et al., arXiv 2003.04619), ``trilevel`` (Wu et al., 2101.06658), ``hinas``
(Zhang et al., 2012.13212), ``dlsr`` (Huang et al., 2105.03939), ``deconas`` (Ahn & Cho,
2104.09048).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ModelSpecError
from ..presets import SPACE_PRESETS, preset_names, read_preset
from ..registry import Registry

if TYPE_CHECKING:
    from .base import InputSelect, SelectedInputs, SpaceCost, SRModelSpace

__all__ = [
    "SRModelSpace", "InputSelect", "SelectedInputs", "SpaceCost",
    "register_space", "get", "list_spaces", "load_space_preset", "space_preset_names", "SPACE_PRESET_DIR",
]

#: The built-in spaces: each is registered under its name by the module of that name, on first use.
_SPACE_MODULES = {name: f"{__name__}.{name}" for name in ("hnas", "trilevel", "hinas", "dlsr", "deconas")}

#: YAML presets users swap (``search_spaces/`` in a clone); kept under this name for callers.
SPACE_PRESET_DIR = SPACE_PRESETS

#: The space contract, imported from :mod:`.base` (and with it NNI) when first asked for.
_BASE_NAMES = ("SRModelSpace", "InputSelect", "SelectedInputs", "SpaceCost")


def __getattr__(name: str) -> Any:
    if name in _BASE_NAMES:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SPACES: Registry[Callable[..., SRModelSpace]] = Registry("space", error=ModelSpecError, modules=_SPACE_MODULES)


def register_space(name: str):
    """Decorator: register a space class (or builder) under ``name``."""
    return _SPACES.register(name)


def list_spaces() -> list[str]:
    return _SPACES.names()


def get(name: str, **kwargs: Any) -> SRModelSpace:
    """Build the space ``name`` with constructor arguments ``kwargs`` (e.g. ``scale=3``)."""
    builder = _SPACES.lookup(name)
    try:
        return builder(**kwargs)
    except TypeError as exc:
        raise ModelSpecError(f"space {name!r}: bad arguments {kwargs}: {exc}") from None


def space_preset_names() -> list[str]:
    return preset_names(SPACE_PRESET_DIR)


def load_space_preset(reference: str | Path, **overrides: Any) -> SRModelSpace:
    """Build a space from a YAML preset name (``"dlsr-proxy"``) or path; ``overrides`` win."""
    data, source = read_preset(reference, SPACE_PRESET_DIR, kind="space", required_key="space")
    kwargs = {k: v for k, v in data.items() if k not in ("space", "description")}
    kwargs.update(overrides)
    try:
        return get(str(data["space"]), **kwargs)
    except ModelSpecError as exc:
        raise ModelSpecError(f"{source}: {exc}") from None


def _build_from_space_spec(spec: dict, scale: int | None) -> Any:
    """Model-spec resolver: ``{"space": name, "space_kwargs": {...}, "sample": {...}, "scale": s}``."""
    unknown = set(spec) - {"space", "space_kwargs", "sample", "scale"}
    if unknown:
        raise ModelSpecError(f"unknown key(s) {sorted(unknown)} in a space spec; "
                             "expected space, space_kwargs, sample, scale")
    kwargs = dict(spec.get("space_kwargs") or {})
    chosen = scale if scale is not None else spec.get("scale", kwargs.get("scale"))
    if chosen is not None:
        kwargs["scale"] = int(chosen)
    space = get(str(spec["space"]), **kwargs)
    try:
        return space.freeze(dict(spec.get("sample") or {}))
    except Exception as exc:  # NNI's SampleValidationError and friends
        raise ModelSpecError(f"sample does not fit space {spec['space']!r}: {str(exc).splitlines()[0]}") from None
