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
  metric reaches the engine's event callbacks (NNI's engine only keeps weak references), and a
  resumed experiment (``srnas search --resume``) does not lose its engine to commands NNI's NAS
  channel does not know;
* points the manager at the index of experiments this process writes (the run's
  ``nni-experiments/.experiment``, :func:`experiment_index_home`) instead of ``~/nni-experiments``;
* refuses a port that is taken (:func:`check_port_free`, one line), and reports the web UI address
  (:func:`web_ui_url`) through ``on_manager_started`` once the manager answers.

The same preload keeps ``nnictl``'s manager on loopback: ``python -m srnas_nni.nni_engine
[--host H] ARGS...`` runs ``nnictl ARGS...`` with it (see ``examples/nni/README.md``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .config import ExperimentConfig
from .errors import SRNASError
from .nni_compat import nni

from nni.experiment import RunMode  # noqa: E402
from nni.nas.execution import ModelEventType, TrainingServiceExecutionEngine  # noqa: E402
from nni.nas.experiment import NasExperimentConfig  # noqa: E402
from nni.nas.experiment.config import SimplifiedModelFormatConfig, TrainingServiceEngineConfig  # noqa: E402
from nni.nas.space import SimplifiedModelSpace  # noqa: E402
from nni.runtime.tuner_command_channel import CommandType  # noqa: E402

__all__ = ["DEFAULT_HOST", "PRELOAD", "nni_experiment_config", "web_ui_url", "is_loopback", "manager_environment",
           "manager_bound_to", "manager_host", "check_port_free", "experiment_index_home", "NniManagerMixin",
           "FreezingModelSpace", "KeepAliveEngine"]

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

    def executable_model(self) -> Any:
        if self.sample is None:
            raise RuntimeError("Cannot get an executable model from a model space that is not frozen.")
        key = nni.dump([self.model.trace_symbol, self.model.trace_args, self.model.trace_kwargs])
        space = _SPACE_CACHE.get(key)
        if space is None:
            _SPACE_CACHE.clear()  # one space per process is the common case; never grow without bound
            space = _SPACE_CACHE[key] = self.model.trace_copy().get(traceable=False)
        return space.freeze(dict(self.sample))


# -- engine and experiment ------------------------------------------------------------------------


_SKIPPED_COMMANDS = (CommandType.ImportData, CommandType.AddCustomizedTrialJob, CommandType.Ping)


class KeepAliveEngine(TrainingServiceExecutionEngine):
    """NNI's training-service engine with two fixes for NNI 3.0.

    * It holds each submitted model until its trial ends. NNI's engine keeps weak references only: a
      model the strategy does not keep is collected and its metric dropped ("the model has been
      garbage-collected") before any event callback sees it.
    * It skips the manager's ``ImportData``/``AddCustomizedTrialJob`` commands, which a resumed
      experiment sends to its "tuner" and NNI's NAS channel does not know: its listener thread dies
      on them ("Unknown command type") and the engine hears nothing more. The engine finds the next
      parameter id and the previous trials from the manager's database instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._alive: dict[int, Any] = {}
        self.register_model_event_callback(ModelEventType.TrainingEnd, self._release)
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
        for model in models:
            self._alive[id(model)] = model
        super().submit_models(*models)

    def _release(self, event: Any) -> None:
        self._alive.pop(id(event.model), None)


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
        try:
            with manager_bound_to(host, home=experiment_index_home()):
                super()._start_nni_manager(port, debug, run_mode, tuner_command_channel,  # type: ignore[misc]
                                           list(tags or []))
        except OSError as exc:  # no node binary, not executable, ...
            raise SRNASError(f"NNI's manager could not start: {exc}") from None
        self.web_ui = web_ui_url(host, port)
        if self.on_manager_started is not None:
            self.on_manager_started(self.web_ui)

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


def _nnictl_main(argv: list[str] | None = None) -> int:
    """``python -m srnas_nni.nni_engine [--host H] NNICTL_ARGS...``: nnictl whose manager binds H."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m srnas_nni.nni_engine",
        description="Run nnictl with NNI's manager bound to one address (127.0.0.1 by default); every argument "
                    "after the options goes to nnictl, e.g. 'create --config config.yml --port 8080'.")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address NNI's manager binds (default 127.0.0.1)")
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
    nnictl = Path(sys.executable).with_name("nnictl")
    command = [str(nnictl) if nnictl.exists() else "nnictl", *args.nnictl_args]
    environ = {k: v for k, v in os.environ.items() if k not in (PREVIOUS_VARIABLE, HOME_VARIABLE)}
    return subprocess.call(command, env={**environ, **variables})


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_nnictl_main())
