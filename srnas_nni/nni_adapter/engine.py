"""``engine: nni``: NNI's training-service engine, as a search needs it on NNI 3.0.

The experiment class of an ``engine: nni`` search mixes in :class:`NniManagerMixin` (the runner's
does; its config comes from :func:`~.experiment.nni_experiment_config`), which

* binds NNI's manager to the configured host and points it at the index of experiments this process
  writes (:mod:`.manager`, :func:`~.loader.experiment_index_home`); refuses a port that is taken
  (one line), and reports the web UI address through ``on_manager_started`` once the manager answers;
* uses :class:`FreezingModelSpace` for the ``simplified`` model format and the spaces the host names
  (NNI's own re-creates the space inside ``model_context``, which srnas-nni's spaces do not support):
  each trial re-creates the space and the evaluator from their constructor arguments, freezes the
  sample with the space's own ``freeze``, trains and reports the metric dict; the dict reaches the
  runner's engine events (``FinalMetricEvent.metric``) unchanged;
* sends NNI's web UI the search space the host gives (:meth:`NniManagerMixin.legacy_search_space`);
* runs :class:`KeepAliveEngine`: every submitted model is kept until its trial ends, so that its
  metric reaches the engine's event callbacks (NNI's engine only keeps weak references); a trial's
  parameters are the clean ``{label: value}`` sample (the space and evaluator go with the trial
  command, :func:`trial_command_params`; the trial process is :mod:`.engine_trial`); each model learns
  the NNI trial that ran it; the runner can wait for every submitted model
  (:meth:`KeepAliveEngine.wait_submitted`); and a resumed experiment (``srnas search --resume``) does
  not lose its engine to commands NNI's NAS channel does not know (:func:`skip_unknown_commands`).

What NNI's manager recorded of an experiment's trials is read back by :mod:`.trial_records`.
"""

from __future__ import annotations

import logging
import shlex
import sys
import threading
import time
import weakref
from typing import Any, Callable, Iterator, Mapping

from ..errors import SRNASError
from ..study.keys import plain_value
from .failures import set_failure_reason
from .loader import experiment_index_home, nni
from .manager import check_port_free, manager_bound_to, manager_host, web_ui_url

from nni.experiment import RunMode  # noqa: E402
from nni.nas.execution import TrainingServiceExecutionEngine  # noqa: E402
from nni.nas.execution.event import TrainingEndEvent  # noqa: E402
from nni.nas.experiment.config import SimplifiedModelFormatConfig, TrainingServiceEngineConfig  # noqa: E402
from nni.nas.space import GraphModelSpace, ModelStatus, SimplifiedModelSpace  # noqa: E402
from nni.runtime.tuner_command_channel import CommandType  # noqa: E402

__all__ = ["MODEL_SPACE_VARIABLE", "NniManagerMixin", "FreezingModelSpace", "KeepAliveEngine",
           "skip_unknown_commands", "trial_parameters", "trial_command_params", "run_trial"]

_logger = logging.getLogger(__name__)


# -- model format ---------------------------------------------------------------------------------


_SPACE_CACHE: dict[str, Any] = {}


class FreezingModelSpace(SimplifiedModelSpace):
    """NNI's ``simplified`` model format, frozen with the space's own ``freeze(sample)``.

    Like NNI's :class:`SimplifiedModelSpace` it is dumped as the space's class, its constructor
    arguments, the sample and the evaluator, so a trial process re-creates it; but the model it
    executes is ``Space(*args, **kwargs).freeze(sample)`` -- exactly what the sequential engine and
    ``srnas`` model files build -- instead of the space constructed inside NNI's ``model_context``.
    The space is built once per process for a given class and arguments.
    """

    def built_space(self) -> Any:
        """The space ``Space(*args, **kwargs)`` this stands for (NNI keeps only its symbol and arguments),
        built once per process (strategies that need the space itself, e.g. its ``cost``, use it)."""
        key = nni.dump([self.model.trace_symbol, self.model.trace_args, self.model.trace_kwargs])
        space = _SPACE_CACHE.get(key)
        if space is None:
            _SPACE_CACHE.clear()  # one space per process is the common case; never grow without bound
            space = _SPACE_CACHE[key] = self.model.trace_copy().get(traceable=False)
        return space

    def executable_model(self) -> Any:
        if self.sample is None:
            raise RuntimeError("Cannot get an executable model from a model space that is not frozen.")
        return self.built_space().freeze(dict(self.sample))


