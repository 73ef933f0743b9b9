"""What both modes need of the space they search: its decisions in levels, and a cost model.

:func:`check_space` is the strategies' ``check_space`` (what :func:`srnas_nni.strategies.check_compatible`
asks); :func:`sr_space_of` finds the srnas-nni space behind the model space NNI hands a strategy.
"""

from __future__ import annotations

from typing import Any

from ...errors import SRNASError
from .controller import controller_levels_of

__all__ = ["check_space", "sr_space_of"]


def check_space(space: Any) -> None:
    """Raise :class:`SRNASError` when the controller cannot sample ``space`` or the rewards cannot cost it."""
    if not hasattr(space, "cost"):
        raise SRNASError("the space has no cost model (space.cost(sample)), which both rewards need")
    controller_levels_of(space)


def sr_space_of(model_space: Any) -> Any:
    """The SR space behind NNI's executable model space (``raw`` format: ``model_space``; ``engine: nni``'s
    :class:`~srnas_nni.nni_adapter.engine.FreezingModelSpace`: ``built_space()``)."""
    built_space = getattr(model_space, "built_space", None)
    space = built_space() if callable(built_space) else getattr(model_space, "model_space", model_space)
    if not hasattr(space, "cost") or not hasattr(space, "simplify"):
        raise SRNASError("hierarchical_rl needs an srnas-nni search space (with cost()) in NNI's 'raw' or "
                         "'simplified' model format")
    return space
