"""The Pareto front of a study: its non-dominated complete trials, as plain entries."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Sequence, TypeVar

import optuna

from .objectives import dominates_values

__all__ = ["non_dominated", "pareto_front", "front_entry", "SHARED_WEIGHTS"]

T = TypeVar("T")

#: ``source`` of a trial scored with a supernet's shared weights: an estimate, never on a front.
SHARED_WEIGHTS = "shared_weights"


def non_dominated(items: Iterable[T], values: Callable[[T], Sequence[float]]) -> list[T]:
    """The items no other item dominates (:func:`~srnas_nni.study.objectives.dominates_values`), in input order."""
    items = list(items)
    vectors = [tuple(values(item)) for item in items]
    return [item for item, v in zip(items, vectors) if not any(dominates_values(o, v) for o in vectors)]


def pareto_front(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's non-dominated complete trials (shared-weight estimates excluded), best PSNR first; an
    architecture with the same objectives twice counts once."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.user_attrs.get("source") != SHARED_WEIGHTS and t.values is not None]
    front = non_dominated(complete, lambda t: t.values)
    seen, unique = set(), []
    for trial in sorted(front, key=lambda t: (-t.values[0], t.values[1], t.values[2], t.number)):
        key = (trial.user_attrs.get("architecture"), tuple(trial.values))
        if key not in seen:
            seen.add(key)
            unique.append(trial)
    return [front_entry(t) for t in unique]


def front_entry(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One entry of ``pareto.json``'s front: trial number, architecture, objectives, SSIM, source, model file."""
    attrs = trial.user_attrs
    return {"trial": trial.number, "architecture": json.loads(attrs.get("architecture", "{}")),
            "psnr": trial.values[0], "ssim": attrs.get("ssim"), "params": int(trial.values[1]),
            "multadds": int(trial.values[2]), "source": attrs.get("source", "trial"),
            "model_file": attrs.get("model_file")}