# -- engine ---------------------------------------------------------------------------------------


#: The manager's commands to a resumed experiment's "tuner" that NNI's NAS channel does not know.
SKIPPED_COMMANDS = (CommandType.ImportData, CommandType.AddCustomizedTrialJob, CommandType.Ping)
#: The environment variable that carries the space and evaluator to every trial (see :func:`trial_command_params`).
MODEL_SPACE_VARIABLE = "SRNAS_NNI_MODEL_SPACE"
#: Models whose trial ended while the manager still runs them are given this long to report it.
_END_GRACE_SECONDS = 60.0


def skip_unknown_commands(channel: Any) -> None:
    """Have NNI's tuner command ``channel`` drop the manager's :data:`SKIPPED_COMMANDS` before its reader sees them.

    NNI's manager sends a resumed experiment's tuner ``ImportData`` (and may send
    ``AddCustomizedTrialJob``, ``Ping``); NNI's NAS engine listens on the same channel and raises
    "Unknown command type" on them, which ends its listener thread: the engine hears nothing more.
    NNI's listener looks the channel's private ``_receive`` up on every command, so replacing it on
    the instance (after the engine answered Initialize) catches all of them.
    """
    receive_raw = channel._receive

    def receive_known() -> Any:
        while True:
            command_type, data = receive_raw()
            if command_type not in SKIPPED_COMMANDS:
                return command_type, data
            _logger.debug("engine: skipping the manager's %s command", command_type)

    channel._receive = receive_known


