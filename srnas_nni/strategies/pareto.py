"""The Pareto archive of a multi-objective SR search: PSNR up, parameters down, Mult-Adds down.

NNI ranks models by the single ``'default'`` number and keeps nothing else; the evaluator's raw
metric dicts reach strategies only through engine events. :class:`ParetoArchive` keeps every
evaluated architecture with its objectives and answers which are non-dominated.
:class:`ParetoArchiveMixin` gives any NNI multi-trial strategy that archive: it records each
``FinalMetric`` event and makes ``list_models()`` return the Pareto set, best PSNR first; the
archive is part of the strategy's ``state_dict`` so a resumed search keeps it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..nni_adapter.loader import nni  # noqa: F401  (NNI imported under our warning filter)
from ..study.objectives import dominates, objective_vector

from ..nni_adapter.strategy import FinalMetricEvent, ModelEventType  # noqa: E402

__all__ = ["ArchiveEntry", "ParetoArchive", "ParetoArchiveMixin"]


@dataclass
class ArchiveEntry:
    sample: dict[str, Any]
    metrics: dict[str, Any]
    model: Any = field(default=None, repr=False, compare=False)  # NNI's ExecutableModelSpace, not saved


class ParetoArchive:
    """Every evaluated architecture with its objectives; the non-dominated ones on demand."""

    def __init__(self) -> None:
        self.entries: list[ArchiveEntry] = []

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, sample: dict[str, Any], metrics: dict[str, Any] | float, model: Any = None) -> ArchiveEntry:
        if not isinstance(metrics, dict):
            metrics = {"default": float(metrics)}
        entry = ArchiveEntry(dict(sample or {}), dict(metrics), model)
        self.entries.append(entry)
        return entry

    def front(self) -> list[ArchiveEntry]:
        """Non-dominated entries with all three objectives, best PSNR first (O(n^2), n = trials)."""
        complete = [e for e in self.entries if objective_vector(e.metrics) is not None]
        front = [e for e in complete if not any(dominates(o.metrics, e.metrics) for o in complete if o is not e)]
        unique: list[ArchiveEntry] = []
        for entry in front:  # the same architecture evaluated twice counts once
            if not any(u.sample == entry.sample and u.metrics == entry.metrics for u in unique):
                unique.append(entry)
        return sorted(unique, key=lambda e: (-float(e.metrics["psnr"]), e.metrics["params"], e.metrics["multadds"]))

    def state_dict(self) -> dict[str, Any]:
        # Plain data only: JSON turns NNI's ``label`` keys (a str subclass) into str, tuples into lists.
        return {"entries": [{"sample": _jsonable(e.sample), "metrics": _jsonable(e.metrics)} for e in self.entries]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = [ArchiveEntry(dict(e["sample"]), dict(e["metrics"])) for e in state.get("entries", [])]


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(metrics, default=str))


class ParetoArchiveMixin:
    """Mix into an NNI ``Strategy`` (before it in the bases) to keep a :class:`ParetoArchive`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.archive = ParetoArchive()

    def _initialize(self, model_space, engine):
        initialized = super()._initialize(model_space, engine)
        engine.register_model_event_callback(ModelEventType.FinalMetric, self._record_final_metric)
        return initialized

    def _cleanup(self) -> None:
        try:
            self.engine.unregister_model_event_callback(ModelEventType.FinalMetric, self._record_final_metric)
        finally:
            super()._cleanup()

    def _record_final_metric(self, event: FinalMetricEvent) -> None:
        self.archive.add(getattr(event.model, "sample", {}) or {}, event.metric, event.model)

    def list_models(self, sort: bool = True, limit: int | None = None) -> Iterator[Any]:
        """With ``sort`` (NNI's default): the Pareto set, best PSNR first; else the full history."""
        if not sort:
            yield from super().list_models(sort=False, limit=limit)
            return
        front = [e.model for e in self.archive.front() if e.model is not None]
        yield from front[:limit] if limit is not None else front

    def state_dict(self) -> dict[str, Any]:
        try:
            state = dict(super().state_dict())
        except NotImplementedError:  # NNI's base Strategy has no state of its own
            state = {}
        return {**state, "pareto_archive": self.archive.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        self.archive.load_state_dict(state_dict.pop("pareto_archive", {}))
        try:
            super().load_state_dict(state_dict)
        except NotImplementedError:
            pass
