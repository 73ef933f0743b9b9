"""Search strategies as NNI 3.0 strategies, selectable by name.

``get("random", seed=0)`` builds a registered strategy; ``load_strategy_preset("random")`` builds
one from ``strategies/<name>.yaml`` (``name:`` plus keyword arguments, the shape of NNI's
``tuner: {name, classArgs}``). Third-party packages register strategies through the Python entry
point group ``srnas_nni.strategies`` (``name = "package.module:StrategyClass"``).

Modules: :mod:`.builtin` (NNI's own strategies, with a Pareto archive for multi-trial ones),
:mod:`.optuna` (Optuna samplers: NSGA-II/III, TPE, GP, random), :mod:`.pareto` (the archive),
:mod:`.encoding` (a space as flat categorical choices), :mod:`.sparsestmax` (the SparsestMax
relaxation of Trilevel NAS, a drop-in ``softmax`` for DARTS-style strategies).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import SRNASError

__all__ = ["register_strategy", "get", "list_strategies", "load_strategy_preset", "strategy_preset_names",
           "STRATEGY_PRESET_DIR", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "srnas_nni.strategies"
#: YAML presets users swap: ``strategies/`` at the top of the project.
STRATEGY_PRESET_DIR = Path(__file__).resolve().parents[2] / "strategies"
#: Modules of this package that register strategies when imported.
_STRATEGY_MODULES = ("builtin", "optuna")

_BUILDERS: dict[str, Callable[..., Any]] = {}
_OPTIONS: dict[str, tuple[str, ...]] = {}
_loaded = False


def register_strategy(name: str, *, options: tuple[str, ...] | None = None):
    """Decorator: register a strategy class (or builder) under ``name``.

    ``options`` lists the keyword arguments it accepts, for builders whose signature cannot tell
    (NNI's strategies take ``**kwargs`` and ignore what they do not know: a typo in a YAML preset
    would pass silently). Without it the signature is used.
    """

    def decorate(builder):
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"strategy {name!r} is registered twice")
        _BUILDERS[name] = builder
        if options is not None:
            _OPTIONS[name] = tuple(options)
        return builder

    return decorate


def _accepted_options(name: str) -> tuple[str, ...] | None:
    if name in _OPTIONS:
        return _OPTIONS[name]
    try:
        parameters = inspect.signature(_BUILDERS[name]).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL and p.name != "self")


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _STRATEGY_MODULES:
        importlib.import_module(f"{__name__}.{module}")
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in _BUILDERS:
            try:
                _BUILDERS[entry.name] = entry.load()
            except Exception as exc:  # a broken plug-in must not take the built-ins down
                raise SRNASError(f"strategy plug-in {entry.name!r} ({entry.value}) failed to load: {exc}") from None


def list_strategies() -> list[str]:
    _load_all()
    return sorted(_BUILDERS)


def get(name: str, **kwargs: Any):
    """Build the strategy ``name`` with keyword arguments ``kwargs``."""
    _load_all()
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, _BUILDERS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SRNASError(f"unknown strategy {name!r}{hint}; available: {', '.join(sorted(_BUILDERS))}")
    accepted = _accepted_options(name)
    unknown = sorted(set(kwargs) - set(accepted)) if accepted is not None else []
    if unknown:
        close = difflib.get_close_matches(unknown[0], accepted, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SRNASError(f"strategy {name!r}: unknown option(s) {unknown}{hint}; options: {', '.join(accepted)}")
    try:
        return _BUILDERS[name](**kwargs)
    except TypeError as exc:
        raise SRNASError(f"strategy {name!r}: bad arguments {kwargs}: {exc}") from None


def strategy_preset_names() -> list[str]:
    return sorted(p.stem for p in STRATEGY_PRESET_DIR.glob("*.yaml"))


def load_strategy_preset(reference: str | Path, **overrides: Any):
    """Build a strategy from a YAML preset name (``"random"``) or path; ``overrides`` win."""
    path = Path(reference)
    if path.suffix not in (".yaml", ".yml"):
        path = STRATEGY_PRESET_DIR / f"{reference}.yaml"
        if not path.exists():
            names = strategy_preset_names()
            close = difflib.get_close_matches(str(reference), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SRNASError(f"unknown strategy preset {reference!r}{hint}; available: {', '.join(names)}")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SRNASError(f"{path}: no such strategy preset file") from None
    except yaml.YAMLError as exc:
        raise SRNASError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or "name" not in data:
        raise SRNASError(f"{path}: a strategy preset is a mapping with a 'name' key")
    kwargs = {k: v for k, v in data.items() if k not in ("name", "description")}
    kwargs.update(overrides)
    try:
        return get(str(data["name"]), **kwargs)
    except SRNASError as exc:
        raise SRNASError(f"{path}: {exc}") from None
