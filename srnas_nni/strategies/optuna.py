"""An NNI strategy driven by an Optuna sampler: multi-objective search of PSNR, params, Mult-Adds.

``get("optuna", sampler="nsga2")`` (or the presets ``nsga2``, ``nsga3``, ``optuna_tpe``, ``gp``,
``optuna_random`` in ``strategies/``). Each architecture is one Optuna trial: the strategy asks one
categorical per label of the space (through :class:`~.encoding.SpaceEncoding`, so ``InputChoice``
labels work too), freezes the sample, submits it to NNI's engine, and tells Optuna the three
objectives from the evaluator's metric dict (maximise PSNR, minimise params and Mult-Adds). A
candidate that fails, or reports no complete objectives, is told as a failed trial.

Samplers by name: ``nsga2`` (``NSGAIISampler``), ``nsga3`` (``NSGAIIISampler``), ``tpe``
(``TPESampler``, multi-objective), ``gp`` (``GPSampler``), ``random`` (``RandomSampler``);
``sampler_options`` go to the sampler's constructor. With ``storage`` (an SQLAlchemy URL) the study
persists and a restarted search continues it; in memory otherwise.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import optuna

from ..errors import SRNASError
from ..nni_compat import nni  # noqa: F401  (NNI imported under our warning filter)
from . import register_strategy
from .encoding import SpaceEncoding
from .pareto import OBJECTIVES, ParetoArchiveMixin

from nni.nas.execution import ModelEventType  # noqa: E402
from nni.nas.strategy import Strategy  # noqa: E402

__all__ = ["SAMPLERS", "make_sampler", "OptunaStrategy"]

SAMPLERS = {
    "nsga2": "NSGAIISampler",
    "nsga3": "NSGAIIISampler",
    "tpe": "TPESampler",
    "gp": "GPSampler",
    "random": "RandomSampler",
}
DIRECTIONS = ["maximize" if direction == "max" else "minimize" for _, direction in OBJECTIVES]
METRIC_NAMES = [key for key, _ in OBJECTIVES]


def make_sampler(name: str, seed: int | None = None, **options: Any) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise SRNASError(f"unknown Optuna sampler {name!r}; available: {', '.join(SAMPLERS)}")
    cls = getattr(optuna.samplers, SAMPLERS[name])
    try:
        return cls(seed=seed, **options)
    except TypeError as exc:
        raise SRNASError(f"sampler {name}: bad options {options}: {exc}") from None


@register_strategy("optuna", options=("sampler", "seed", "sampler_options", "storage", "study_name"))
class OptunaStrategy(ParetoArchiveMixin, Strategy):
    """Ask Optuna for architectures, tell it (PSNR, params, Mult-Adds); see the module docstring."""

    def __init__(self, sampler: str = "nsga2", seed: int | None = None, sampler_options: dict | None = None,
                 storage: str | None = None, study_name: str | None = None):
        super().__init__()
        self.sampler_name = sampler
        self.seed = seed
        self.sampler_options = dict(sampler_options or {})
        make_sampler(sampler, seed, **self.sampler_options)  # fail on bad options now, not at run time
        self.storage = storage
        self.study_name = study_name or f"srnas-{sampler}"
        self.study: optuna.Study | None = None
        self._trials: dict[Any, optuna.trial.Trial] = {}

    def _initialize(self, model_space, engine):
        initialized = super()._initialize(model_space, engine)
        engine.register_model_event_callback(ModelEventType.FinalMetric, self._tell_objectives)
        engine.register_model_event_callback(ModelEventType.TrainingEnd, self._tell_failure)
        self.study = optuna.create_study(
            study_name=self.study_name, storage=self.storage, directions=DIRECTIONS, load_if_exists=True,
            sampler=make_sampler(self.sampler_name, self.seed, **self.sampler_options),
        )
        with warnings.catch_warnings():  # set_metric_names is marked experimental; we rely on it knowingly
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names(METRIC_NAMES)
        return initialized

    def _cleanup(self) -> None:
        self.engine.unregister_model_event_callback(ModelEventType.FinalMetric, self._tell_objectives)
        self.engine.unregister_model_event_callback(ModelEventType.TrainingEnd, self._tell_failure)
        super()._cleanup()

    def _run(self) -> None:
        encoding = SpaceEncoding(self.model_space)
        distributions = {label: optuna.distributions.CategoricalDistribution(values)
                         for label, values in encoding.choices.items()}
        while self.engine.budget_available():
            if not self.engine.idle_worker_available():
                time.sleep(0.05)
                continue
            trial = self.study.ask(distributions)
            model = self.model_space.freeze(encoding.decode(trial.params))
            self._trials[model] = trial
            self.engine.submit_models(model)

    def _tell_objectives(self, event) -> None:
        trial = self._trials.pop(event.model, None)
        if trial is None:
            return
        metric = event.metric if isinstance(event.metric, dict) else {}
        values = [metric.get(key) for key in METRIC_NAMES]
        if any(v is None or not math.isfinite(float(v)) for v in values):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, [float(v) for v in values])

    def _tell_failure(self, event) -> None:
        # Still pending at the end of training: it failed, or finished without a final metric.
        trial = self._trials.pop(event.model, None)
        if trial is not None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def state_dict(self) -> dict[str, Any]:
        # Optuna keeps its own state in the study (persistent with ``storage``).
        return {**super().state_dict(), "study_name": self.study_name}
