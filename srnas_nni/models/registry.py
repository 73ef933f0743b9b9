"""Model registry: a name maps to a builder; a model spec (JSON) maps to a built model.

Every SR model in srnas-nni honours one contract: it is an ``nn.Module`` that maps an RGB LR
batch (float ``NxCxhxw`` in [0, 1], ``C = model.in_channels``, normally 3) to an RGB HR batch of
``scale`` times the size, and it has an integer attribute ``scale``. Builders take the scale as
their first argument: ``builder(scale, **kwargs)``.

A *model spec* is what ``srnas train``/``srnas evaluate`` accept and what exports write::

    {"model": "carn_m", "kwargs": {"multi_scale": false}, "scale": 2}

(``scale`` optional; the command line can give it). Search spaces (a later layer) add specs of the
form ``{"space": ..., "sample": ...}`` through :func:`register_spec_resolver`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ModelSpecError
from ..registry import Registry
from ..runtime import atomic_torch_save, read_json_file

__all__ = [
    "ModelEntry",
    "register_model",
    "list_models",
    "get_entry",
    "build_model",
    "load_spec",
    "build_from_spec",
    "register_spec_resolver",
    "save_model_file",
    "resolve_model",
    "ResolvedModel",
]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    scales: tuple[int, ...]
    description: str
    trainable: bool = True


# Filled by the modules that define models: this package's baselines (imported by the package), and
# the spaces layer's published architectures and space specs (srnas_nni.spaces.published), which the
# layers above import before they resolve a reference.
_MODELS: Registry[ModelEntry] = Registry("model", error=ModelSpecError)
_SPEC_RESOLVERS: dict[str, Callable[[dict, int | None], nn.Module]] = {}


def register_model(name: str, *, scales=(2, 3, 4), description: str = "", trainable: bool = True):
    """Decorator: register ``builder(scale, **kwargs) -> nn.Module`` under ``name``."""

    def decorate(builder):
        text = description or ((builder.__doc__ or "").strip().splitlines() or [""])[0]
        _MODELS.register(name, ModelEntry(name, builder, tuple(scales), text, trainable))
        return builder

    return decorate


def list_models() -> list[str]:
    return _MODELS.names()


def get_entry(name: str) -> ModelEntry:
    return _MODELS.lookup(name)


def build_model(name: str, scale: int, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` for ``scale``."""
    entry = get_entry(name)
    if scale not in entry.scales:
        raise ModelSpecError(
            f"model {name!r} is defined for scales {list(entry.scales)}, not x{scale}"
        )
    try:
        return entry.builder(scale, **kwargs)
    except TypeError as exc:
        raise ModelSpecError(f"model {name!r}: bad arguments {kwargs}: {exc}") from None


def register_spec_resolver(key: str, resolver: Callable[[dict, int | None], nn.Module]) -> None:
    """Let another layer build specs that carry ``key`` (e.g. ``"space"``)."""
    _SPEC_RESOLVERS[key] = resolver


def load_spec(path: str | Path) -> dict:
    """Read a model spec JSON file, with errors that name the file."""
    path = Path(path)
    spec = read_json_file(path, error=ModelSpecError)
    if not isinstance(spec, dict):
        raise ModelSpecError(f"{path}: a model spec is a JSON object, got {type(spec).__name__}")
    return spec


def build_from_spec(spec: dict, scale: int | None = None, *, source: str = "model spec") -> nn.Module:
    """Build a model from a spec dict; ``scale`` overrides the spec's own when given."""
    list_models()  # loading the built-in models also registers the resolver of space specs
    if "model" in spec:
        unknown = set(spec) - {"model", "kwargs", "scale"}
        if unknown:
            raise ModelSpecError(f"{source}: unknown key(s) {sorted(unknown)}; expected model, kwargs, scale")
        chosen = scale if scale is not None else spec.get("scale")
        if chosen is None:
            raise ModelSpecError(f"{source}: no scale given (set 'scale' in the spec or pass --scale)")
        kwargs = spec.get("kwargs", {}) or {}
        if not isinstance(kwargs, dict):
            raise ModelSpecError(f"{source}: 'kwargs' must be an object, got {type(kwargs).__name__}")
        try:
            return build_model(str(spec["model"]), int(chosen), **kwargs)
        except ModelSpecError as exc:
            raise ModelSpecError(f"{source}: {exc}") from None
    for key, resolver in _SPEC_RESOLVERS.items():
        if key in spec:
            return resolver(spec, scale)
    expected = ", ".join(["model"] + sorted(_SPEC_RESOLVERS))
    raise ModelSpecError(f"{source}: a model spec needs one of the keys: {expected}")


# -- trained model files ----------------------------------------------------------------------

MODEL_FILE_FORMAT = "srnas-model/1"


def save_model_file(path, model: nn.Module, spec: dict, scale: int, extra: dict | None = None) -> Path:
    """Write weights together with the spec that rebuilds the architecture (atomically)."""
    payload = {
        "format": MODEL_FILE_FORMAT,
        "spec": spec,
        "scale": int(scale),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    return atomic_torch_save(payload, path)


@dataclass
class ResolvedModel:
    model: nn.Module
    spec: dict
    scale: int
    trained: bool
    source: str


def resolve_model(reference: str, scale: int | None = None) -> ResolvedModel:
    """Turn what a user typed after ``--model`` into a model.

    ``reference`` is a registered name (``carn_m``), a model spec JSON file, or a model file
    written by ``srnas train`` (weights included). ``scale`` is required unless the spec or the
    model file carries one; a model file cannot be used at another scale than it was trained for.
    """
    path = Path(reference).expanduser()
    if path.suffix == ".json" or (path.exists() and path.is_file() and path.suffix != ".pt"):
        spec = load_spec(path)
        model = build_from_spec(spec, scale, source=str(path))
        return ResolvedModel(model, spec, int(getattr(model, "scale", scale or 0)), False, str(path))
    if path.suffix == ".pt" or path.is_dir():
        file = path / "model.pt" if path.is_dir() else path
        return _load_model_file(file, scale)
    chosen = scale
    if chosen is None:
        raise ModelSpecError(f"model {reference!r}: give the scale (--scale)")
    spec = {"model": reference, "scale": int(chosen)}
    return ResolvedModel(build_model(reference, int(chosen)), spec, int(chosen), False, reference)


def _load_model_file(file: Path, scale: int | None) -> ResolvedModel:
    if not file.exists():
        raise ModelSpecError(f"{file}: no such model file")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelSpecError(f"{file}: not a readable model file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FILE_FORMAT:
        raise ModelSpecError(f"{file}: not an srnas model file (expected format {MODEL_FILE_FORMAT})")
    trained_scale = int(payload["scale"])
    if scale is not None and int(scale) != trained_scale:
        raise ModelSpecError(f"{file}: trained for x{trained_scale}, asked for x{scale}")
    model = build_from_spec(payload["spec"], trained_scale, source=str(file))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelSpecError(f"{file}: weights do not fit the architecture: {str(exc).splitlines()[0]}") from None
    return ResolvedModel(model, payload["spec"], trained_scale, True, str(file))
