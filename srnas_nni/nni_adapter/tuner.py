"""Optuna's samplers as NNI HPO tuners, for ``nnictl`` experiments over srnas-nni spaces.

The same search as the ``optuna`` strategy (:mod:`srnas_nni.strategies.optuna`, which re-exports
these classes), as an NNI ``Tuner`` fed by NNI's HPO dispatcher: see :class:`OptunaTuner` and
``examples/nni/``. This module imports Optuna and ``nni.tuner`` only -- neither torch nor NNI's NAS
package -- because NNI's manager gives its tuner process 10 seconds to connect, and importing the NAS
stack can take longer than that on a busy machine. Use these class paths in experiment files
(``srnas_nni.nni_tuner.OptunaTuner``).

Three patches of NNI's HPO dispatcher (``nni.runtime.msg_dispatcher``), each changing nothing for
other tuners:

* NNI 3.0's ``MsgDispatcher.handle_trial_end`` calls ``tuner.trial_end(parameter_id, success)`` only;
  :func:`_handle_trial_end_naming_the_trial` hands our tuners the trial's job id too.
* ``MsgDispatcher.run`` returns without telling the tuner; :func:`_run_then_close_the_tuner` then calls
  :meth:`OptunaTuner.close`, so no study trial stays RUNNING.
* ``msg_dispatcher_base._worker_fast_exit_on_terminate`` (True in NNI) drops the commands still queued
  when the manager says stop; an :class:`OptunaTuner` sets it False, so the last results are told.
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any

import optuna

from ..errors import SRNASError
from ..study.objectives import objective_values
from ..study.storage import make_study
from .import_filter import filtered_import_warnings

with filtered_import_warnings():
    import nni  # noqa: E402
    from nni.runtime import msg_dispatcher_base  # noqa: E402
    from nni.runtime.msg_dispatcher import MsgDispatcher  # noqa: E402
    from nni.tuner import Tuner  # noqa: E402

__all__ = ["OptunaTuner", "OptunaNSGA2Tuner", "OptunaNSGA3Tuner", "OptunaTPETuner", "OptunaGPTuner",
           "OptunaRandomTuner"]


class OptunaTuner(Tuner):
    """The same search as an NNI HPO ``Tuner``, for ``nnictl`` experiment files::

        tuner:
          className: srnas_nni.nni_tuner.OptunaTuner
          codeDirectory: .
          classArgs: {sampler: nsga2, seed: 0, storage: "sqlite:////abs/path/study.db"}

    Contract:

    * the search space holds ``choice`` entries only (what ``SpaceEncoding.legacy_search_space()``
      writes for an srnas-nni space, e.g. through ``python -m srnas_nni.nni_trial --write-search-space``);
      anything else raises :class:`SRNASError` naming the key;
    * each requested trial is one ``study.ask`` over those choices; its parameters are the encoded values;
    * a final result is the metric dict of :func:`~srnas_nni.evaluation.evaluator.evaluate_sr_model`
      (``{"default", "psnr", "params", "multadds", ...}``; a JSON string of it is accepted too): Optuna
      is told ``[psnr, params, multadds]`` (maximise, minimise, minimise); a result without all three
      finite values, or a trial that ends without a result, is told as failed. ``architecture``,
      ``ssim``, ``psnr_rgb``, ``train_seconds``, ``steps``, ``scale`` and ``model_file`` go to the trial's
      user attributes, as in a ``srnas search`` study;
    * every study trial carries NNI's parameter id (``nni_parameter_id``) and trial job id
      (``nni_trial``; NNI's experiment folder keeps that trial's files under ``trials/<id>/``), failed
      trials included;
    * ``storage`` (an SQLAlchemy URL; use an absolute sqlite path, NNI starts the tuner in a folder of
      its own) keeps the study, and a restarted tuner continues it; without it the study is in memory;
    * ``import_data`` (``nnictl experiment import``, resumed experiments) adds complete trials the study
      does not already hold.

    :class:`OptunaNSGA2Tuner`, :class:`OptunaNSGA3Tuner`, :class:`OptunaTPETuner`, :class:`OptunaGPTuner` and
    :class:`OptunaRandomTuner` fix the sampler, for ``nnictl algo register`` (see ``examples/nni/``).
    """

    def __init__(self, sampler: str = "nsga2", seed: int | None = None, sampler_options: dict | None = None,
                 storage: str | None = None, study_name: str = "srnas-tuner"):
        # NNI's dispatcher drops the commands still queued when the manager tells it to stop (an
        # experiment stopped right after its last trial ended): results the study would never get.
        # A tuner keeping a study drains the queue instead (NNI allows it 30 s to exit).
        msg_dispatcher_base._worker_fast_exit_on_terminate = False
        self.sampler_name = sampler
        self.study = make_study(sampler, seed, dict(sampler_options or {}), storage, study_name)
        self.distributions: dict[str, optuna.distributions.CategoricalDistribution] = {}
        self._pending: dict[int, optuna.trial.Trial] = {}
        #: Parameter id -> why its trial fails if no result comes before :meth:`close` (trials NNI says ended).
        self._ended: dict[int, str] = {}
        self._lock = threading.Lock()

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        if not isinstance(search_space, dict) or not search_space:
            raise SRNASError(f"OptunaTuner needs a search space of '_type: choice' entries, got {search_space!r}")
        distributions = {}
        for key, spec in search_space.items():
            if not isinstance(spec, dict) or spec.get("_type") != "choice":
                raise SRNASError(f"search space key {key!r}: OptunaTuner takes '_type: choice' entries, got {spec!r}")
            values = spec.get("_value")
            if not isinstance(values, list) or not values:
                raise SRNASError(f"search space key {key!r}: '_value' must be a non-empty list, got {values!r}")
            try:
                distributions[key] = optuna.distributions.CategoricalDistribution(values)
            except (TypeError, ValueError) as exc:
                raise SRNASError(f"search space key {key!r}: {exc}") from None
        self.distributions = distributions

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict[str, Any]:
        if not self.distributions:
            raise SRNASError("OptunaTuner: no search space yet (NNI sends it before the first trial)")
        with self._lock:
            trial = self.study.ask(self.distributions)
            trial.set_user_attr("nni_parameter_id", int(parameter_id))
            if kwargs.get("trial_job_id") is not None:  # multi-phase requests name their trial
                trial.set_user_attr("nni_trial", str(kwargs["trial_job_id"]))
            self._pending[parameter_id] = trial
        return dict(trial.params)

    def receive_trial_result(self, parameter_id: int, parameters: dict[str, Any], value: Any, **kwargs: Any) -> None:
        with self._lock:
            trial = self._pending.pop(parameter_id, None)
            self._ended.pop(parameter_id, None)
            if trial is None:
                return
            metric = _metric_dict(value)
            for key, attribute in _user_attributes(metric, kwargs.get("trial_job_id")).items():
                trial.set_user_attr(key, attribute)
            values = objective_values(metric)
            if values is None:
                trial.set_user_attr("fail_reason", f"incomplete objectives in {_describe(value)}")
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(trial, values)

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        with self._lock:
            trial = self._pending.get(parameter_id)  # still pending: failed, or its result is yet to come
            if trial is None:
                return
            if kwargs.get("trial_job_id") is not None:
                trial.set_user_attr("nni_trial", str(kwargs["trial_job_id"]))
            if success:
                # NNI's dispatcher queues trial ends and final results for two different threads, so a
                # succeeded trial's end may be handled before its result: that result still counts; the
                # trial fails at close() only if none came.
                self._ended[parameter_id] = "finished without reporting a final metric"
                return
            del self._pending[parameter_id]
            trial.set_user_attr("fail_reason", "trial failed")
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def close(self, reason: str = "the experiment stopped before this trial ended") -> None:
        """Tell every trial still pending as failed (``fail_reason``): none stays RUNNING in the study.

        Called when NNI's dispatcher stops: NNI asks for ``trialConcurrency`` parameters at once, so
        an experiment ending at ``maxTrialNumber`` (or stopped mid-trial) leaves asked trials that no
        NNI trial will ever report.
        """
        with self._lock:
            for parameter_id, trial in self._pending.items():
                trial.set_user_attr("fail_reason", self._ended.get(parameter_id, reason))
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self._pending.clear()
            self._ended.clear()

    def import_data(self, data: list[dict[str, Any]]) -> None:
        if not self.distributions:
            return
        with self._lock:
            held = {(json.dumps(t.params, sort_keys=True, default=str), tuple(t.values))
                    for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
            for entry in data:
                parameters = entry.get("parameter") or {}
                metric = _metric_dict(entry.get("value"))
                values = objective_values(metric)
                if values is None or set(parameters) != set(self.distributions):
                    continue
                key = (json.dumps(parameters, sort_keys=True, default=str), tuple(values))
                if key in held:
                    continue
                try:
                    trial = optuna.trial.create_trial(params=parameters, distributions=self.distributions,
                                                      values=values, user_attrs=_user_attributes(metric, None))
                except ValueError:  # a value outside the current choices
                    continue
                self.study.add_trial(trial)
                held.add(key)


def _handle_trial_end_naming_the_trial(self: MsgDispatcher, data: dict[str, Any]) -> None:
    """NNI's ``handle_trial_end``, handing our tuners the trial's job id as ``trial_job_id``.

    NNI 3.0's dispatcher calls ``tuner.trial_end(parameter_id, success)`` only, although the manager's
    message names the trial; without it a trial that fails before reporting would be a study trial no
    one can trace to its NNI trial folder (``trials/<id>/stderr``). Other tuners are called as before.
    """
    if not isinstance(self.tuner, OptunaTuner):
        return _nni_handle_trial_end(self, data)
    plain_trial_end = self.tuner.trial_end
    self.tuner.trial_end = lambda parameter_id, success: plain_trial_end(  # type: ignore[method-assign]
        parameter_id, success, trial_job_id=data.get("trial_job_id"))
    try:
        return _nni_handle_trial_end(self, data)
    finally:
        del self.tuner.trial_end  # back to the class's method


def _run_then_close_the_tuner(self: MsgDispatcher) -> None:
    """NNI's dispatcher loop; once it stopped (and drained its queue), :meth:`OptunaTuner.close`."""
    try:
        _nni_dispatcher_run(self)
    finally:
        if isinstance(self.tuner, OptunaTuner):
            self.tuner.close()


