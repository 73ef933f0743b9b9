"""Multi-trial hierarchical RL: :class:`HierarchicalRL`, an NNI ``Strategy`` with a Pareto archive.

It samples an architecture from the controller, submits ``model_space.freeze(sample)`` to the engine,
reads ``psnr`` from the trial's final metric dict, turns it into a reward (:mod:`.rewards`) and
updates the controller every ``controller_batch`` rewards (:mod:`.reinforce`).

**Failures.** A trial that raises, reports NaN or no ``psnr`` (engine status ``Failed``, or trained
without a usable metric) gets the reward of a model with PSNR ``failure_psnr`` (0 dB by default) at
its own cost; it is recorded (not retried with ``dedup``) and the search goes on.

**Duplicates.** With ``dedup`` (default) an architecture already evaluated is not trained again: the
controller receives its recorded reward, without a trial. After ``max_duplicates`` duplicates in a
row the controller has converged and the search ends.

**State** (``state_dict``/``load_state_dict``, saved by ``NasExperiment``): the learner's (controller
weights and optimiser, baseline, the sampling generator's state, counters, pending rewards), every
evaluated sample with its reward, and the Pareto archive. A trial still running when the state is
saved has no result yet: after a resume its architecture may be sampled and trained again.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any, Mapping

from ...nni_adapter.strategy import FinalMetricEvent, ModelEventType, ModelStatus, Strategy, TrainingEndEvent
from ...study.keys import canonical_sample
from ..pareto import ParetoArchiveMixin
from .controller import HierarchicalController, build_controller
from .options import HierarchicalRLOptions
from .reinforce import ReinforceLearner
from .rewards import make_reward
from .search_space import check_space, sr_space_of

__all__ = ["HierarchicalRL"]

_logger = logging.getLogger(__name__)


class HierarchicalRL(ParetoArchiveMixin, Strategy):
    """Multi-trial hierarchical RL search (module docstring) with ``options`` of the multi-trial mode.

    ``get("hierarchical_rl", ...)`` (:func:`~srnas_nni.strategies.hierarchical_rl.hierarchical_rl`) builds it.
    """

    def __init__(self, options: HierarchicalRLOptions):
        super().__init__()
        self.options = options
        self.learner: ReinforceLearner | None = None
        self.reward_fn: Any = None
        self.space: Any = None
        #: sample key -> {"sample", "psnr" (None: failed), "reward"}: every evaluated architecture.
        self.evaluated: dict[str, dict[str, Any]] = {}
        self.failures = 0
        self.duplicates_in_a_row = 0
        self.last_update: dict[str, float] = {}
        self._in_flight: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._final_psnr: dict[int, float | None] = {}
        self._lock = threading.RLock()

    check_space = staticmethod(check_space)

    def extra_repr(self) -> str:
        return f"preset={self.options.preset!r}, reward={self.options.reward!r}"

    def _initialize(self, model_space, engine):
        model_space = super()._initialize(model_space, engine)
        self.space = sr_space_of(model_space)
        controller, generator = build_controller(self.space, self.options)
        self.learner = ReinforceLearner(controller, self.options, generator)
        self.reward_fn = make_reward(self.options.reward, self.space, self.options)
        engine.register_model_event_callback(ModelEventType.FinalMetric, self._on_final_metric)
        engine.register_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)
        return model_space

    def _cleanup(self) -> None:
        try:
            self.engine.unregister_model_event_callback(ModelEventType.FinalMetric, self._on_final_metric)
            self.engine.unregister_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)
        finally:
            super()._cleanup()

    @property
    def controller(self) -> HierarchicalController:
        assert self.learner is not None, "the strategy is not initialized"
        return self.learner.controller

    def _run(self) -> None:
        assert self.learner is not None
        while self.engine.budget_available():
            if not self.wait_for_resource():
                break
            with self._lock:
                rollout = self.learner.sample()
                key = canonical_sample(rollout.sample)
                in_flight = any(k == key for k, _ in self._in_flight.values())
                if self.options.dedup and in_flight:  # its result is on the way (parallel engines)
                    time.sleep(0.05)
                    continue
                if self.options.dedup and key in self.evaluated:
                    # the controller learns from the recorded result, without a trial
                    self.duplicates_in_a_row += 1
                    record = self.evaluated[key]
                    self._observe(record["sample"], record["psnr"], record["reward"])
                    if self.duplicates_in_a_row >= self.options.max_duplicates:
                        _logger.info("hierarchical_rl: %d duplicate samples in a row; the controller has converged",
                                     self.duplicates_in_a_row)
                        return
                    continue
                self.duplicates_in_a_row = 0
                model = self.model_space.freeze(rollout.sample)
                self._in_flight[id(model)] = (key, rollout.sample)
            self.engine.submit_models(model)

    # -- engine events -----------------------------------------------------------------------

    def _on_final_metric(self, event: FinalMetricEvent) -> None:
        with self._lock:
            self._final_psnr[id(event.model)] = _psnr_of(event.metric)

    def _on_training_end(self, event: TrainingEndEvent) -> None:
        with self._lock:
            entry = self._in_flight.pop(id(event.model), None)
            psnr = self._final_psnr.pop(id(event.model), None)
            if entry is None:  # not ours (another strategy on the same engine)
                return
            key, sample = entry
            if event.status != ModelStatus.Trained or psnr is None:
                _logger.warning("hierarchical_rl: trial failed (%s, psnr %s); reward of a %.1f dB model",
                                event.status.value, psnr, self.options.failure_psnr)
                self.failures += 1
                psnr = None
            reward = self.reward_fn(self.options.failure_psnr if psnr is None else psnr, sample)
            self.evaluated[key] = {"sample": sample, "psnr": psnr, "reward": reward}
            self._observe(sample, psnr, reward)

    def _observe(self, sample: Mapping[str, Any], psnr: float | None, reward: float) -> None:
        assert self.learner is not None
        logs = self.learner.observe(sample, self.options.failure_psnr if psnr is None else psnr, reward)
        if logs is not None:
            self.last_update = logs
            _logger.info("hierarchical_rl update %d: %s", self.learner.updates,
                         ", ".join(f"{k} {v:.4g}" for k, v in logs.items()))

    # -- results and state -------------------------------------------------------------------

    def export_probs(self) -> dict[str, dict[Any, float]]:
        """The controller's per-label probabilities along its most likely architecture."""
        return self.controller.greedy().probs

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        with self._lock:
            if self.learner is None:
                return state
            return {**state, "learner": self.learner.state_dict(), "evaluated": json.loads(json.dumps(self.evaluated)),
                    "failures": self.failures, "duplicates_in_a_row": self.duplicates_in_a_row}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        learner = state.pop("learner", None)
        evaluated = state.pop("evaluated", {})
        failures = state.pop("failures", 0)
        duplicates = state.pop("duplicates_in_a_row", 0)
        super().load_state_dict(state)
        if learner is not None:
            assert self.learner is not None, "load_state_dict() comes after initialize()"
            self.learner.load_state_dict(learner)
        self.evaluated = dict(evaluated)
        self.failures = int(failures)
        self.duplicates_in_a_row = int(duplicates)


def _psnr_of(metric: Any) -> float | None:
    """The PSNR of a trial's final metric (a dict with ``psnr`` or ``default``, or a number); None if unusable."""
    if isinstance(metric, Mapping):
        metric = metric.get("psnr", metric.get("default"))
    try:
        value = float(metric)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value
