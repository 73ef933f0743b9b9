"""Search strategies as NNI 3.0 strategies, selectable by name: the registry.

``get("random", seed=0)`` builds a registered strategy; ``load_strategy_preset("random")`` builds
one from the preset ``random.yaml`` in :data:`srnas_nni.presets.STRATEGY_PRESETS` (``strategies/``
in a clone): ``name:`` plus keyword arguments, the shape of NNI's ``tuner: {name, classArgs}``.
A strategy declares its options once, as a dataclass given to :func:`register_strategy`; ``get``
rejects an unknown option by name (with the closest valid one) before building anything.
Third-party packages register strategies through the Python entry point group
``srnas_nni.strategies`` (``name = "package.module:StrategyClass"``).

Modules: :mod:`.builtin` (NNI's own strategies, with a Pareto archive for multi-trial ones),
:mod:`.pareto` (the archive), :mod:`.optuna` (Optuna samplers: NSGA-II/III, TPE, GP, random,
evolution), :mod:`.differentiable` (DARTS-family searches: the shared machinery, the SparsestMax
relaxation of Trilevel NAS, sparsestmax_darts, dlsr, hinas), :mod:`.hierarchical_rl` (the HNAS /
DeCoNAS controller, multi-trial and with parameter sharing). The registry loads them by module name
on first lookup (a plug-in mechanism, as entry points are), so ``import srnas_nni.strategies`` is light.

Layer: imports the layers beneath (basics, study, nni_adapter, models, evaluation, spaces).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from ..errors import SRNASError
from ..presets import STRATEGY_PRESETS, closest_hint, preset_names, read_preset
from ..registry import Registry

__all__ = ["register_strategy", "get", "accepts_option", "is_one_shot", "list_strategies", "check_compatible",
           "load_strategy_preset", "strategy_preset_names",
           "STRATEGY_PRESET_DIR", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "srnas_nni.strategies"
#: YAML presets users swap (``strategies/`` in a clone); kept under this name for callers.
STRATEGY_PRESET_DIR = STRATEGY_PRESETS
#: Modules of this package that register strategies when imported.
_STRATEGY_MODULES = ("builtin", "optuna", "hierarchical_rl", "differentiable.sparsestmax_darts", "differentiable.dlsr",
                     "differentiable.hinas")


def _load_all() -> None:
    for module in _STRATEGY_MODULES:
        importlib.import_module(f"{__name__}.{module}")
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in _STRATEGIES:  # the loader runs once: no recursion here
            try:
                _STRATEGIES.register(entry.name, entry.load())
            except Exception as exc:  # a broken plug-in must not take the built-ins down
                raise SRNASError(f"strategy plug-in {entry.name!r} ({entry.value}) failed to load: {exc}") from None


_STRATEGIES: Registry[Callable[..., Any]] = Registry("strategy", loader=_load_all)
_OPTIONS: dict[str, tuple[str, ...]] = {}


def register_strategy(name: str, *, options: Any = None):
    """Decorator: register a strategy class (or builder) under ``name``.

    ``options`` declares the keyword arguments it accepts: a dataclass (the strategy's own options
    type: its fields are the options, declared once, and the strategy builds and validates it) or,
    for NNI's strategies, which take ``**kwargs`` and ignore what they do not know (a typo in a YAML
    preset would pass silently), a tuple of names. Without it the signature is used.
    """

    def decorate(builder):
        _STRATEGIES.register(name, builder)
        if dataclasses.is_dataclass(options):
            _OPTIONS[name] = tuple(field.name for field in dataclasses.fields(options))
        elif options is not None:
            _OPTIONS[name] = tuple(options)
        return builder

    return decorate


def _accepted_options(name: str) -> tuple[str, ...] | None:
    builder = _STRATEGIES.lookup(name)  # first: loads the built-in modules, which declare their options
    if name in _OPTIONS:
        return _OPTIONS[name]
    try:
        parameters = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL and p.name != "self")


def accepts_option(name: str, option: str) -> bool:
    """Whether the registered strategy ``name`` takes the keyword argument ``option`` (False when it cannot tell)."""
    accepted = _accepted_options(name)
    return accepted is not None and option in accepted


def is_one_shot(strategy: Any) -> bool:
    """Whether ``strategy`` trains one supernet (NNI's one-shot family) rather than one network per trial."""
    from ..nni_adapter.oneshot import OneShotStrategy

    return isinstance(strategy, OneShotStrategy)


def list_strategies() -> list[str]:
    return _STRATEGIES.names()


def check_compatible(strategy: Any, space: Any) -> None:
    """Raise :class:`SRNASError` saying why ``strategy`` (a registered name or a built strategy) cannot search
    ``space``.

    A strategy declares what it needs with ``check_space(space)`` (a classmethod, or a method when the
    answer depends on its options) that raises ``SRNASError`` with the reason; a strategy without one
    is taken to support every space.
    """
    target = _STRATEGIES.lookup(strategy) if isinstance(strategy, str) else strategy
    check = getattr(target, "check_space", None)
    if check is not None:
        label = strategy if isinstance(strategy, str) else type(strategy).__name__
        try:
            check(space)
        except SRNASError as exc:
            raise SRNASError(f"strategy {label!r} cannot search {type(space).__name__}: {exc}") from None


def get(name: str, **kwargs: Any):
    """Build the strategy ``name`` with keyword arguments ``kwargs``."""
    builder = _STRATEGIES.lookup(name)
    accepted = _accepted_options(name)
    unknown = sorted(set(kwargs) - set(accepted)) if accepted is not None else []
    if unknown:
        raise SRNASError(f"strategy {name!r}: unknown option(s) {unknown}{closest_hint(unknown[0], accepted)}; "
                         f"options: {', '.join(accepted)}")
    try:
        return builder(**kwargs)
    except TypeError as exc:
        raise SRNASError(f"strategy {name!r}: bad arguments {kwargs}: {exc}") from None


def strategy_preset_names() -> list[str]:
    return preset_names(STRATEGY_PRESET_DIR)


def load_strategy_preset(reference: str | Path, **overrides: Any):
    """Build a strategy from a YAML preset name (``"random"``) or path; ``overrides`` win."""
    data, path = read_preset(reference, STRATEGY_PRESET_DIR, kind="strategy", required_key="name")
    kwargs = {k: v for k, v in data.items() if k not in ("name", "description")}
    kwargs.update(overrides)
    try:
        return get(str(data["name"]), **kwargs)
    except SRNASError as exc:
        raise SRNASError(f"{path}: {exc}") from None