_nni_handle_trial_end = MsgDispatcher.handle_trial_end
MsgDispatcher.handle_trial_end = _handle_trial_end_naming_the_trial
_nni_dispatcher_run = MsgDispatcher.run
MsgDispatcher.run = _run_then_close_the_tuner


def _metric_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = nni.load(value)
        except Exception:  # not JSON: a plain string result
            return {}
    return value if isinstance(value, dict) else {}


def _describe(value: Any) -> str:
    return str(sorted(value)) if isinstance(value, dict) else type(value).__name__


def _user_attributes(metric: dict[str, Any], trial_job_id: Any) -> dict[str, Any]:
    """The user attributes a ``srnas search`` study carries, from one reported metric dict."""
    attrs: dict[str, Any] = {"source": "trial"}
    if trial_job_id is not None:
        attrs["nni_trial"] = str(trial_job_id)
    if isinstance(metric.get("architecture"), dict):
        attrs["architecture"] = json.dumps(metric["architecture"], sort_keys=True)
    for key in ("ssim", "psnr_rgb", "train_seconds", "steps", "scale", "default"):
        value = metric.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            attrs[key] = value
    if metric.get("model_file"):
        attrs["model_file"] = str(metric["model_file"])
    return attrs


class OptunaNSGA2Tuner(OptunaTuner):
    """:class:`OptunaTuner` with NSGA-II (registered as ``srnas_nsga2``)."""

    def __init__(self, seed: int | None = None, sampler_options: dict | None = None, storage: str | None = None,
                 study_name: str = "srnas-nsga2"):
        super().__init__("nsga2", seed, sampler_options, storage, study_name)


