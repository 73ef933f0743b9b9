"""Many workers, one search: processes on any number of machines evaluating architectures of one Optuna study.

``srnas worker FILE --storage URL`` is :func:`run_worker`. Every worker reads the same experiment file,
opens the same study in a shared storage (any SQLAlchemy URL: ``postgresql://``, ``mysql://``,
``sqlite:///`` for workers on one machine) and loops: ask the study for an architecture, train and
validate it within ``evaluator.train``, tell the three objectives (or a failure with its reason). The
sampler reads the whole study, so every worker proposes from everything any worker has learned. Strategies
that can work this way: the Optuna samplers (``nsga2``, ``nsga3``, ``optuna_tpe``, ``gp``,
``optuna_random``), ``random`` and ``evolution`` (aging evolution with the study as the population,
:class:`~srnas_nni.study.evolution_sampler.RegularizedEvolutionSampler`). Strategies that keep their search
state in one process (the RL controller, one-shot supernets, NNI's TPE and grid) are refused by name.

Exactly ``experiment.max_trials`` architectures are planned, whatever the number of workers:

* a worker admits a new trial only while holding the study's *admission lock* (a PostgreSQL advisory
  lock, a MySQL named lock, or a file lock beside an SQLite database), under which it counts the planned
  trials and asks, so concurrent workers cannot overshoot;
* a running trial's worker records a heartbeat every ``heartbeat_interval`` seconds (Optuna's RDB
  heartbeat); a trial whose heartbeat is older than ``grace_period`` belonged to a dead worker: the next
  worker to ask fails it with ``fail_reason`` :data:`LOST_WORKER_REASON` (Optuna's
  :func:`optuna.storages.fail_stale_trials`) and re-queues its architecture as a ``WAITING`` trial (the
  storage's stale-trial callback, :class:`RequeueLostTrial`), which the next ask takes first. The stale
  trial stays ``FAIL`` and is not counted as planned; its retry is;
* a worker stopped by Ctrl-C or SIGTERM fails its trial with the reason and re-queues it the same way;
* a worker whose own trial was declared stale (it stalled longer than the grace period) cannot tell it
  any more: the retry is the one that counts, so no architecture is completed twice;
* when every planned trial is finished, the workers exit.

Every trial a worker runs carries who ran it, so one trial can be matched across the study, the workers'
logs and the dashboard (user attributes, :func:`worker_identity`): ``worker`` (``--worker-id``, default
``HOST-PID``), ``worker_host``, ``worker_pid``, ``attempt`` (1, or 2, 3, ... for a re-queued architecture) and
``retry_of`` (the number of the trial it retries, on retries only). ``nni_trial`` and ``nni_parameter_id`` are
None on this path: workers run no NNI trials (they are set by ``srnas search``'s NNI engine and nnictl).

Each worker keeps trained candidates under ``<output_dir>/models`` and rewrites ``pareto.json``; the first
worker writes ``run.json`` there, so ``srnas pareto``, ``plot``, ``dashboard`` and ``export`` work on the
folder. The study itself says what it searched (study user attribute ``srnas``: space, scale, strategy), so
``srnas pareto --storage URL`` and ``srnas plot --storage URL`` work on the shared storage from anywhere
(:func:`load_shared_study`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import socket
import sys
import threading
import time
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
from optuna.trial import TrialState

from .config import ExperimentConfig, parse_duration
from ..errors import SRNASError
from ..study.objectives import objective_values
from ..study.storage import make_sampler, open_study
from ..runtime import atomic_write_bytes, atomic_write_json

__all__ = ["WorkerResult", "run_worker", "worker_sampler", "AdmissionLock", "SHAREABLE_STRATEGIES",
           "LOST_WORKER_REASON", "RequeueLostTrial", "worker_identity", "load_shared_study", "storage_errors",
           "redact_url", "STUDY_INFO_ATTR"]

#: Strategies whose whole state is the study (plus a sampler's random generator).
SHAREABLE_STRATEGIES = ("optuna", "random", "evolution")

#: ``fail_reason`` of a trial whose worker died: its heartbeat stopped for longer than the grace period.
LOST_WORKER_REASON = "worker lost (heartbeat)"
#: ``fail_reason`` of a trial whose worker died between asking for it and its first heartbeat.
LOST_BEFORE_HEARTBEAT_REASON = "worker lost (before its first heartbeat)"
#: Study user attribute: what the study searches (``space`` spec, ``scale``, ``strategy``).
STUDY_INFO_ATTR = "srnas"
#: User attributes that describe one attempt at an architecture, not the architecture: a retry gets its own.
_ATTEMPT_ATTRS = ("fail_reason", "worker", "worker_host", "worker_pid", "attempt", "retry_of")


@dataclass
class WorkerResult:
    """This worker's counts (``fail_reasons``: each distinct reason its failed trials gave, and how
    many, most frequent first) and the study's ``complete`` trials (every worker's)."""

    worker_id: str
    evaluated: int
    failed: int
    handed_back: int
    seconds: float
    planned: int | None
    complete: int
    fail_reasons: dict[str, int] = field(default_factory=dict)


class WorkerStopped(BaseException):
    """SIGTERM (or SIGINT) reached a worker: its running trial is handed back to the study.

    A ``BaseException``, like ``KeyboardInterrupt``: the signal may land anywhere inside a trial, and a
    handler for ``Exception`` there (an image decoder's, a cost counter's) must not take it for a failure.
    """


# -- the sampler ----------------------------------------------------------------------------------


def worker_sampler(config: ExperimentConfig, worker_id: str) -> optuna.samplers.BaseSampler:
    """The Optuna sampler the configured strategy becomes in a worker, seeded per worker.

    Seeds differ per worker (so workers do not propose the same architectures) and are reproducible
    for the same worker id. A strategy that cannot share its state through a study is a ConfigError.
    """
    name, options = config.strategy_name, dict(config.strategy_options)
    base_seed = options.get("seed")
    base_seed = config.seed if base_seed is None else int(base_seed)
    seed = (base_seed * 1_000_003 + zlib.crc32(worker_id.encode())) % 2 ** 32
    if name == "optuna":
        return make_sampler(options.get("sampler", "nsga2"), seed, **dict(options.get("sampler_options") or {}))
    if name == "random":
        return make_sampler("random", seed)
    if name == "evolution":
        keys = ("population_size", "sample_size", "mutation_prob", "crossover", "dedup")
        return make_sampler("evolution", seed, **{k: options[k] for k in keys if k in options})
    raise config.error("strategy", f"{name!r} keeps its search state in one process and cannot run as workers on "
                                   f"a shared study; workers can run the Optuna samplers (nsga2, nsga3, optuna_tpe, "
                                   f"gp, optuna_random), random and evolution")


# -- the admission lock ---------------------------------------------------------------------------


class AdmissionLock:
    """A lock shared by every worker of one study, held while a worker counts planned trials and asks.

    PostgreSQL: a session advisory lock; MySQL/MariaDB: ``GET_LOCK``; SQLite: ``flock`` on a file beside
    the database. Each is released by the server or the kernel when its holder dies, so a killed worker
    never blocks the others. Other back-ends get no lock (``exclusive`` is False; the worker warns):
    concurrent workers may then start up to (workers - 1) trials more than planned.
    """

    def __init__(self, storage_url: str, study_name: str):
        from sqlalchemy.engine import make_url

        url = make_url(storage_url)
        self.backend = url.get_backend_name()
        self.key = int.from_bytes(hashlib.sha1(f"srnas-nni:{study_name}".encode()).digest()[:8], "big") >> 1
        self.name = f"srnas-nni:{hashlib.sha1(study_name.encode()).hexdigest()[:40]}"
        self._engine = None
        self._path: Path | None = None
        #: False for back-ends with no lock: concurrent workers may then start a few trials too many.
        self.exclusive = self.backend in ("sqlite", "postgresql", "mysql", "mariadb")
        if self.backend == "sqlite":
            database = url.database or ""
            if database and database != ":memory:":
                self._path = Path(database).with_name(Path(database).name + ".lock")
        elif self.backend in ("postgresql", "mysql", "mariadb"):
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            self._engine = create_engine(storage_url, poolclass=NullPool)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._path is not None:
            with open(self._path, "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        if self._engine is None:
            yield
            return
        from sqlalchemy import text

        with self._engine.connect() as connection:
            if self.backend == "postgresql":
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
                release = (text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            else:
                connection.execute(text("SELECT GET_LOCK(:name, -1)"), {"name": self.name})
                release = (text("SELECT RELEASE_LOCK(:name)"), {"name": self.name})
            try:
                yield
            finally:
                connection.execute(*release)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


# -- the worker -----------------------------------------------------------------------------------


class RequeueLostTrial:
    """The storage's stale-trial callback: re-queue the architecture of a trial whose worker died.

    Like Optuna's ``RetryHeartbeatStaleTrialCallback`` (same ``failed_trial``/``retry_history`` system
    attributes, at most ``max_retry`` re-queues per architecture, None: always), except that the retry does
    not inherit the lost attempt's attributes (its ``fail_reason``, its worker): a completed retry must not
    read as failed, nor as run by the dead worker.
    """

    def __init__(self, max_retry: int | None = None):
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        retries = len(trial.system_attrs.get("retry_history", [])) + 1
        if self.max_retry is not None and retries > self.max_retry:
            return
        _requeue(study, trial)


def _storage(url: str, heartbeat_interval: int, grace_period: int, max_retry: int | None):
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}  # several processes write one file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # Optuna 5 renamed the RDBStorage argument (and deprecates the old name); optuna 4 (the oldest
        # supported) has only failed_trial_callback. RetryHeartbeatStaleTrialCallback came with the new name.
        if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
            retry = {"heartbeat_stale_trial_callback": RequeueLostTrial(max_retry)}
        else:
            retry = {"failed_trial_callback": RequeueLostTrial(max_retry)}
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                                          grace_period=grace_period, **retry)


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn a URL that cannot be parsed, a missing database driver or an unreachable server into one
    :class:`SRNASError` line naming ``--storage`` and the URL, its password hidden."""
    import sqlalchemy.exc

    try:
        yield
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, OSError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SRNASError(f"--storage {redact_url(url)}: {detail}") from None


