"""An NNI strategy driven by an Optuna sampler: multi-objective search of PSNR, params, Mult-Adds.

``get("optuna", sampler="nsga2")`` (or the presets ``nsga2``, ``nsga3``, ``optuna_tpe``, ``gp``,
``optuna_random`` in ``strategies/``). Each architecture is one Optuna trial: the strategy asks one
categorical per label of the space (through :class:`~srnas_nni.spaces.encoding.SpaceEncoding`, so
``InputChoice`` labels work too), freezes the sample, submits it to NNI's engine, and tells Optuna the
three objectives from the evaluator's metric dict (maximise PSNR, minimise params and Mult-Adds). A
candidate that fails, or reports no complete objectives, is told as a failed trial.

Samplers by name: ``nsga2`` (``NSGAIISampler``), ``nsga3`` (``NSGAIIISampler``), ``tpe``
(``TPESampler``, multi-objective), ``gp`` (``GPSampler``), ``random`` (``RandomSampler``), ``evolution``
(:class:`~srnas_nni.study.evolution_sampler.RegularizedEvolutionSampler`: NNI's aging evolution with the study as
its population, so that ``srnas worker`` processes can share it); ``sampler_options`` go to the sampler's
constructor. With ``storage`` (an SQLAlchemy URL) the study persists and a restarted search continues it; in
memory otherwise. The options are declared once, in :class:`OptunaOptions`.

:class:`srnas_nni.nni_tuner.OptunaTuner` (:mod:`srnas_nni.nni_adapter.tuner`, re-exported here) is the same
search as an NNI HPO tuner, for ``nnictl`` experiment files.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import optuna

from ..nni_adapter.strategy import ModelEventType, Strategy  # first: NNI under the adapter's warning filter
from ..nni_adapter.tuner import (  # noqa: F401  (re-exported: the same classes by either path)
    OptunaGPTuner, OptunaNSGA2Tuner, OptunaNSGA3Tuner, OptunaRandomTuner, OptunaTPETuner, OptunaTuner,
)
from ..spaces.encoding import SpaceEncoding
from ..study.objectives import DIRECTIONS, METRIC_NAMES, objective_values  # noqa: F401
from ..study.sampler_state import restore_sampler_random_state, restore_study, sampler_random_state, study_to_plain
from ..study.storage import SAMPLERS, make_sampler, make_study  # noqa: F401
from . import register_strategy
from .pareto import ParetoArchiveMixin

__all__ = ["OptunaOptions", "OptunaStrategy", "OptunaTuner", "OptunaNSGA2Tuner", "OptunaNSGA3Tuner",
           "OptunaTPETuner", "OptunaGPTuner", "OptunaRandomTuner"]


@dataclass
class OptunaOptions:
    """Options of the ``optuna`` strategy (its YAML keys), checked on construction.

    Attributes:
        sampler: a name of :data:`~srnas_nni.study.storage.SAMPLERS`.
        seed: the sampler's seed (unseeded when None).
        sampler_options: keyword arguments of the sampler's constructor.
        storage: SQLAlchemy URL of the study (in memory when None).
        study_name: the study's name (default ``srnas-<sampler>``).
    """

    sampler: str = "nsga2"
    seed: int | None = None
    sampler_options: dict[str, Any] | None = None
    storage: str | None = None
    study_name: str | None = None

    def __post_init__(self) -> None:
        self.sampler_options = dict(self.sampler_options or {})
        make_sampler(self.sampler, self.seed, **self.sampler_options)  # fail on bad options now, not at run time
        self.study_name = self.study_name or f"srnas-{self.sampler}"


@register_strategy("optuna", options=OptunaOptions)
class OptunaStrategy(ParetoArchiveMixin, Strategy):
    """Ask Optuna for architectures, tell it (PSNR, params, Mult-Adds); see the module docstring.

    Arguments: the fields of :class:`OptunaOptions` (``sampler`` may be given by position), kept as
    :attr:`options`.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        self.options = OptunaOptions(*args, **kwargs)
        self.study: optuna.Study | None = None
        self._trials: dict[Any, optuna.trial.Trial] = {}
        #: ``(event, trial)`` called before a trial is told: adds user attributes (the run's tracking).
        self.trial_annotator: Callable[[Any, optuna.trial.Trial], None] | None = None
        #: ``(trial_number, metric)`` called after a trial is told.
        self.trial_recorded: Callable[[int, Any], None] | None = None
        #: Hold results in :attr:`pending_tells` until :meth:`flush_tells` (the search runner checkpoints
        #: in between, with them in this strategy's state, so a crash neither loses nor repeats a trial).
        self.defer_tells = False
        self.pending_tells: list[tuple[optuna.trial.Trial, list[float] | None, Any]] = []

    # The search runner points the strategy at the run's study through these two.
    @property
    def storage(self) -> str | None:
        return self.options.storage

    @storage.setter
    def storage(self, url: str | None) -> None:
        self.options.storage = url

    @property
    def study_name(self) -> str:
        return self.options.study_name

    @study_name.setter
    def study_name(self, name: str) -> None:
        self.options.study_name = name

    def _initialize(self, model_space, engine):
        initialized = super()._initialize(model_space, engine)
        engine.register_model_event_callback(ModelEventType.FinalMetric, self._tell_objectives)
        engine.register_model_event_callback(ModelEventType.TrainingEnd, self._tell_failure)
        options = self.options
        self.study = make_study(options.sampler, options.seed, options.sampler_options, options.storage,
                                options.study_name)
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
        if self.trial_annotator is not None:
            self.trial_annotator(event, trial)
        self._told(trial, objective_values(event.metric), event.metric)

    def _tell_failure(self, event) -> None:
        # Still pending at the end of training: it failed, or finished without a final metric.
        trial = self._trials.pop(event.model, None)
        if trial is not None:
            if self.trial_annotator is not None:
                self.trial_annotator(event, trial)
            self._told(trial, None, None)

    def _told(self, trial: optuna.trial.Trial, values: list[float] | None, metric: Any) -> None:
        if self.defer_tells:
            self.pending_tells.append((trial, values, metric))
            return
        self._tell(trial.number, values)
        if self.trial_recorded is not None:
            self.trial_recorded(trial.number, metric)

    def _tell(self, number: int, values: list[float] | None) -> None:
        if values is None:
            self.study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(number, values)

    def flush_tells(self) -> None:
        """Tell the results held back by ``defer_tells``."""
        pending, self.pending_tells = self.pending_tells, []
        for trial, values, metric in pending:
            self._tell(trial.number, values)
            if self.trial_recorded is not None:
                self.trial_recorded(trial.number, metric)

    def state_dict(self) -> dict[str, Any]:
        """The search state as plain data (JSON-serialisable: no pickled Optuna object).

        * ``pareto_archive``, ``study_name`` and ``pending_tells`` (results checkpointed before they
          were told, as ``(trial number, values or None)``);
        * ``sampler``: the sampler's name and the state of its random generators
          (:func:`~srnas_nni.study.sampler_state.sampler_random_state`);
        * ``study``: for an in-memory study only, its trials and system attributes
          (:func:`~srnas_nni.study.sampler_state.study_to_plain`); a persistent study (``storage``) keeps them.

        Contract of :meth:`load_state_dict` (after ``initialize``, which rebuilt the sampler from its
        name, seed and options): the generators are set back, so the next ``ask`` draws what it would
        have drawn had the search not stopped; NSGA-II/III's generations and parents come from the
        study's trials. The trial in flight when the process died is failed (``fail_reason``
        ``interrupted: ...``), and as the generators are back at the checkpoint the next trial is
        usually the same architecture. A checkpoint whose generators cannot be placed (another Optuna
        that renamed a sampler's internals, or an older checkpoint format) re-seeds them from
        ``(seed, trials so far)``: the run continues, it no longer samples as the uninterrupted one.
        """
        state = {**super().state_dict(), "study_name": self.options.study_name,
                 "pending_tells": [[trial.number, values] for trial, values, _ in self.pending_tells]}
        if self.study is not None:
            state["sampler"] = {"name": self.options.sampler, "random_state": sampler_random_state(self.study.sampler)}
            if self.options.storage is None:
                state["study"] = study_to_plain(self.study)
        # Through JSON: proof that it is plain data, and NNI's ``label`` parameter names (a str subclass)
        # become plain str.
        return json.loads(json.dumps(state))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        sampler, study = state_dict.pop("sampler", None), state_dict.pop("study", None)
        legacy_trials = state_dict.pop("trials", None)  # pickled FrozenTrials of checkpoints before plain data
        pending = state_dict.pop("pending_tells", [])
        state_dict.pop("study_name", None)
        super().load_state_dict(state_dict)
        if self.study is None:
            raise RuntimeError("OptunaStrategy.load_state_dict needs an initialized strategy")
        if not self.study.get_trials(deepcopy=False):
            if isinstance(study, dict):
                restore_study(self.study, study)
            elif legacy_trials:
                self.study.add_trials(legacy_trials)
        random_state = sampler.get("random_state") if isinstance(sampler, dict) else None
        if isinstance(sampler, dict) and sampler.get("name") not in (None, self.options.sampler):
            random_state = None  # the configuration names another sampler now: start its generators afresh
        restore_sampler_random_state(self.study.sampler, random_state, seed=self.options.seed,
                                     trials_so_far=len(self.study.get_trials(deepcopy=False)))
        # Results checkpointed but not yet told when the process stopped: tell them now (exactly once).
        running = {t.number for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
        for number, values in pending:
            if number in running:
                self._tell(number, values)
        # Trials left running by the interrupted process will never be told: they failed.
        for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            self.study._storage.set_trial_user_attr(trial._trial_id, "fail_reason",
                                                    "interrupted: the search stopped while it ran")
            self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
