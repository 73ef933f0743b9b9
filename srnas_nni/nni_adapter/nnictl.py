"""``python -m srnas_nni.nni_engine [--host H] [--output-dir D] NNICTL_ARGS...``: nnictl, kept local.

It runs ``nnictl ARGS...`` with NNI's manager bound to ``H`` (127.0.0.1 by default; the preload of
:mod:`.manager`) and its experiment folders and index under ``D/nni-experiments``; its ``create``
runs local trials with this interpreter, waits for the experiment and fails when no trial succeeded
(:func:`_nnictl_main`, ``examples/nni/README.md``).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from ..errors import SRNASError
from ..runtime import read_yaml_mapping
from .import_filter import filtered_import_warnings
from .loader import experiment_directory, experiment_index_home
from .manager import DEFAULT_HOST, check_port_free, is_loopback, manager_bound_to, manager_environment

from nni.experiment import RunMode  # noqa: E402

__all__ = ["NNICTL_EXPERIMENTS", "nnictl_experiment_config", "trial_command_for_this_python", "trial_failure_line",
           "nnictl_module"]

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

    nnictl imports ``pkg_resources``, whose deprecation warning is silenced for this import only
    (:mod:`.import_filter`).
    """
    with filtered_import_warnings():
        from nni.tools.nnictl import nnictl as nnictl_cli
    return nnictl_cli


def _run_nnictl(nnictl_args: list[str], host: str, output_dir: Path) -> int:
    """Any other nnictl command, in this process, reading NNI's index under ``output_dir``."""
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