class KeepAliveEngine(TrainingServiceExecutionEngine):
    """NNI's training-service engine with the fixes ``engine: nni`` needs on NNI 3.0.

    * It holds each submitted model until its trial ends. NNI's engine keeps weak references only: a
      model the strategy does not keep is collected and its metric dropped ("the model has been
      garbage-collected") before any event callback sees it.
    * It skips the manager's ``ImportData``/``AddCustomizedTrialJob`` commands, which a resumed
      experiment sends to its "tuner" and NNI's NAS channel does not know: its listener thread dies
      on them ("Unknown command type") and the engine hears nothing more (:func:`skip_unknown_commands`).
      The engine finds the next parameter id and the previous trials from the manager's database instead.
    * A trial's parameters are the clean sample ``{label: value}`` (what NNI's web UI shows, as with
      nnictl); the space and evaluator reach the trial once, through :func:`trial_command_params`.
    * Each model carries its identity: ``nni_parameter_id`` (set on submission) and ``nni_trial_id``,
      the NNI trial that *ran* it. NNI 3.0's training services hand the queued parameters to whichever
      new trial asks first (``v3/compat.js``), so the trial the manager created for a parameter is not
      always the one that runs it: its web UI then shows one trial's metric beside another's
      parameters. Metrics carry the reporting trial's id, so the engine binds parameter and trial from
      them and routes each trial's end to the parameter it really ran.
    * :meth:`wait_submitted` waits until every submitted model's trial has ended and its events were
      dispatched (NNI's own ``wait_models`` returns as soon as the manager says DONE, before the last
      ``TrialEnd`` commands were handled by the listener thread).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: parameter id -> submitted model whose trial has not ended yet
        self._outstanding: dict[int, Any] = {}
        #: trial job id -> parameter id it ran (from its metric reports)
        self._parameter_of_trial: dict[str, int] = {}
        self._lock = threading.Lock()
        skip_unknown_commands(self._channel)

    def submit_models(self, *models: Any) -> None:
        """Send each model as one trial whose parameters are its sample (see the class docstring)."""
        self._check_running()
        for model in models:
            parameter_id = self._next_parameter_id()
            with self._lock:
                self._outstanding[parameter_id] = model
            self._models[parameter_id] = weakref.ref(model)
            self._submitted_cache[parameter_id] = model
            model.nni_parameter_id = parameter_id
            model.nni_trial_id = None
            placement = model.export_placement_constraint() if isinstance(model, GraphModelSpace) else None
            parameters = trial_parameters(model) if isinstance(model, FreezingModelSpace) else model
            self._channel.send_trial(parameter_id=parameter_id, parameters=parameters, placement_constraint=placement)
            model.status = ModelStatus.Training
            self._workers -= 1
            _logger.debug("submitted model with parameter id %d; remaining resource: %d", parameter_id, self._workers)

    def list_models(self, status: ModelStatus | None = None) -> Iterator[Any]:
        """NNI's ``list_models``, for trials whose parameters are a sample: models no longer held are rebuilt
        by freezing the experiment's model space with it, with the final metric reported for that parameter
        (by whichever trial ran it) and ``nni_parameter_id``/``nni_trial_id`` set."""
        self._check_running()
        space = getattr(self.nodejs_binding, "_exec_model_space", None)
        jobs = list(self.nodejs_binding.list_trial_jobs())
        final: dict[int, tuple[str, Any]] = {}  # parameter id -> (reporting trial, final metric)
        for job in jobs:
            for metric in job.finalMetricData or []:
                final[int(metric.parameterId)] = (metric.trialJobId, metric.data)
        for job in jobs:
            if len(job.hyperParameters) != 1:
                continue
            record = job.hyperParameters[0]
            parameter_id = int(record.parameter_id)
            model = self._find_reference_model(parameter_id)
            if model is None:
                parameters = record.parameters
                if isinstance(parameters, dict) and "__symbol__" not in parameters and space is not None:
                    model = space.freeze(dict(parameters))
                else:  # a serialised model (NNI's own format)
                    model = nni.load(nni.dump(parameters))
                    if not isinstance(model, SimplifiedModelSpace):
                        continue
                reporter, metric = final.get(parameter_id, (job.trialJobId, None))
                # The job is the trial NNI created for the parameter, not always the one that ran it: a
                # reported final metric is what says it was trained.
                model.status = ModelStatus.Trained if metric is not None \
                    else self._interpret_trial_job_status(job.status)
                if metric is not None:
                    model.metrics.final = metric
                model.nni_parameter_id, model.nni_trial_id = parameter_id, reporter
            if status is None or model.status == status:
                yield model
        for model in list(self._submitted_cache.values()):  # submitted, not in the manager's database yet
            if status is None or model.status == status:
                yield model

    def outstanding(self) -> dict[int, Any]:
        """Parameter id -> submitted model whose trial has not ended (a copy)."""
        with self._lock:
            return dict(self._outstanding)

    def wait_submitted(self, on_poll: Callable[[], None] | None = None, poll_seconds: float = 0.2) -> dict[int, Any]:
        """Wait until every submitted model's trial has ended and its events were dispatched.

        ``on_poll`` is called on every poll (the runner records finished trials there). Returns what is
        still outstanding when the wait gives up: the manager stopped or failed, or it has counted every
        trial as finished (DONE) and the engine heard nothing for a minute. Empty when all ended.
        """
        quiet_since: float | None = None
        while True:
            if on_poll is not None:
                on_poll()
            outstanding = self.outstanding()
            if not outstanding:
                return {}
            try:
                status = self.nodejs_binding.get_status()
            except Exception:  # noqa: BLE001 - the manager is gone: nothing more will come
                status = "STOPPED"
            if status == "DONE":  # the manager creates no more trials: the queued ones will never run
                self._end_never_started(outstanding)
            if status in ("STOPPING", "STOPPED", "ERROR", "DONE"):
                quiet_since = time.monotonic() if quiet_since is None else quiet_since
                grace = _END_GRACE_SECONDS if status == "DONE" else 2.0
                if time.monotonic() - quiet_since > grace or not self._channel_listen_thread.is_alive():
                    return outstanding
            else:
                quiet_since = None
            time.sleep(poll_seconds)

    def budget_available(self) -> bool:
        """NNI's check (the manager still takes trials), and fewer parameters sent than ``max_trial_number``:
        the manager queues a parameter past its limit and never runs it, so none is sent."""
        limit = getattr(self.nodejs_binding.config, "max_trial_number", None)
        if isinstance(limit, int) and self._parameters_sent() >= limit:
            return False
        return super().budget_available()

    def _parameters_sent(self) -> int:
        """Parameters this experiment sent to the manager, a resumed experiment's earlier ones included."""
        if self._current_parameter_id is None:
            ids = [p.parameter_id for job in self.nodejs_binding.list_trial_jobs() for p in job.hyperParameters]
            self._current_parameter_id = max(ids) if ids else -1
        return self._current_parameter_id + 1

    def _end_never_started(self, outstanding: dict[int, Any]) -> None:
        """End (as failed, with the reason) the outstanding models the manager never created a trial for."""
        try:
            created = {p.parameter_id for job in self.nodejs_binding.list_trial_jobs() for p in job.hyperParameters}
        except Exception:  # noqa: BLE001 - the manager is gone; the caller gives up on what is left
            return
        for parameter_id, model in outstanding.items():
            if parameter_id in created:
                continue
            set_failure_reason(model, "never started: NNI's manager reached the experiment's budget first")
            self.dispatch_model_event(TrainingEndEvent(model, ModelStatus.Failed))
            with self._lock:
                self._outstanding.pop(parameter_id, None)

    # -- commands from the manager (listener thread) ------------------------------------------------

    def _report_metric_data_callback(self, command: Any) -> None:
        trial_id = getattr(command, "trial_job_id", None)
        if trial_id is not None:
            with self._lock:
                self._parameter_of_trial[trial_id] = command.parameter_id
                model = self._outstanding.get(command.parameter_id)
            if model is not None:
                model.nni_trial_id = trial_id
        super()._report_metric_data_callback(command)

    def _trial_end_callback(self, command: Any) -> None:
        parameter_id = self._parameter_run_by(command.trial_job_id, list(command.parameter_ids))
        if parameter_id is None:
            _logger.debug("trial %s ended; no outstanding parameter is left for it", command.trial_job_id)
            return
        model = self._find_reference_model(parameter_id)
        if model is not None:
            if getattr(model, "nni_trial_id", None) is None:
                model.nni_trial_id = command.trial_job_id
            self.dispatch_model_event(TrainingEndEvent(model, self._interpret_trial_job_status(command.event)))
        with self._lock:  # after the events: a waiter sees the model gone only once it is recorded
            self._outstanding.pop(parameter_id, None)

    def _parameter_run_by(self, trial_id: str, assigned: list[int]) -> int | None:
        """The parameter trial ``trial_id`` ran: the one its metrics named; without metrics (it failed
        before reporting), the manager's assignment unless another trial reported for it, else the
        oldest outstanding parameter no trial reported for (NNI hands parameters out first-in first-out)."""
        with self._lock:
            if trial_id in self._parameter_of_trial:
                parameter_id = self._parameter_of_trial[trial_id]
                return parameter_id if parameter_id in self._outstanding else None
            claimed = set(self._parameter_of_trial.values())
            unclaimed = sorted(p for p in self._outstanding if p not in claimed)
            self_assigned = assigned[0] if len(assigned) == 1 else None
            if self_assigned in unclaimed or (not unclaimed and self_assigned is not None
                                              and self_assigned not in claimed):
                return self_assigned
            return unclaimed[0] if unclaimed else None