def load_shared_study(url: str, study_name: str | None = None) -> optuna.Study:
    """The srnas-nni study ``study_name`` in the storage ``url``, read as it is (nothing is created).

    Without ``study_name`` the storage must hold exactly one study. A bad or unreachable URL, an SQLite
    file that does not exist, an empty storage, an unknown study (or several to choose from), and a study
    that is not a three-objective srnas-nni study are each one :class:`SRNASError` line.
    """
    from sqlalchemy.engine import make_url

    with storage_errors(url):
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            # RDBStorage would create a missing file (and its tables): a typo must not leave an empty study.
            if not database or database == ":memory:" or not Path(database).is_file():
                raise SRNASError(f"--storage {redact_url(url)}: no such database file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(url)
        names = [summary.study_name for summary in storage.get_all_studies()]
    if not names:
        raise SRNASError(f"--storage {redact_url(url)}: holds no study")
    if study_name is None:
        if len(names) > 1:
            raise SRNASError(f"--storage {redact_url(url)} holds {len(names)} studies, choose one with --study: "
                             f"{', '.join(sorted(names))}")
        study_name = names[0]
    elif study_name not in names:
        raise SRNASError(f"--study {study_name}: no such study in {redact_url(url)} (it holds: "
                         f"{', '.join(sorted(names))})")
    with storage_errors(url):
        study = optuna.load_study(study_name=study_name, storage=storage)
    if len(study.directions) != 3:
        raise SRNASError(f"--study {study_name}: not an srnas-nni study ({len(study.directions)} objective(s), "
                         f"expected PSNR, params and Mult-Adds)")
    return study


def worker_identity(worker_id: str, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The user attributes that say which worker ran ``trial`` and which attempt at its architecture it is.

    ``nni_trial``/``nni_parameter_id`` are None: a worker's trial is no NNI trial (module docstring).
    """
    history = trial.system_attrs.get("retry_history", [])
    identity: dict[str, Any] = {"worker": worker_id, "worker_host": socket.gethostname(), "worker_pid": os.getpid(),
                                "attempt": len(history) + 1, "nni_trial": None, "nni_parameter_id": None}
    if history:
        identity["retry_of"] = history[-1]
    return identity


def _open_shared_study(url: str, study_name: str, sampler, heartbeat_interval: int, grace_period: int,
                       max_retry: int | None) -> tuple[optuna.Study, AdmissionLock]:
    """The shared study (created by the first worker, under the lock) and its admission lock.

    A URL that cannot be parsed, a missing database driver or an unreachable server is one line
    naming ``--storage``.
    """
    with storage_errors(url):
        lock = AdmissionLock(url, study_name)
        with lock.held():  # the first worker creates the tables and the study; the others wait and load them
            study = open_study(_storage(url, heartbeat_interval, grace_period, max_retry), study_name, sampler)
    return study, lock


def _retried_numbers(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Numbers of trials that were re-queued (their retry carries the architecture on)."""
    return {number for t in trials for number in t.system_attrs.get("retry_history", [])}


class _Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds in a thread, while the trial runs."""

    def __init__(self, storage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial_id}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a database hiccup: the next beat tries again; the grace period allows for it
                pass

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


def run_worker(config: ExperimentConfig, *, storage: str | None = None, worker_id: str | None = None,
               heartbeat_interval: int = 10, grace_period: int | None = None, max_retry: int | None = 3,
               poll_interval: float | None = None, log: Callable[[str], None] | None = None) -> WorkerResult:
    """Evaluate architectures of the shared study until every planned trial is finished (module docstring).

    ``storage`` (default: ``tracking.storage``, else the run folder's SQLite file) is the shared study's
    URL; ``heartbeat_interval``/``grace_period`` (seconds; grace default 3 x interval) decide when a
    silent worker's trial is re-queued, at most ``max_retry`` times per architecture (None: always).
    """
    from ..evaluation.evaluator import evaluate_sr_model
    from .search import CONFIG_FILE, RUN_FILE, _trial_arguments
    from ..spaces.encoding import SpaceEncoding
    from .recorder import StudyRecorder, write_pareto_file

    if heartbeat_interval < 1:
        raise SRNASError(f"--heartbeat must be at least 1 second, got {heartbeat_interval}")
    grace_period = 3 * heartbeat_interval if grace_period is None else int(grace_period)
    if grace_period <= heartbeat_interval:
        raise SRNASError(f"--grace ({grace_period} s) must be longer than --heartbeat ({heartbeat_interval} s)")
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    url = storage or config.storage_url()
    max_trials = config.experiment["max_trials"]
    duration = parse_duration(config.experiment["max_duration"])
    if max_trials is None and duration is None:
        raise config.error("experiment.max_trials", "workers need experiment.max_trials or max_duration to stop")
    poll_interval = poll_interval or min(2.0, heartbeat_interval / 2)
    sampler = worker_sampler(config, worker_id)
    started = time.perf_counter()
    deadline = None if duration is None else started + duration

    # This machine's copy of the data, every image by its header, before joining the study: an unusable
    # file is one error now, not a failed trial after trial (skipped with one warning under skip_bad).
    config.check_images()
    space = config.space
    encoding = SpaceEncoding(space)
    distributions = {label: optuna.distributions.CategoricalDistribution(values)
                     for label, values in encoding.choices.items()}
    run_dir = config.output_dir
    run_dir.mkdir(parents=True, exist_ok=True)  # before the study: the default storage is a file in it
    study, lock = _open_shared_study(url, config.study_name, sampler, heartbeat_interval, grace_period, max_retry)
    _write_run_files(run_dir / RUN_FILE, run_dir / CONFIG_FILE, config, url)
    _describe_study(study, config)
    recorder = StudyRecorder(study, space, strategy=config.strategy_name, space_name=config.space_name,
                             scale=config.scale)
    arguments = _trial_arguments(config, run_dir)
    counts = {"evaluated": 0, "failed": 0, "handed_back": 0}
    fail_reasons: Counter[str] = Counter()

    if not lock.exclusive:
        log(f"[{worker_id}] warning: no admission lock for {lock.backend!r} storage: concurrent workers may start "
            f"a few trials more than experiment.max_trials")
    previous_handler = signal.signal(signal.SIGTERM, _on_stop) if _main_thread() else None
    log(f"[{worker_id}] joined study {config.study_name!r} in {redact_url(url)}: {config.strategy_name} on "
        f"{config.space_name} x{config.scale}, {max_trials or 'unbounded'} planned trials")
    try:
        while True:
            out_of_time = deadline is not None and time.perf_counter() > deadline
            # A stop arriving while a trial is being admitted waits until _evaluate can hand the trial back.
            mask = _block_stops()
            with lock.held():
                trial, finished = _admit(study, distributions, worker_id, max_trials, out_of_time, grace_period)
            if trial is None:
                _restore_stops(mask)
                if finished:
                    break
                time.sleep(poll_interval)  # others are still running the last trials; one may die and need us
                continue
            reason = _evaluate(trial, study, encoding, space, recorder, arguments, evaluate_sr_model, worker_id,
                               heartbeat_interval, counts, log, mask)
            if reason is not None:
                fail_reasons[reason] += 1
            write_pareto_file(run_dir, study, space_spec=config.space_spec, scale=config.scale,
                              strategy=config.strategy_name)
    except WorkerStopped:  # between trials: nothing of ours is running
        raise KeyboardInterrupt from None
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        lock.close()
    trials = study.get_trials(deepcopy=False)
    return WorkerResult(worker_id=worker_id, evaluated=counts["evaluated"], failed=counts["failed"],
                        handed_back=counts["handed_back"], seconds=time.perf_counter() - started,
                        planned=max_trials, complete=sum(t.state == TrialState.COMPLETE for t in trials),
                        fail_reasons=dict(fail_reasons.most_common()))


def _describe_study(study: optuna.Study, config: ExperimentConfig) -> None:
    """Record what the study searches in the study itself (for ``srnas plot --storage``), once."""
    if STUDY_INFO_ATTR not in study.user_attrs:
        study.set_user_attr(STUDY_INFO_ATTR, {"space": config.space_spec, "scale": int(config.scale),
                                              "strategy": config.strategy_name})


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def redact_url(url: str) -> str:
    """``url`` with its password shown as ``***`` (unchanged if it cannot be parsed as a URL)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _write_run_files(run_file: Path, config_file: Path, config: ExperimentConfig, url: str) -> None:
    """``run.json`` and ``experiment.yaml`` of the folder, written by the first worker only."""
    if run_file.exists():
        return
    if not config_file.exists():
        atomic_write_bytes(config_file, config.to_yaml().encode())
    atomic_write_json(run_file, {"status": "workers", "strategy": config.strategy_name, "space": config.space_spec,
                                 "study_name": config.study_name, "storage": url, "one_shot": False,
                                 "source": config.source})


def _admit(study: optuna.Study, distributions: dict[str, Any], worker_id: str, max_trials: int | None,
           out_of_time: bool, grace_period: int) -> tuple[optuna.trial.Trial | None, bool]:
    """Under the admission lock: fail stale trials (re-queueing them), then ask if a trial is due.

    Returns ``(trial, finished)``: a trial to evaluate, or None and whether the search is over.
    """
    _fail_lost_trials(study)
    trials = study.get_trials(deepcopy=False)
    _fail_orphans(study, trials, grace_period)
    trials = study.get_trials(deepcopy=False)
    retried = _retried_numbers(trials)
    waiting = any(t.state == TrialState.WAITING for t in trials)
    planned = sum(t.number not in retried for t in trials)
    if waiting or (not out_of_time and (max_trials is None or planned < max_trials)):
        with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for optimize(); ours beat themselves
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed", category=UserWarning)
            trial = study.ask(distributions)
        study._storage.record_heartbeat(trial._trial_id)
        # "worker" first: its presence tells _fail_orphans that the heartbeat now guards this trial.
        for key, value in worker_identity(worker_id, study._storage.get_trial(trial._trial_id)).items():
            trial.set_user_attr(key, value)
        return trial, False
    return None, not any(t.state == TrialState.RUNNING for t in trials)


def _fail_lost_trials(study: optuna.Study) -> None:
    """Fail the running trials whose heartbeat is stale, with :data:`LOST_WORKER_REASON`, and re-queue them.

    Optuna's :func:`~optuna.storages.fail_stale_trials` fails them and calls the storage's
    :class:`RequeueLostTrial`; the reason is written first, while the trial can still take attributes.
    """
    storage = study._storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for trial_id in storage._get_stale_trial_ids(study._study_id):
            try:
                storage.set_trial_user_attr(trial_id, "fail_reason", LOST_WORKER_REASON)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # finished meanwhile (its worker was only slow, or another worker failed it)
            # A stalled worker telling its result between this line and the failure below keeps its result
            # (fail_stale_trials skips it) and the stray reason, which nothing reads on a complete trial.
        optuna.storages.fail_stale_trials(study)


def _fail_orphans(study: optuna.Study, trials: list[optuna.trial.FrozenTrial], grace_period: int) -> None:
    """Running trials with no worker recorded, older than the grace period, and re-queue them.

    A worker asks, records the first heartbeat and its id under the admission lock; one killed inside
    that instant leaves a running trial with no heartbeat, which Optuna's staleness check never sees.
    """
    now = time.time()
    for trial in trials:
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        if trial.state == TrialState.RUNNING and "worker" not in trial.user_attrs and now - started > grace_period:
            try:
                study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", LOST_BEFORE_HEARTBEAT_REASON)
                study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            _requeue(study, trial)


class _StopGate:
    """Where a stop (SIGTERM, or Ctrl-C's SIGINT) may interrupt the worker.

    While stops are held back (:func:`_block_stops`), one that arrives is remembered and raised when they
    are let through again (:func:`_restore_stops`). This is decided in Python, not with the thread's
    signal mask: the kernel hands a process-directed signal to any thread that does not block it (torch
    and the database driver run threads of their own), and Python then runs the handler in the main
    thread whatever that thread's mask says.
    """

    held = False
    pending: int | None = None


def _on_stop(signum, frame) -> None:
    if _StopGate.held:
        _StopGate.pending = signum
        return
    _raise_stop(signum)


def _raise_stop(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise WorkerStopped(signal.Signals(signum).name)


def _block_stops():
    """Hold SIGINT/SIGTERM back (main thread only); returns what :func:`_restore_stops` needs, or None."""
    if not _main_thread():
        return None
    previous = (_StopGate.held, signal.signal(signal.SIGINT, _on_stop))
    _StopGate.held = True
    return previous


def _restore_stops(mask) -> None:
    """Undo the matching :func:`_block_stops`; a stop that arrived meanwhile is raised now."""
    if mask is None:
        return
    held, sigint_handler = mask
    _StopGate.held = held
    signal.signal(signal.SIGINT, sigint_handler)
    if not held and _StopGate.pending is not None:
        signum, _StopGate.pending = _StopGate.pending, None
        _raise_stop(signum)


def _evaluate(trial, study, encoding, space, recorder, arguments, evaluate, worker_id, heartbeat_interval,
              counts, log, mask=None) -> str | None:
    """Train and score ``trial``, then tell the study; entered with stops held back (``mask`` restores them).
    Returns the failure reason, None if the candidate trained.

    Stops are let through only while the candidate trains: a stop there hands the trial back; a stop
    arriving while the result is recorded is taken once it is recorded, between trials.
    """
    try:
        sample, label, metrics, reason = _train_candidate(trial, study, encoding, space, recorder, arguments,
                                                          evaluate, worker_id, heartbeat_interval, counts, log, mask)
        return _record(trial, study, recorder, sample, label, metrics, reason, worker_id, counts, log)
    finally:
        _restore_stops(mask)


def _train_candidate(trial, study, encoding, space, recorder, arguments, evaluate, worker_id, heartbeat_interval,
                     counts, log, mask):
    sample = encoding.decode(trial.params)
    retry_of = study._storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
    label = f"trial {trial.number}" + (f" (retry of {retry_of})" if retry_of is not None else "")
    metrics, reason = None, None
    try:
        with _Heartbeat(study._storage, trial._trial_id, heartbeat_interval):
            try:
                _restore_stops(mask)
                try:
                    metrics = evaluate(space.freeze(sample), architecture=sample, report=False, **arguments)
                finally:
                    _block_stops()
            except (KeyboardInterrupt, WorkerStopped) as exc:
                _hand_back(study, trial, recorder, sample, f"worker {worker_id} stopped ({type(exc).__name__})")
                counts["handed_back"] += 1
                log(f"[{worker_id}] {label}: handed back to the study (re-queued)")
                raise
            except Exception as exc:  # a failed candidate (NaN, out of memory, ...) is a result, not a crash
                first_line = str(exc).splitlines()[0] if str(exc) else ""
                reason = f"{type(exc).__name__}: {first_line}"[:500]
    except WorkerStopped:
        raise KeyboardInterrupt from None
    return sample, label, metrics, reason


def _record(trial, study, recorder, sample, label, metrics, reason, worker_id, counts, log) -> str | None:
    """Tell the study the trial's outcome; the failure reason if it was recorded as failed."""
    values = objective_values(metrics) if metrics is not None else None
    if metrics is not None and values is None:
        reason = f"incomplete objectives in {sorted(metrics)}"
    try:
        for key, value in recorder.attributes(sample, metrics, fail_reason=reason).items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("worker", worker_id)
        if values is None:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, values)
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError) as exc:
        # Declared stale while it ran (this worker stalled past the grace period): the retry counts.
        log(f"[{worker_id}] {label}: not recorded, the study already ended it ({exc}); its retry counts")
        return None
    if values is None:
        counts["failed"] += 1
        log(f"[{worker_id}] {label}: failed ({reason})")
        return reason or "no reason recorded"
    counts["evaluated"] += 1
    log(f"[{worker_id}] {label}: PSNR {values[0]:.3f} dB, {int(values[1]):,} params, "
        f"{values[2] / 1e9:.3f}G Mult-Adds")
    return None


def _hand_back(study: optuna.Study, trial, recorder, sample: dict[str, Any], reason: str) -> None:
    """Re-queue the architecture of a trial this worker will not finish, then fail that trial with the reason."""
    _requeue(study, study._storage.get_trial(trial._trial_id))
    for key, value in recorder.attributes(sample, None, fail_reason=reason).items():
        trial.set_user_attr(key, value)
    study.tell(trial, state=TrialState.FAIL)


def _requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A ``WAITING`` copy of ``trial``'s architecture, with the retry history Optuna's retry callback keeps."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    system_attrs = {**trial.system_attrs, "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                    "retry_history": history}
    user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in _ATTEMPT_ATTRS}
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=trial.params,
                                              distributions=trial.distributions, user_attrs=user_attrs,
                                              system_attrs=system_attrs))
