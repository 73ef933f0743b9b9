"""The objectives every srnas-nni search optimises, and dominance between them.

PSNR up, parameters down, Mult-Adds down: :data:`OBJECTIVES` is the one definition. The Optuna study's
metric names and directions (:data:`METRIC_NAMES`, :data:`DIRECTIONS`), the vector a trial is told
(:func:`objective_values`) and Pareto dominance (:func:`dominates`) are all derived from it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

__all__ = ["OBJECTIVES", "METRIC_NAMES", "DIRECTIONS", "objective_values", "objective_vector", "dominates",
           "dominates_values"]

#: (metric key, direction) of each objective, in the study's order.
OBJECTIVES: tuple[tuple[str, str], ...] = (("psnr", "max"), ("params", "min"), ("multadds", "min"))
#: The Optuna study's metric names and directions.
METRIC_NAMES: list[str] = [key for key, _ in OBJECTIVES]
DIRECTIONS: list[str] = ["maximize" if direction == "max" else "minimize" for _, direction in OBJECTIVES]


def objective_values(metric: Any) -> list[float] | None:
    """``[psnr, params, multadds]`` of a reported metric dict, what a study trial is told; None if any is
    missing, not a number or not finite."""
    metric = metric if isinstance(metric, Mapping) else {}
    values = [metric.get(key) for key in METRIC_NAMES]
    try:
        if any(v is None or isinstance(v, bool) or not math.isfinite(float(v)) for v in values):
            return None
    except (TypeError, ValueError):
        return None
    return [float(v) for v in values]


def objective_vector(metrics: Mapping[str, Any]) -> tuple[float, ...] | None:
    """The objectives of a metric dict as numbers to maximise (minimised ones negated); None when one is
    missing or NaN (an infinite PSNR, a perfect reconstruction, still compares)."""
    values = []
    for key, direction in OBJECTIVES:
        value = metrics.get(key)
        if value is None:
            return None
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        if math.isnan(value):
            return None
        values.append(value if direction == "max" else -value)
    return tuple(values)


def dominates_values(a: Sequence[float], b: Sequence[float]) -> bool:
    """Pareto dominance of two objective vectors in the study's order and directions (:data:`OBJECTIVES`):
    ``a`` is at least as good as ``b`` in every objective and better in one."""
    signs = [1.0 if direction == "max" else -1.0 for _, direction in OBJECTIVES]
    va = [s * float(x) for s, x in zip(signs, a)]
    vb = [s * float(x) for s, x in zip(signs, b)]
    return all(x >= y for x, y in zip(va, vb)) and any(x > y for x, y in zip(va, vb))


def dominates(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """:func:`dominates_values` of two metric dicts; False when either lacks an objective."""
    va, vb = objective_vector(a), objective_vector(b)
    if va is None or vb is None:
        return False
    return all(x >= y for x, y in zip(va, vb)) and any(x > y for x, y in zip(va, vb))