def trial_parameters(model: Any) -> dict[str, Any]:
    """What a trial is sent as its parameters: the model's sample ``{label: value}`` as plain data."""
    return {label: plain_value(value) for label, value in (model.sample or {}).items()}


def trial_command_params(model_space: Any, python: str) -> dict[str, str]:
    """NNI's trial-command fields for :class:`FreezingModelSpace` trials: ``envs`` carries the space and
    evaluator (``SRNAS_NNI_MODEL_SPACE``, shell-quoted), ``python`` runs :mod:`srnas_nni.nni_adapter.engine_trial`,
    which rebuilds the model from them and the trial's ``{label: value}`` parameters. (NNI requires the
    command to end with its own trial entry; the arguments after our module are ignored.)"""
    template = nni.dump({"model_symbol": model_space.model.trace_symbol, "model_args": model_space.model.trace_args,
                         "model_kwargs": model_space.model.trace_kwargs, "evaluator": model_space.evaluator})
    return {"envs": f"{MODEL_SPACE_VARIABLE}={shlex.quote(template)}",
            "python": f"{python} -m srnas_nni.nni_adapter.engine_trial"}


def run_trial(parameters: Mapping[str, Any], template: str) -> Any:
    """Rebuild a trial's model from the space/evaluator ``template`` and its ``{label: value}`` sample, and run it."""
    from nni.nas.space import ModelStatus as _Status

    attributes = nni.load(template)
    model = FreezingModelSpace._load(status=_Status.Frozen, sample=dict(parameters), **attributes)
    return model.execute()


