"""NNI's manager (its Node.js process, web UI and REST API) bound to one address, with its files under the run.

NNI's manager calls ``app.listen(port)`` with no host, i.e. on every interface, and has no option for
it. The manager process is started with ``NODE_OPTIONS=--require srnas_nni/nni_adapter/node/listen_host.js``
(chained before any NODE_OPTIONS of the user's), a preload that makes its TCP servers bind the address
given in ``SRNAS_NNI_HOST`` (:func:`manager_environment`, :func:`manager_bound_to`). Only the manager's
environment carries these: they are set while NNI spawns it and the preload restores the user's own
environment for the processes the manager starts. ``SRNAS_NNI_HOME`` points the manager at the index
of experiments this process writes (:func:`~.loader.experiment_index_home`) instead of
``~/nni-experiments``.

Also here: the address a :class:`~.engine.NniManagerMixin` experiment binds (:func:`manager_host`),
a port check with a one-line error (:func:`check_port_free`) and the web UI's address
(:func:`web_ui_url`). This module imports no NNI.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import SRNASError
from ..runtime import is_loopback

__all__ = ["DEFAULT_HOST", "PRELOAD", "is_loopback", "web_ui_url", "manager_environment", "manager_bound_to",
           "check_port_free", "manager_host", "set_manager_host"]

DEFAULT_HOST = "127.0.0.1"
#: The Node preload that binds the manager's servers to ``$SRNAS_NNI_HOST`` (package data).
PRELOAD = Path(__file__).resolve().parent / "node" / "listen_host.js"
HOST_VARIABLE = "SRNAS_NNI_HOST"
HOME_VARIABLE = "SRNAS_NNI_HOME"
PREVIOUS_VARIABLE = "SRNAS_NNI_PREVIOUS_NODE_OPTIONS"
_HOST_ATTRIBUTE = "_srnas_manager_host"  # on a NasExperimentConfig; NNI allows "_" attributes
_WILDCARDS = {"", "0.0.0.0", "::", "::0", "[::]"}
_ENV_LOCK = threading.Lock()


def web_ui_url(experiment: Mapping[str, Any] | str, port: int | None = None) -> str:
    """The address of NNI's web UI for an experiment file's ``experiment:`` section (its ``host`` and
    ``port``), or for a host and port.

    A wildcard host (``0.0.0.0``, ``::``) is shown as this machine's name.
    """
    if isinstance(experiment, str):
        host = experiment
    else:
        host, port = experiment["host"], experiment["port"] if port is None else port
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


def set_manager_host(nas_config: Any, host: str) -> None:
    """Have a :class:`~.engine.NniManagerMixin` experiment with this ``NasExperimentConfig`` bind ``host``."""
    setattr(nas_config, _HOST_ATTRIBUTE, host)


def manager_host(nas_config: Any) -> str:
    """The address a :class:`~.engine.NniManagerMixin` experiment binds its manager to (default 127.0.0.1)."""
    return getattr(nas_config, _HOST_ATTRIBUTE, None) or DEFAULT_HOST