class OptunaNSGA3Tuner(OptunaTuner):
    """:class:`OptunaTuner` with NSGA-III (registered as ``srnas_nsga3``)."""

    def __init__(self, seed: int | None = None, sampler_options: dict | None = None, storage: str | None = None,
                 study_name: str = "srnas-nsga3"):
        super().__init__("nsga3", seed, sampler_options, storage, study_name)


class OptunaTPETuner(OptunaTuner):
    """:class:`OptunaTuner` with multi-objective TPE (registered as ``srnas_tpe``)."""

    def __init__(self, seed: int | None = None, sampler_options: dict | None = None, storage: str | None = None,
                 study_name: str = "srnas-tpe"):
        super().__init__("tpe", seed, sampler_options, storage, study_name)


class OptunaGPTuner(OptunaTuner):
    """:class:`OptunaTuner` with Optuna's GP sampler (registered as ``srnas_gp``)."""

    def __init__(self, seed: int | None = None, sampler_options: dict | None = None, storage: str | None = None,
                 study_name: str = "srnas-gp"):
        super().__init__("gp", seed, sampler_options, storage, study_name)


class OptunaRandomTuner(OptunaTuner):
    """:class:`OptunaTuner` sampling uniformly at random (registered as ``srnas_random``)."""

    def __init__(self, seed: int | None = None, sampler_options: dict | None = None, storage: str | None = None,
                 study_name: str = "srnas-random"):
        super().__init__("random", seed, sampler_options, storage, study_name)