class NniManagerMixin:
    """Mix into a :class:`~nni.nas.experiment.NasExperiment` subclass (before it) for ``engine: nni``.

    See the module docstring. The host class says which model spaces run as :class:`FreezingModelSpace`
    trials (:attr:`freezing_spaces`) and what NNI's web UI shows of a space
    (:meth:`legacy_search_space`). ``on_manager_started(url)`` is called once NNI's manager answers
    (before the strategy starts); ``web_ui`` holds that URL while the experiment runs.
    """

    #: Model spaces of these types run as :class:`FreezingModelSpace` trials (``simplified`` format);
    #: others keep NNI's own formats.
    freezing_spaces: tuple[type, ...] = ()
    on_manager_started: Callable[[str], None] | None = None
    web_ui: str | None = None

    def legacy_search_space(self, space: Any) -> dict[str, Any] | None:
        """The search space NNI's manager (its web UI) is sent, in NNI's legacy format; None: NNI's own
        conversion of the space (which skips ``InputChoice`` labels, with a warning each)."""
        return None

    def _start_nni_manager(self, port: int, debug: bool, run_mode: RunMode = RunMode.Background,
                           tuner_command_channel: str | None = None, tags: list[str] | None = None) -> None:
        host = manager_host(self.config)  # type: ignore[attr-defined]
        check_port_free(host, port)
        self._send_model_space_with_trial_command()
        try:
            with manager_bound_to(host, home=experiment_index_home()):
                super()._start_nni_manager(port, debug, run_mode, tuner_command_channel,  # type: ignore[misc]
                                           list(tags or []))
        except OSError as exc:  # no node binary, not executable, ...
            raise SRNASError(f"NNI's manager could not start: {exc}") from None
        self.web_ui = web_ui_url(host, port)
        if self.on_manager_started is not None:
            self.on_manager_started(self.web_ui)

    def _send_model_space_with_trial_command(self) -> None:
        # FreezingModelSpace trials are sent their sample only; the space and evaluator go with the command.
        nas_config = self.config  # type: ignore[attr-defined]
        space = self.model_space  # type: ignore[attr-defined]
        if not (isinstance(nas_config.canonical_copy().model_format, SimplifiedModelFormatConfig)
                and isinstance(space, self.freezing_spaces)):
            return
        params = dict(nas_config._trial_command_params or {})
        python = params.get("python", sys.executable)
        if " -m srnas_nni.nni_adapter.engine_trial" not in python:
            model = FreezingModelSpace.from_model(space, self.evaluator)  # type: ignore[attr-defined]
            nas_config._trial_command_params = {**params, **trial_command_params(model, python)}

    def execution_engine_factory(self, config: Any) -> Any:
        if type(config) is TrainingServiceEngineConfig:  # not CGO, which wraps the engine
            return KeepAliveEngine(self)
        return super().execution_engine_factory(config)  # type: ignore[misc]

    def _send_space_to_nni_manager(self) -> None:
        search_space = self.legacy_search_space(self.model_space)  # type: ignore[attr-defined]
        if search_space is None:
            return super()._send_space_to_nni_manager()  # type: ignore[misc]
        self.update_search_space(search_space)  # type: ignore[attr-defined]

    def executable_model_factory(self, config: Any) -> Any:
        space = self.model_space  # type: ignore[attr-defined]
        if isinstance(config, SimplifiedModelFormatConfig) and isinstance(space, self.freezing_spaces):
            return FreezingModelSpace.from_model(space, self.evaluator)  # type: ignore[attr-defined]
        return super().executable_model_factory(config)  # type: ignore[misc]
