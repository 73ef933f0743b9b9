"""``engine: nni``: a search run by NNI's manager, its web UI and a training service.

:func:`nni_experiment_config` turns the ``experiment:`` section of an experiment file into a
:class:`NasExperimentConfig` for NNI's training-service engine (``ts``): trials are separate
processes started by NNI's manager (Node.js) on the configured training service (``local`` by
default; ``training_service`` settings are passed to NNI unchanged, e.g. ``platform: remote`` with
``machineList``), at most ``trial_concurrency`` at a time. Each trial re-creates the space and the
:class:`~srnas_nni.evaluation.evaluator.SREvaluator` from their constructor arguments, freezes the
sample with the space's own ``freeze`` (:class:`FreezingModelSpace`), trains and reports the metric
dict; the dict reaches the runner's engine events (``FinalMetricEvent.metric``) unchanged.

The experiment class must mix in :class:`NniManagerMixin` (the runner's does), which

* binds NNI's manager to ``experiment.host`` (127.0.0.1 by default). NNI's manager calls
  ``app.listen(port)`` with no host, i.e. on every interface, and has no option for it; the manager
  process is started with ``NODE_OPTIONS=--require srnas_nni/node/listen_host.js`` (chained before
  any NODE_OPTIONS of the user's), a preload that makes its TCP servers bind the address given in
  ``SRNAS_NNI_HOST`` (:func:`manager_environment`). Only the manager's environment carries these:
  they are set while NNI spawns it and the preload restores the user's own environment for the
  processes the manager starts;
* uses :class:`FreezingModelSpace` for the ``simplified`` model format (NNI's own re-creates the
  space inside ``model_context``, which our spaces do not support);
* runs :class:`KeepAliveEngine`: every submitted model is kept until its trial ends, so that its
  metric reaches the engine's event callbacks (NNI's engine only keeps weak references); a trial's
  parameters are the clean ``{label: value}`` sample (the space and evaluator go with the trial
  command, :func:`trial_command_params`); each model learns the NNI trial that ran it; the runner can
  wait for every submitted model (:meth:`KeepAliveEngine.wait_submitted`); and a resumed experiment
  (``srnas search --resume``) does not lose its engine to commands NNI's NAS channel does not know;
* points the manager at the index of experiments this process writes (the run's
  ``nni-experiments/.experiment``, :func:`experiment_index_home`) instead of ``~/nni-experiments``;
* refuses a port that is taken (:func:`check_port_free`, one line), and reports the web UI address
  (:func:`web_ui_url`) through ``on_manager_started`` once the manager answers.

The same preload keeps ``nnictl``'s manager on loopback: ``python -m srnas_nni.nni_engine
[--host H] [--output-dir D] ARGS...`` runs ``nnictl ARGS...`` with it, its files and index under
``D/nni-experiments``; its ``create`` runs local trials with this interpreter, waits for the
experiment and fails when no trial succeeded (:func:`_nnictl_main`, ``examples/nni/README.md``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shlex
import socket
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .config import ExperimentConfig, read_yaml_mapping
from .errors import SRNASError
from .nni_compat import nni

from nni.experiment import RunMode  # noqa: E402
from nni.nas.execution import TrainingServiceExecutionEngine  # noqa: E402
from nni.nas.execution.event import TrainingEndEvent  # noqa: E402
from nni.nas.experiment import NasExperimentConfig  # noqa: E402
from nni.nas.experiment.config import SimplifiedModelFormatConfig, TrainingServiceEngineConfig  # noqa: E402
from nni.nas.space import GraphModelSpace, ModelStatus, SimplifiedModelSpace  # noqa: E402
from nni.runtime.tuner_command_channel import CommandType  # noqa: E402

__all__ = ["DEFAULT_HOST", "PRELOAD", "nni_experiment_config", "web_ui_url", "is_loopback", "manager_environment",
           "manager_bound_to", "manager_host", "check_port_free", "experiment_index_home", "NniManagerMixin",
           "FreezingModelSpace", "KeepAliveEngine", "NNICTL_EXPERIMENTS", "nnictl_experiment_config",
           "trial_command_for_this_python", "trial_failure_line", "nnictl_module"]

_logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: The Node preload that binds the manager's servers to ``$SRNAS_NNI_HOST`` (package data).
PRELOAD = Path(__file__).resolve().parent / "node" / "listen_host.js"
HOST_VARIABLE = "SRNAS_NNI_HOST"
HOME_VARIABLE = "SRNAS_NNI_HOME"
PREVIOUS_VARIABLE = "SRNAS_NNI_PREVIOUS_NODE_OPTIONS"
_HOST_ATTRIBUTE = "_srnas_manager_host"  # on a NasExperimentConfig; NNI allows "_" attributes
_WILDCARDS = {"", "0.0.0.0", "::", "::0", "[::]"}
_ENV_LOCK = threading.Lock()


# -- the manager's address ------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_ui_url(config: ExperimentConfig | str, port: int | None = None) -> str:
    """The address of NNI's web UI for an experiment file (its ``host`` and ``port``), or for a host and port.

    A wildcard host (``0.0.0.0``, ``::``) is shown as this machine's name.
    """
    if isinstance(config, str):
        host, port = config, port
    else:
        host, port = config.experiment["host"], config.experiment["port"] if port is None else port
    if port is None:
        raise ValueError("web_ui_url needs a port")
    host = host.strip()
    if host in _WILDCARDS:
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{int(port)}"


def manager_environment(host: str = DEFAULT_HOST, environ: Mapping[str, str] | None = None, *,
                        home: str | os.PathLike | None = None) -> dict[str, str]:
    """The variables to add to a manager's environment so that it binds ``host``.

    ``NODE_OPTIONS`` becomes ``--require "<PRELOAD>"`` followed by what ``environ`` (default:
    ``os.environ``) held; the preload reads ``SRNAS_NNI_HOST``, puts ``NODE_OPTIONS`` back from
    ``SRNAS_NNI_PREVIOUS_NODE_OPTIONS`` (absent: no NODE_OPTIONS) and removes the ``SRNAS_NNI_*``
    variables. With ``home``, the manager reads NNI's index of experiments from
    ``<home>/nni-experiments/.experiment`` (``SRNAS_NNI_HOME``) instead of the user's home.
    """
    if not PRELOAD.is_file():
        raise SRNASError(f"{PRELOAD}: NNI manager preload missing from the srnas-nni installation")
    environ = os.environ if environ is None else environ
    quoted = '"' + str(PRELOAD).replace("\\", "\\\\").replace('"', '\\"') + '"'
    variables = {"NODE_OPTIONS": f"--require {quoted}", HOST_VARIABLE: host.strip()}
    if home is not None:
        variables[HOME_VARIABLE] = str(Path(home).resolve())
    previous = environ.get("NODE_OPTIONS")
    if previous is not None:
        variables["NODE_OPTIONS"] += " " + previous
        variables[PREVIOUS_VARIABLE] = previous
    return variables


@contextlib.contextmanager
def manager_bound_to(host: str, *, home: str | os.PathLike | None = None) -> Iterator[None]:
    """Within this block, processes started from this one get :func:`manager_environment` (``host``, ``home``).

    For the one call that spawns NNI's manager (NNI passes no ``env`` to ``Popen``); other threads
    must not start processes meanwhile. The previous environment is restored on exit.
    """
    with _ENV_LOCK:
        variables = manager_environment(host, home=home)
        saved = {name: os.environ.get(name) for name in (*variables, PREVIOUS_VARIABLE, HOME_VARIABLE)}
        for name in (PREVIOUS_VARIABLE, HOME_VARIABLE):  # stale values would reach the preload
            os.environ.pop(name, None)
        os.environ.update(variables)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def experiment_index_home() -> Path | None:
    """The folder holding ``nni-experiments/.experiment``, NNI's index as this process writes it.

    :func:`srnas_nni.nni_compat.experiment_directory` moves the index under a run; NNI's manager must
    read the same file (it is told through ``SRNAS_NNI_HOME``). None when the index is not in a folder
    named ``nni-experiments`` (the manager could not be pointed at it).
    """
    from nni.tools.nnictl import config_utils

    defaults = config_utils.Experiments.__init__.__defaults__ or ()
    if len(defaults) != 1:
        return None
    index_dir = Path(defaults[0])
    return index_dir.parent if index_dir.name == "nni-experiments" else None


def check_port_free(host: str, port: int) -> None:
    """SRNASError (one line, naming ``experiment.port``) when ``host:port`` cannot be bound now."""
    address = host.strip().strip("[]")
    for candidate in dict.fromkeys([address, "127.0.0.1"] if not is_loopback(address) else [address]):
        family = socket.AF_INET6 if ":" in candidate else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((candidate, int(port)))
            except OSError as exc:
                raise SRNASError(f"experiment.port: {candidate}:{port} is not available for NNI's manager "
                                 f"({exc.strerror or exc}); choose another port") from None


def manager_host(nas_config: NasExperimentConfig) -> str:
    """The address a :class:`NniManagerMixin` experiment binds its manager to (default 127.0.0.1)."""
    return getattr(nas_config, _HOST_ATTRIBUTE, None) or DEFAULT_HOST


# -- the experiment config ------------------------------------------------------------------------


def nni_experiment_config(config: ExperimentConfig, run_dir: Path) -> NasExperimentConfig:
    """The :class:`NasExperimentConfig` of ``engine: nni`` for a validated experiment file.

    Training-service engine, :class:`FreezingModelSpace` model format (``simplified``),
    ``trial_concurrency`` and ``training_service`` (passed through; ``platform: local`` by default)
    from ``config.experiment``, and the manager's address (``host``) for :class:`NniManagerMixin`.
    The caller sets the working directory, name and budgets. Bad settings (NNI's own validation
    included) raise :class:`ConfigError`; a host other than loopback is logged as a warning, and is
    required for platforms whose workers connect back to the manager (every one but ``local``).
    ``run_dir`` is the run's folder (unused here: NNI's folders are set by the caller).
    """
    settings = config.experiment
    host = str(settings["host"]).strip()
    if not host:
        raise config.error("experiment.host", "must be an address (127.0.0.1, 0.0.0.0, ...), not empty")
    service = dict(settings["training_service"] or {})
    service.setdefault("platform", "local")
    platform = service["platform"]
    if not isinstance(platform, str):
        raise config.error("experiment.training_service.platform", f"{platform!r} must be a platform name, "
                                                                   "e.g. local or remote")
    try:
        nas_config = NasExperimentConfig("ts", "simplified", training_service=service)
        nas_config.trial_concurrency = int(settings["trial_concurrency"])
        if platform != "local":
            # sys.executable is a path on this machine; on a worker, python3 is found through its pythonPath.
            nas_config._trial_command_params = {"python": "python3"}
        nas_config.canonical_copy()  # NNI's own checks (fields, key files, ...), with its message
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise config.error("experiment.training_service", message) from None
    if platform != "local" and is_loopback(host):
        raise config.error("experiment.host", f"{host!r}: the {platform} training service's workers connect back to "
                                              "NNI's manager; set experiment.host to an address they can reach "
                                              "(e.g. 0.0.0.0) and training_service.nniManagerIp to match")
    setattr(nas_config, _HOST_ATTRIBUTE, host)
    if not is_loopback(host):
        _logger.warning("NNI's web UI and REST API will listen on %s:%s without authentication: anyone who can reach "
                        "this address can read and control the experiment", host, settings["port"])
    return nas_config


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


# -- engine and experiment ------------------------------------------------------------------------


_SKIPPED_COMMANDS = (CommandType.ImportData, CommandType.AddCustomizedTrialJob, CommandType.Ping)
#: The environment variable that carries the space and evaluator to every trial (see :func:`trial_command_params`).
MODEL_SPACE_VARIABLE = "SRNAS_NNI_MODEL_SPACE"
#: Models whose trial ended while the manager still runs them are given this long to report it.
_END_GRACE_SECONDS = 60.0


class KeepAliveEngine(TrainingServiceExecutionEngine):
    """NNI's training-service engine with the fixes ``engine: nni`` needs on NNI 3.0.

    * It holds each submitted model until its trial ends. NNI's engine keeps weak references only: a
      model the strategy does not keep is collected and its metric dropped ("the model has been
      garbage-collected") before any event callback sees it.
    * It skips the manager's ``ImportData``/``AddCustomizedTrialJob`` commands, which a resumed
      experiment sends to its "tuner" and NNI's NAS channel does not know: its listener thread dies
      on them ("Unknown command type") and the engine hears nothing more. The engine finds the next
      parameter id and the previous trials from the manager's database instead.
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
        # Those commands come after the engine has answered Initialize; the listener thread looks the
        # method up on every command, so replacing it on the instance now catches all of them.
        channel = self._channel
        receive_raw = channel._receive

        def receive_known() -> Any:
            while True:
                command_type, data = receive_raw()
                if command_type not in _SKIPPED_COMMANDS:
                    return command_type, data
                _logger.debug("engine: skipping the manager's %s command", command_type)

        channel._receive = receive_known

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
            model.failure_reason = "never started: NNI's manager reached the experiment's budget first"
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
    from .spaces.base import plain_value

    return {label: plain_value(value) for label, value in (model.sample or {}).items()}


def trial_command_params(model_space: Any, python: str) -> dict[str, str]:
    """NNI's trial-command fields for :class:`FreezingModelSpace` trials: ``envs`` carries the space and
    evaluator (``SRNAS_NNI_MODEL_SPACE``, shell-quoted), ``python`` runs :mod:`srnas_nni.nni_engine_trial`,
    which rebuilds the model from them and the trial's ``{label: value}`` parameters. (NNI requires the
    command to end with its own trial entry; the arguments after our module are ignored.)"""
    template = nni.dump({"model_symbol": model_space.model.trace_symbol, "model_args": model_space.model.trace_args,
                         "model_kwargs": model_space.model.trace_kwargs, "evaluator": model_space.evaluator})
    return {"envs": f"{MODEL_SPACE_VARIABLE}={shlex.quote(template)}",
            "python": f"{python} -m srnas_nni.nni_engine_trial"}


def run_trial(parameters: Mapping[str, Any], template: str) -> Any:
    """Rebuild a trial's model from the space/evaluator ``template`` and its ``{label: value}`` sample, and run it."""
    from nni.nas.space import ModelStatus as _Status

    attributes = nni.load(template)
    model = FreezingModelSpace._load(status=_Status.Frozen, sample=dict(parameters), **attributes)
    return model.execute()


_FINAL_TRIAL_STATES = ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")


def finished_nni_trials(database: str | os.PathLike) -> list[dict[str, Any]]:
    """The trials NNI's manager saw end, from an experiment's ``db/nni.sqlite`` (read only), oldest first.

    Each is ``{"trial": id, "status": SUCCEEDED|FAILED|..., "parameter_id": int, "sample": {label: value},
    "metric": the final metric (a dict as the evaluator reported it) or None}``. The parameter a trial ran
    is the one its metric reports name (``MetricData``); for a trial that reported nothing, the one the
    manager created it with (``TrialJobEvent``; see :class:`KeepAliveEngine` on why they can differ). A
    missing database gives an empty list.
    """
    import json
    import sqlite3

    path = Path(database)
    if not path.is_file():
        return []
    connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        events = connection.execute("SELECT trialJobId, event, data FROM TrialJobEvent ORDER BY timestamp").fetchall()
        metrics = connection.execute(
            "SELECT trialJobId, parameterId, data FROM MetricData WHERE type = 'FINAL' ORDER BY timestamp").fetchall()
    finally:
        connection.close()
    samples: dict[int, dict[str, Any]] = {}
    assigned: dict[str, int] = {}
    ended: dict[str, str] = {}
    for trial_id, event, data in events:
        if data:
            try:
                form = json.loads(data)
                parameter_id = int(form["parameter_id"])
            except (ValueError, TypeError, KeyError):
                form = None
            if form is not None:
                assigned.setdefault(trial_id, parameter_id)
                samples.setdefault(parameter_id, _sample_of(form.get("parameters")))
        if event in _FINAL_TRIAL_STATES:
            ended[trial_id] = event
    ran: dict[str, int] = {}
    final: dict[str, Any] = {}
    for trial_id, parameter_id, data in metrics:
        try:
            ran[trial_id] = int(json.loads(parameter_id) if isinstance(parameter_id, str) else parameter_id)
            value = json.loads(data)
            final[trial_id] = nni.load(value) if isinstance(value, str) else value
        except (ValueError, TypeError):
            continue
    trials = []
    for trial_id, status in ended.items():
        parameter_id = ran.get(trial_id, assigned.get(trial_id))
        if parameter_id is None:
            continue
        trials.append({"trial": trial_id, "status": status, "parameter_id": parameter_id,
                       "sample": samples.get(parameter_id) or {}, "metric": final.get(trial_id)})
    return trials


def _sample_of(parameters: Any) -> dict[str, Any]:
    """The ``{label: value}`` sample of a trial's parameters (a serialised model of older runs included)."""
    if not isinstance(parameters, dict):
        return {}
    kwargs = parameters.get("__kwargs__")
    if isinstance(kwargs, dict):  # a whole model (runs before parameters were the sample)
        sample = kwargs.get("sample")
        return dict(sample) if isinstance(sample, dict) else {}
    return dict(parameters)


class NniManagerMixin:
    """Mix into a :class:`~nni.nas.experiment.NasExperiment` subclass (before it) for ``engine: nni``.

    See the module docstring. ``on_manager_started(url)`` is called once NNI's manager answers
    (before the strategy starts); ``web_ui`` holds that URL while the experiment runs.
    """

    on_manager_started: Callable[[str], None] | None = None
    web_ui: str | None = None

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
        from .spaces import SRModelSpace

        nas_config = self.config  # type: ignore[attr-defined]
        space = self.model_space  # type: ignore[attr-defined]
        if not (isinstance(nas_config.canonical_copy().model_format, SimplifiedModelFormatConfig)
                and isinstance(space, SRModelSpace)):
            return
        params = dict(nas_config._trial_command_params or {})
        python = params.get("python", sys.executable)
        if " -m srnas_nni.nni_engine_trial" not in python:
            model = FreezingModelSpace.from_model(space, self.evaluator)  # type: ignore[attr-defined]
            nas_config._trial_command_params = {**params, **trial_command_params(model, python)}

    def execution_engine_factory(self, config: Any) -> Any:
        if type(config) is TrainingServiceEngineConfig:  # not CGO, which wraps the engine
            return KeepAliveEngine(self)
        return super().execution_engine_factory(config)  # type: ignore[misc]

    def _send_space_to_nni_manager(self) -> None:
        # The web UI's search space: every label as a choice (NNI's own conversion skips InputChoice labels,
        # with a warning each).
        from .spaces import SRModelSpace
        from .strategies.encoding import SpaceEncoding

        space = self.model_space  # type: ignore[attr-defined]
        if not isinstance(space, SRModelSpace):
            return super()._send_space_to_nni_manager()  # type: ignore[misc]
        self.update_search_space(SpaceEncoding(space).legacy_search_space())  # type: ignore[attr-defined]

    def executable_model_factory(self, config: Any) -> Any:
        from .spaces import SRModelSpace

        space = self.model_space  # type: ignore[attr-defined]
        if isinstance(config, SimplifiedModelFormatConfig) and isinstance(space, SRModelSpace):
            return FreezingModelSpace.from_model(space, self.evaluator)  # type: ignore[attr-defined]
        return super().executable_model_factory(config)  # type: ignore[misc]


# -- nnictl on loopback ---------------------------------------------------------------------------

#: Where ``python -m srnas_nni.nni_engine`` keeps nnictl's experiment folders and NNI's index of them:
#: ``<output dir>/nni-experiments`` (the output dir is the config file's folder for ``create``, the
#: current folder otherwise, or ``--output-dir``), never ``~/nni-experiments``.
NNICTL_EXPERIMENTS = "nni-experiments"
#: Experiment statuses after which NNI's manager starts no more trials and none is running.
_FINAL_STATUSES = ("DONE", "STOPPED", "ERROR", "VIEWED")
_PYTHON_WORD_PATTERN = r"^(\s*)python(?:3(?:\.\d+)?)?(?=\s|$)"


def trial_command_for_this_python(command: str, python: str | None = None) -> str:
    """``command`` with a leading ``python``, ``python3`` or ``python3.X`` word replaced by ``python``.

    ``python`` defaults to this interpreter (``sys.executable``, shell-quoted), so a trial of a local
    experiment runs in the environment that runs NNI's manager and tuner, whatever ``python`` is on
    ``PATH``. Any other command (an absolute interpreter path, ``bash run.sh``) is returned unchanged.
    """
    import re

    replacement = shlex.quote(python or sys.executable)
    return re.sub(_PYTHON_WORD_PATTERN, lambda match: match.group(1) + replacement, command, count=1)


def _runs_locally(config: Any) -> bool:
    services = config.training_service if isinstance(config.training_service, list) else [config.training_service]
    return all(getattr(service, "platform", None) == "local" for service in services)


def nnictl_experiment_config(config_file: str | os.PathLike, output_dir: str | os.PathLike) -> Any:
    """The HPO ``ExperimentConfig`` that ``python -m srnas_nni.nni_engine create`` starts from ``config_file``.

    NNI's own reading of the file (relative paths resolved against its folder), with two changes:

    * without ``experimentWorkingDirectory``, the experiment folders go to
      ``<output_dir>/nni-experiments`` instead of ``~/nni-experiments``;
    * when every training service is ``local``, a ``trialCommand`` starting with ``python`` /
      ``python3`` runs this interpreter (:func:`trial_command_for_this_python`); remote machines keep
      their own ``python`` (their ``pythonPath``).

    SRNASError (one line) for a missing, unreadable, legacy (v1) or invalid file.
    """
    from nni.experiment.config import ExperimentConfig as HpoExperimentConfig

    path = Path(config_file)
    raw = read_yaml_mapping(path, what="NNI experiment config", shape="trialCommand:, tuner:, ...")
    if "trainingServicePlatform" in raw:
        raise SRNASError(f"{path}: NNI v1 config format; write it in the v2 format (trainingService:, see "
                         "examples/nni/config.yml)")
    try:
        config = HpoExperimentConfig.load(str(path))
        if "experimentWorkingDirectory" not in raw:
            config.experiment_working_directory = str(Path(output_dir, NNICTL_EXPERIMENTS).resolve())
        if isinstance(config.trial_command, str) and _runs_locally(config):
            config.trial_command = trial_command_for_this_python(config.trial_command)
        config.validate()
    except (AssertionError, ValueError, TypeError, KeyError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SRNASError(f"{path}: {message}") from None
    return config


def trial_failure_line(experiment_dir: str | os.PathLike, trial_job_id: str, stderr_path: str | None = None) -> \
        str | None:
    """The last non-empty line a trial wrote to stderr, or None when there is none to read.

    The file is ``stderr_path`` (NNI's ``stderrPath`` of the trial, ``file://host:/path`` or a path) when
    given and present, else the trial's stderr in the experiment folder: NNI 3.0's local training
    service keeps it as ``environments/<env>/trials/<id>/trial.stderr``, older layouts (and other
    training services) as ``trials/<id>/stderr``.
    """
    folder = Path(experiment_dir)
    candidates = []
    if stderr_path:
        local = stderr_path.split(":", 2)[-1] if stderr_path.startswith("file://") else stderr_path
        candidates.append(Path(local))
    candidates.append(folder / "trials" / trial_job_id / "stderr")
    candidates.extend(sorted(folder.glob(f"environments/*/trials/{trial_job_id}/trial.stderr")))
    for candidate in candidates:
        try:
            text = candidate.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else None
    return None


def _create_experiment(args: Any, host: str, output_dir: Path) -> int:
    """``create``: start the experiment, wait for it (unless ``--detach``), report, stop the manager."""
    import time

    from nni.experiment import Experiment

    from .nni_compat import experiment_directory

    config = nnictl_experiment_config(args.config, output_dir)
    experiment_directory(output_dir)  # NNI's index of experiments (.experiment) lives there too
    experiment = Experiment(config)
    experiment.url_prefix = args.url_prefix
    check_port_free(host, args.port)
    run_mode = RunMode.Detach if args.detach else RunMode.Background  # Background: stopped if we die
    try:
        with manager_bound_to(host, home=experiment_index_home()):
            experiment.start(args.port, args.debug, run_mode)
    except (RuntimeError, OSError, TimeoutError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise SRNASError(f"NNI's manager did not start: {reason} "
                         f"(log: {Path(config.experiment_working_directory, experiment.id, 'log')})") from None
    folder = Path(config.experiment_working_directory, experiment.id)
    if args.detach:
        print(f"experiment {experiment.id} running; files in {folder}; stop it with "
              f"'python -m srnas_nni.nni_engine --output-dir {shlex.quote(str(output_dir))} stop {experiment.id}'")
        return 0
    try:
        while (status := experiment.get_status()) not in _FINAL_STATUSES:
            time.sleep(2)
        jobs = experiment.list_trial_jobs()
    except KeyboardInterrupt:
        print(f"srnas: error: interrupted; experiment {experiment.id} stopped (files in {folder})", file=sys.stderr)
        return 130
    except OSError as exc:  # requests' errors are OSErrors: the manager stopped answering
        raise SRNASError(f"lost NNI's manager of experiment {experiment.id} ({type(exc).__name__}); "
                         f"its log: {folder / 'log' / 'nnimanager.log'}") from None
    finally:
        experiment.stop()
    succeeded = [job for job in jobs if job.status == "SUCCEEDED"]
    print(f"experiment {experiment.id} {status}: {len(succeeded)} of {len(jobs)} trials succeeded; files in {folder}")
    if status == "ERROR":
        print(f"srnas: error: experiment {experiment.id} failed (NNI's log: {folder / 'log' / 'nnimanager.log'})",
              file=sys.stderr)
        return 1
    if not succeeded:
        unsuccessful = ("FAILED", "SYS_CANCELED", "USER_CANCELED", "EARLY_STOPPED")
        ended = sorted((job for job in jobs if job.status in unsuccessful), key=lambda job: job.startTime or 0)
        reason = "no trial ran"
        if ended:
            first = ended[0]
            line = trial_failure_line(folder, first.trialJobId, getattr(first, "stderrPath", None))
            reason = (f"all {len(jobs)} trials failed; first trial {first.trialJobId}: "
                      f"{line or f'{first.status}, nothing on stderr'}")
        print(f"srnas: error: experiment {experiment.id}: {reason} (trial logs under {folder})", file=sys.stderr)
        return 1
    return 0


def nnictl_module() -> Any:
    """NNI's ``nni.tools.nnictl.nnictl`` (its ``parse_args()`` is the ``nnictl`` command), imported quietly.

    nnictl imports ``pkg_resources``, whose deprecation warning ("... or pin to Setuptools<81") asks
    for a pin srnas-nni already keeps (setuptools<81): it is silenced for this import only.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning)
        from nni.tools.nnictl import nnictl as nnictl_cli
    return nnictl_cli


def _run_nnictl(nnictl_args: list[str], host: str, output_dir: Path) -> int:
    """Any other nnictl command, in this process, reading NNI's index under ``output_dir``."""
    from .nni_compat import experiment_directory

    nnictl_cli = nnictl_module()
    experiment_directory(output_dir)
    saved_argv = sys.argv
    sys.argv = ["nnictl", *nnictl_args]
    try:
        with manager_bound_to(host, home=experiment_index_home()):  # resume / view start a manager
            nnictl_cli.parse_args()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved_argv
    return 0


def _nnictl_main(argv: list[str] | None = None) -> int:
    """``python -m srnas_nni.nni_engine [--host H] [--output-dir D] NNICTL_ARGS...``: nnictl, kept local.

    NNI's manager binds ``H`` (127.0.0.1 by default); nnictl's experiment folders and index are under
    ``D/nni-experiments`` (``D``: the config's folder for ``create``, else the current folder). ``create``
    runs trials with this interpreter (:func:`nnictl_experiment_config`), waits for the experiment
    (``--detach``: returns once it started, like nnictl), prints a summary and stops the manager; it
    exits 1 with the first failed trial's last stderr line when no trial succeeded.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m srnas_nni.nni_engine",
        description="Run nnictl with NNI's manager bound to one address (127.0.0.1 by default) and its files "
                    "under OUTPUT_DIR/nni-experiments; every argument after the options goes to nnictl, e.g. "
                    "'create --config config.yml --port 8080'.")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address NNI's manager binds (default 127.0.0.1)")
    parser.add_argument("--output-dir", type=Path,
                        help="folder whose nni-experiments/ keeps the experiments and NNI's index of them (default: "
                             "the config file's folder for create, the current folder otherwise)")
    parser.add_argument("--print-env", action="store_true",
                        help="print the environment variables (shell syntax) instead of running nnictl")
    parser.add_argument("nnictl_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    variables = manager_environment(args.host)
    if args.print_env:
        for name, value in variables.items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if not args.nnictl_args:
        parser.error("nnictl arguments missing, e.g. create --config config.yml --port 8080")
    if not is_loopback(args.host):
        print(f"warning: NNI's web UI will listen on {args.host} without authentication", file=sys.stderr)
    try:
        if args.nnictl_args[0] == "create":
            create = argparse.ArgumentParser(prog="python -m srnas_nni.nni_engine create",
                                             description="nnictl create, waiting for the experiment to end")
            create.add_argument("--config", "-c", required=True, help="NNI experiment config (YAML)")
            create.add_argument("--port", "-p", type=int, default=8080, help="NNI's web UI / REST port")
            create.add_argument("--debug", "-d", action="store_true", help="NNI's debug logging")
            create.add_argument("--url_prefix", "-u", default=None, help="web UI URL prefix")
            create.add_argument("--detach", action="store_true",
                                help="return once the experiment started (nnictl's behaviour) instead of waiting")
            create.add_argument("--foreground", "-f", action="store_true", help=argparse.SUPPRESS)  # = the default
            create_args = create.parse_args(args.nnictl_args[1:])
            output_dir = args.output_dir or Path(create_args.config).resolve().parent
            return _create_experiment(create_args, args.host, output_dir)
        return _run_nnictl(args.nnictl_args, args.host, args.output_dir or Path.cwd())
    except SRNASError as exc:
        print(f"srnas: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_nnictl_main())
