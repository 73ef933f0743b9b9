"""NNI's NAS experiment, as the search runner builds, runs and checkpoints it.

* :func:`nni_experiment_config` turns the ``experiment:`` section of an experiment file into a
  :class:`NasExperimentConfig` for NNI's training-service engine (``ts``; ``engine: nni``): trials are
  separate processes started by NNI's manager (Node.js) on the configured training service (``local``
  by default; ``training_service`` settings are passed to NNI unchanged, e.g. ``platform: remote``
  with ``machineList``), at most ``trial_concurrency`` at a time. The experiment class must mix in
  :class:`~.engine.NniManagerMixin`.
* :func:`run_experiment` runs (or resumes) an experiment and says plainly whether NNI stopped it on
  Ctrl-C: NNI's ``run``/``resume`` catch the ``KeyboardInterrupt`` themselves, stop the experiment and
  return None, where a search that ran to its end returns True.
* :func:`save_experiment_state` writes an experiment's state where NNI's ``resume`` reads it, with
  NNI's default serializer (:class:`~.loader.ExperimentStateSerializer`: atomic).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from .loader import nni  # noqa: F401  (the warning filter and the patches first)
from .manager import is_loopback, set_manager_host

from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402
from nni.nas.utils.serializer import get_default_serializer  # noqa: E402

__all__ = ["NasExperiment", "NasExperimentConfig", "nni_experiment_config", "run_experiment",
           "save_experiment_state"]

_logger = logging.getLogger(__name__)


def nni_experiment_config(settings: Mapping[str, Any], *, error: Callable[[str, str], Exception]) \
        -> NasExperimentConfig:
    """The :class:`NasExperimentConfig` of ``engine: nni`` for a validated ``experiment:`` section.

    Training-service engine, :class:`~.engine.FreezingModelSpace` model format (``simplified``),
    ``trial_concurrency`` and ``training_service`` (passed through; ``platform: local`` by default)
    from ``settings``, and the manager's address (``host``) for :class:`~.engine.NniManagerMixin`.
    The caller sets the working directory, name and budgets. Bad settings (NNI's own validation
    included) raise ``error(key path, message)``; a host other than loopback is logged as a warning,
    and is required for platforms whose workers connect back to the manager (every one but ``local``).
    """
    host = str(settings["host"]).strip()
    if not host:
        raise error("experiment.host", "must be an address (127.0.0.1, 0.0.0.0, ...), not empty")
    service = dict(settings["training_service"] or {})
    service.setdefault("platform", "local")
    platform = service["platform"]
    if not isinstance(platform, str):
        raise error("experiment.training_service.platform", f"{platform!r} must be a platform name, "
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
        raise error("experiment.training_service", message) from None
    if platform != "local" and is_loopback(host):
        raise error("experiment.host", f"{host!r}: the {platform} training service's workers connect back to "
                                       "NNI's manager; set experiment.host to an address they can reach "
                                       "(e.g. 0.0.0.0) and training_service.nniManagerIp to match")
    set_manager_host(nas_config, host)
    if not is_loopback(host):
        _logger.warning("NNI's web UI and REST API will listen on %s:%s without authentication: anyone who can reach "
                        "this address can read and control the experiment", host, settings["port"])
    return nas_config


def run_experiment(experiment: NasExperiment, *, port: int, resume: bool = False) -> bool:
    """Run (``resume``: resume) ``experiment`` until it ends; True when NNI stopped it on Ctrl-C.

    NNI's ``run`` and ``resume`` catch a ``KeyboardInterrupt`` while the experiment runs, stop the
    experiment and return None; a NAS experiment that ran to its end returns True. The caller decides
    what an interruption means (the search runner raises ``KeyboardInterrupt`` once it recorded what
    finished).
    """
    finished = experiment.resume(port=port) if resume else experiment.run(port=port)
    return finished is None


def save_experiment_state(state: dict[str, Any], path: str | Path) -> None:
    """Write an experiment's state (``NasExperiment.state_dict()``) to ``path`` (the suffix is the
    serializer's), where NNI's ``resume`` reads it back."""
    get_default_serializer().save(state, Path(path))
