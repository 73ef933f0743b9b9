"""The search spaces of the five seed SR-NAS systems, as NNI 3.0 model spaces.

A name maps to a builder (``get("dlsr", scale=4)``); YAML presets in ``search_spaces/`` name a
builder and its arguments (``load_space_preset("dlsr-proxy")``); the papers' final architectures
are frozen samples in :mod:`srnas_nni.spaces.presets`.

Spaces: ``hnas`` (Guo et al., arXiv 2003.04619), ``trilevel`` (Wu et al., 2101.06658), ``hinas``
(Zhang et al., 2012.13212), ``dlsr`` (Huang et al., 2105.03939), ``deconas`` (Ahn & Cho,
2104.09048).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from ..errors import ModelSpecError
from ..presets import preset_names, read_preset
from ..registry import Registry
from .base import InputSelect, SelectedInputs, SpaceCost, SRModelSpace

__all__ = [
    "SRModelSpace", "InputSelect", "SelectedInputs", "SpaceCost",
    "register_space", "get", "list_spaces", "load_space_preset", "space_preset_names", "SPACE_PRESET_DIR",
]

#: Modules that define (and register) the spaces, imported on first use.
_SPACE_MODULES = ("hnas", "trilevel", "hinas", "dlsr", "deconas")

#: YAML presets users swap: ``search_spaces/`` at the top of the project.
SPACE_PRESET_DIR = Path(__file__).resolve().parents[2] / "search_spaces"


def _load_all() -> None:
    for module in _SPACE_MODULES:
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module}":
                raise


_SPACES: Registry[Callable[..., SRModelSpace]] = Registry("space", error=ModelSpecError, loader=_load_all)


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


def _register_spec_resolver() -> None:
    from ..models import register_spec_resolver

    register_spec_resolver("space", _build_from_space_spec)


_register_spec_resolver()
