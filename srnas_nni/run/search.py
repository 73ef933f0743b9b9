"""Run an experiment file as an NNI experiment, with every evaluated architecture in an Optuna study.

:func:`run_search` is what ``srnas search FILE`` does:

1. the run directory (``output_dir``) receives ``experiment.yaml`` (the validated file, defaults
   filled in: what ``--resume`` re-reads) and ``run.json`` (NNI experiment id, status, counts);
2. the space, strategy and evaluator are built: :class:`~srnas_nni.evaluation.evaluator.SREvaluator`
   for multi-trial strategies (each candidate trained within ``evaluator.train``, kept as a model
   file under ``models/``), the Lightning supernet evaluator for one-shot strategies
   (``evaluator.supernet``; checkpoints in ``supernet/``);
3. a :class:`NasExperiment` runs with the sequential engine (or NNI's manager and web UI with
   ``engine: nni``); after each finished model the search is checkpointed (strategy, engine, and the
   model's result) and only then is the result added to the study by a
   :class:`~srnas_nni.run.recorder.StudyRecorder` and ``pareto.json`` rewritten, so an interrupted search
   loses at most the trial in flight and never records one twice. The strategy's run ends only once
   every model it submitted has ended and been recorded (``engine: nni`` trains them in other
   processes); trials NNI ran that the study lacks fail the run (one line naming them), and
   ``--resume`` records them from NNI's database;
4. a one-shot strategy's derived architecture is then trained within ``evaluator.train`` (starting
   from the weights the strategy hands over, if any) and recorded with ``source = derived``; samples
   a strategy evaluated on shared weights are recorded with ``source = shared_weights``;
5. a study note summarises the run for optuna-dashboard.

``run_search(config, resume=True)`` continues an interrupted run: NNI restores the strategy state
and the engine's trial count, the study keeps every recorded trial, nothing completed runs again.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from .config import ConfigError, ExperimentConfig, parse_config, parse_duration
from ..errors import SRNASError
from ..nni_adapter.loader import experiment_directory
from ..nni_adapter.engine import NniManagerMixin
from ..runtime import atomic_write_json, atomic_write_bytes, set_random_states
from ..study.front import pareto_front
from ..study.storage import open_study
from .recorder import StudyRecorder, write_pareto_file
from ..spaces.base import SRModelSpace

from ..nni_adapter.experiment import (  # noqa: E402
    NasExperiment, NasExperimentConfig, run_experiment, save_experiment_state,
)
from ..strategies import is_one_shot  # noqa: E402

__all__ = ["SearchResult", "run_search", "load_run_config", "is_one_shot", "RUN_FILE", "CONFIG_FILE"]

_logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
CONFIG_FILE = "experiment.yaml"


@dataclass
class SearchResult:
    """What a finished :func:`run_search` left: counts over the whole study (a resumed run's earlier
    trials included), ``fail_reasons`` (each distinct ``fail_reason`` of a failed trial and how many
    trials failed with it, most frequent first) and ``log_file`` (NNI's experiment log, with the
    full traceback of every failed trial; None if NNI wrote none)."""

    run_dir: Path
    storage: str
    study_name: str
    front: list[dict[str, Any]]
    complete: int
    failed: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    fail_reasons: dict[str, int] = field(default_factory=dict)
    log_file: Path | None = None


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """The validated configuration a run directory was started with (for ``--resume``)."""
    import yaml

    from .config import apply_overrides

    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a search run directory (no {CONFIG_FILE})")
    data = apply_overrides(yaml.safe_load(path.read_text()), overrides or [], source=str(path))
    data["output_dir"] = str(run_dir)
    return parse_config(data, source=str(path))


class _SearchExperiment(NniManagerMixin, NasExperiment):
    """A ``NasExperiment`` whose engine reports to a :class:`StudyRecorder` from its first model on.

    The one model a one-shot strategy submits is its supernet, not an architecture: nothing is recorded
    from it (the derived architecture is, after the search).
    """

    recorder: StudyRecorder
    #: Parameter id -> model whose trial never ended when :meth:`wait_for_submitted` gave up (engine: nni);
    #: replaced, never mutated, so the shared empty default is safe.
    unfinished: dict = {}
    #: Set once a checkpoint failure was raised (the search stopped on it; later attempts fail alike).
    checkpoint_failed = False
    #: The checkpoint failure that stopped the strategy (raised by the runner after NNI's run returns).
    checkpoint_error: SRNASError | None = None
    _checkpoint_errors_deferred = False
    _deferred_checkpoint_error: Exception | None = None
    #: engine: nni runs srnas-nni's spaces as trials frozen with the space's own ``freeze``.
    freezing_spaces = (SRModelSpace,)

    def legacy_search_space(self, space):
        # NNI's web UI: every label as a choice (NNI's own conversion skips InputChoice labels).
        from ..spaces.encoding import SpaceEncoding

        return SpaceEncoding(space).legacy_search_space() if isinstance(space, SRModelSpace) else None

    def execution_engine_factory(self, config):
        engine = super().execution_engine_factory(config)
        if not is_one_shot(self.strategy):
            self.recorder.attach(engine, self.strategy)
            budget_available = engine.budget_available

            def commit_then_check_budget() -> bool:
                # Strategies ask this before each new model, after the last one's events were handled.
                try:
                    self.commit()
                except SRNASError as exc:
                    # No budget left: the strategy stops submitting; the runner raises the error once NNI's
                    # run returns (raised here, NNI would log its own "Strategy failed" line as well).
                    self.checkpoint_error = exc
                    return False
                return budget_available()

            engine.budget_available = commit_then_check_budget
        return engine

    def _start_engine_and_strategy(self) -> None:
        # NNI's Strategy.run calls _cleanup right after _run, and strategies unregister their engine
        # callbacks there: a model still training then ends unheard (the Optuna strategy never tells its
        # trial, the Pareto archive misses it). Nothing in NNI runs between the two, so the wait for
        # every submitted model goes at the end of this strategy's _run.
        strategy = self.strategy
        explore = strategy._run

        def explore_then_wait() -> None:
            explore()
            self.wait_for_submitted()

        strategy._run = explore_then_wait
        try:
            super()._start_engine_and_strategy()
        finally:
            del strategy._run  # back to the class's method

    def wait_for_submitted(self) -> None:
        """Wait until every model the strategy submitted has ended and been recorded (``engine: nni``; the
        sequential engine trains each model within its submission). Models the engine gave up on (the
        manager stopped or lost them) are left in :attr:`unfinished` for the runner to report."""
        wait = getattr(self._engine, "wait_submitted", None)
        if wait is None or is_one_shot(self.strategy):
            return

        def record_finished() -> None:
            if self.checkpoint_error is not None:
                self.recorder.flush()  # the checkpoint cannot be written: still never drop a result
                return
            try:
                self.commit()
            except SRNASError as exc:
                self.checkpoint_error = exc

        self.unfinished = wait(on_poll=record_finished)
        record_finished()

    def commit(self) -> None:
        """Checkpoint the search with its finished-but-unrecorded trials, then record them in the study.

        A crash before the checkpoint loses those trials (the resumed search runs them again, from the
        state before them); after it, the resumed search records them from the checkpoint (once: each
        record carries a token). Either way no trial is lost or repeated.
        """
        if self._engine is not None and self.recorder.has_pending():
            try:
                self.save_checkpoint()
            finally:
                # Recorded even when the checkpoint failed: a result is never dropped. (Resumed from the
                # checkpoint before, the search may then evaluate those trials again.)
                self.recorder.flush()

    def save_checkpoint(self) -> None:
        """NNI's checkpoint (``config.json``, then the state of engine, strategy and pending records), with
        each file replaced atomically; :class:`SRNASError` naming the folder when it cannot be written.

        NNI's own ``save_checkpoint`` logs any failure and carries on, so a search could run for hours
        with nothing to resume from; here the failure stops the search (the CLI prints one line).
        """
        from ..nni_adapter.loader import nni

        directory = self._checkpoint_directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(directory / "config.json", nni.dump(self.config.json(), indent=2).encode())
            if self._engine is not None:
                # the adapter's serializer writes atomically: a kill mid-write keeps the previous checkpoint.
                save_experiment_state(self.state_dict(), directory / "state.ckpt")
        except Exception as exc:  # noqa: BLE001 - whatever stops the checkpoint is reported, in one line
            if self._checkpoint_errors_deferred:
                self._deferred_checkpoint_error = exc
                return
            self.checkpoint_failed = True
            raise _checkpoint_error(directory, exc) from exc
        _logger.debug("checkpoint saved to %s", directory)

    def stop(self) -> None:
        """NNI's ``stop`` (final checkpoint, then the manager, engine and logging are shut down); a final
        checkpoint that could not be written is raised as :class:`SRNASError` once everything is stopped,
        unless a checkpoint failure was raised already (that one stopped the search and was reported)."""
        self._checkpoint_errors_deferred, self._deferred_checkpoint_error = True, None
        try:
            super().stop()
        finally:
            self._checkpoint_errors_deferred = False
        failure, self._deferred_checkpoint_error = self._deferred_checkpoint_error, None
        if failure is not None and not self.checkpoint_failed:
            self.checkpoint_failed = True
            raise _checkpoint_error(self._checkpoint_directory, failure) from failure

    def state_dict(self) -> dict:
        return {**super().state_dict(), "srnas_pending": self.recorder.pending_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for entry in state_dict.get("srnas_pending", []):
            self.recorder.replay(entry)


def _checkpoint_error(directory: Path, exc: Exception) -> SRNASError:
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return SRNASError(f"cannot write the search checkpoint in {directory}: {type(exc).__name__}"
                      + (f": {detail}" if detail else "")
                      + "; the trials finished so far are in the study (fix the cause, then resume)")


def _trials_counted(study: optuna.Study) -> int:
    """The study's trials that used the search's trial budget (``max_trials``): finished evaluations of
    candidates. A trial the interrupted process left running was failed on resume with an ``interrupted``
    reason and is not counted: the budget it used is given back (the engine's count comes from the
    checkpoint before it), so counting it would show the progress past ``N/N``."""
    counted = 0
    for trial in study.get_trials(deepcopy=False):
        if not trial.state.is_finished() or trial.user_attrs.get("source", "trial") != "trial":
            continue
        if trial.state == optuna.trial.TrialState.FAIL \
                and str(trial.user_attrs.get("fail_reason", "")).startswith("interrupted"):
            continue
        counted += 1
    return counted


class _Progress:
    """Trials done/total, best PSNR, Pareto size, elapsed and estimated time, on stderr.

    ``mode``: ``"bar"`` (tqdm, for a terminal), ``"lines"`` (one line per trial, for logs and pipes)
    or ``"off"``.
    """

    def __init__(self, total: int | None, mode: str, initial: int = 0):
        from tqdm import tqdm

        self.mode, self.total, self.done = mode, total, initial
        self.started = time.perf_counter()
        self.bar = tqdm(total=total, initial=initial, unit="trial", file=sys.stderr, disable=mode != "bar",
                        dynamic_ncols=True, desc="search")
        self._initial = initial

    def update(self, study: optuna.Study, front_size: int) -> None:
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE
                    and t.user_attrs.get("source") != "shared_weights"]
        best = max((t.values[0] for t in complete), default=None)
        summary = f"best PSNR {best:.3f} dB, Pareto {front_size}" if best is not None else "no complete trial yet"
        self.done += 1
        self.bar.update(1)
        self.bar.set_postfix_str(summary)
        if self.mode == "lines" and trials:
            last = trials[-1]
            elapsed = time.perf_counter() - self.started
            what = (f"PSNR {last.values[0]:.3f} dB, {int(last.values[1]):,} params, {last.values[2] / 1e9:.2f}G"
                    if last.values else f"failed ({last.user_attrs.get('fail_reason', 'no reason')})")
            left = ""
            if self.total and self.done > self._initial:
                per_trial = elapsed / (self.done - self._initial)
                left = f", ~{_clock(per_trial * max(0, self.total - self.done))} left"
            total = f"/{self.total}" if self.total else ""
            print(f"[{self.done}{total}] trial {last.number}: {what}; {summary}; {_clock(elapsed)} elapsed{left}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _nni_config(config: ExperimentConfig, run_dir: Path, one_shot: bool) -> NasExperimentConfig:
    settings = config.experiment
    if settings["engine"] == "nni":
        from ..nni_adapter.experiment import nni_experiment_config

        nas_config = nni_experiment_config(settings, error=config.error)
    else:
        nas_config = NasExperimentConfig("sequential", "raw")
        nas_config.execution_engine.continue_on_failure = True
    nas_config.experiment_working_directory = str(experiment_directory(run_dir))
    nas_config.experiment_name = config.study_name
    if not one_shot and settings["max_trials"] is not None:
        nas_config.max_trial_number = int(settings["max_trials"])
    duration = parse_duration(settings["max_duration"])
    if duration is not None:
        nas_config.max_experiment_duration = f"{int(duration)}s"  # NNI's manager (engine: nni) enforces this
        if settings["engine"] != "nni":
            # The sequential engine ignores the experiment's duration; its own budget is the time spent in
            # trials (submissions stop once it is used up: the trial in flight finishes).
            nas_config.execution_engine.max_duration = float(duration)
    return nas_config


def _evaluator(config: ExperimentConfig, run_dir: Path, one_shot: bool):
    """The Lightning supernet evaluator (one-shot: ``experiment.devices`` x ``num_nodes`` data-parallel
    ranks) or the multi-trial :class:`SREvaluator` (``devices`` > 1 is refused for it by validation)."""
    evaluator = config.evaluator
    if one_shot:
        from ..evaluation.lightning import distributed_problem, sr_lightning_evaluator

        budget = config.supernet_budget()
        devices, num_nodes = config.experiment["devices"], config.experiment["num_nodes"]
        problem = distributed_problem(devices, num_nodes, evaluator["device"])
        if problem is not None:  # what this machine cannot do (fork, enough GPUs), named by its key
            raise config.error("experiment.devices", problem)
        return sr_lightning_evaluator(
            scale=config.scale, train_data=evaluator["data"], val_data=evaluator["val_data"], steps=budget["steps"],
            val_batches=budget["val_batches"], patch_size=budget["patch_size"], batch_size=budget["batch_size"],
            learning_rate=budget["learning_rate"], loss=budget["loss"], seed=config.seed,
            skip_bad=evaluator["skip_bad"], cache_dir=evaluator["cache_dir"], device=evaluator["device"],
            output_dir=run_dir / "supernet", checkpoint_dir=run_dir / "supernet",
            checkpoint_every=budget["checkpoint_every"], devices=devices, num_nodes=num_nodes)
    from ..evaluation.evaluator import SREvaluator

    return SREvaluator(**_trial_arguments(config, run_dir))


def _trial_arguments(config: ExperimentConfig, run_dir: Path) -> dict[str, Any]:
    evaluator = config.evaluator
    train = {"seed": config.seed, "device": evaluator["device"], **evaluator["train"]}
    return dict(scale=config.scale, train_data=evaluator["data"], val_data=evaluator["val_data"], train=train,
                objective=evaluator["objective"], objective_options=evaluator["objective_options"],
                hr_size=evaluator["hr_size"], skip_bad=evaluator["skip_bad"], cache_dir=evaluator["cache_dir"],
                models_dir=str(run_dir / "models"), space_spec=config.space_spec)


def _nni_database(nas_config: NasExperimentConfig, experiment_id: str) -> Path:
    """NNI's database of an ``engine: nni`` experiment (``nni-experiments/<id>/db/nni.sqlite``)."""
    return Path(nas_config.experiment_working_directory) / experiment_id / "db" / "nni.sqlite"


def _unrecorded_nni_trials(study: optuna.Study, database: Path) -> list[dict[str, Any]]:
    """The trials NNI's database shows ended that no finished study trial holds (by NNI trial or parameter id)."""
    from ..nni_adapter.trial_records import finished_nni_trials

    held_trials, held_parameters = set(), set()
    for trial in study.get_trials(deepcopy=False):
        if trial.state.is_finished():
            held_trials.add(trial.user_attrs.get("nni_trial"))
            held_parameters.add(trial.user_attrs.get("nni_parameter_id"))
    return [t for t in finished_nni_trials(database)
            if t["trial"] not in held_trials and t["parameter_id"] not in held_parameters]


def _check_every_trial_recorded(study: optuna.Study, database: Path, unfinished: dict, run_dir: Path) -> None:
    """SRNASError (one line, naming the NNI trials) when NNI ran trials the study does not hold."""
    missing = _unrecorded_nni_trials(study, database)
    finished_parameters = {t["parameter_id"] for t in missing}
    lost = sorted(p for p in unfinished if p not in finished_parameters)
    if not missing and not lost:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} trial(s) that NNI finished are not in the study "
                     f"(NNI trials {', '.join(t['trial'] for t in missing)})")
    if lost:
        parts.append(f"{len(lost)} submitted trial(s) never ended (parameter ids {', '.join(map(str, lost))})")
    raise SRNASError("; ".join(parts) + f"; 'srnas search --resume {run_dir}' records the finished ones "
                                        "from NNI's database without running them again")


def _record_from_nni_database(recorder: StudyRecorder, database: Path, *, tell_running: bool) -> None:
    """Record the trials NNI's database shows ended and the study lacks (see :meth:`StudyRecorder.recover`)."""
    missing = _unrecorded_nni_trials(recorder.study, database)
    on_record, recorder.on_record = recorder.on_record, None  # before the run's progress starts; counted in it
    try:
        for trial in missing:
            succeeded = trial["status"] == "SUCCEEDED" and isinstance(trial["metric"], dict)
            recorder.recover(trial["sample"], trial["metric"] if succeeded else None, nni_trial=trial["trial"],
                             nni_parameter_id=trial["parameter_id"], tell_running=tell_running,
                             fail_reason=None if succeeded else f"NNI trial {trial['trial']} {trial['status']}")
    finally:
        recorder.on_record = on_record
    if missing:
        print(f"recorded {len(missing)} trial(s) that NNI finished before the interruption "
              f"(NNI trials {', '.join(t['trial'] for t in missing)})", file=sys.stderr, flush=True)


def _read_run_file(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SRNASError(f"{path}: unreadable ({exc}); the study in this folder is intact") from None


def run_search(config: ExperimentConfig, *, resume: bool = False, progress: bool | None = None) -> SearchResult:
    """Run (or with ``resume`` continue) the search ``config`` describes; see the module docstring."""
    started = time.perf_counter()
    run_dir = config.output_dir
    previous = _read_run_file(run_dir)
    if previous.get("experiment_id") and not resume:
        raise SRNASError(f"{run_dir} already holds a search (experiment {previous['experiment_id']}): continue it "
                         f"with 'srnas search --resume {run_dir}', or choose another output_dir")
    if resume and not previous.get("experiment_id"):
        raise SRNASError(f"{run_dir}: nothing to resume (no {RUN_FILE} with an experiment id)")
    # Every image by its header before anything is written or trained: an unusable file is one error
    # now, not the same failure in every trial (skipped with one warning under evaluator.skip_bad).
    config.check_images()
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / CONFIG_FILE, config.to_yaml().encode())

    # The instances validation built from the seed are what runs; the generators continue from there.
    space, strategy = config.space, config.strategy
    set_random_states(config.random_states)
    one_shot = is_one_shot(strategy)
    storage, study_name = config.storage_url(), config.study_name
    if hasattr(strategy, "trial_annotator"):  # an Optuna-driven strategy asks and tells in the run's study
        strategy.storage, strategy.study_name = storage, study_name
    study = open_study(storage, study_name)
    nas_config = _nni_config(config, run_dir, one_shot)
    experiment = _SearchExperiment(space, _evaluator(config, run_dir, one_shot), strategy, config=nas_config,
                                   id=previous.get("experiment_id") if resume else None)
    run_info = {"experiment_id": experiment.id, "status": "running", "strategy": config.strategy_name,
                "space": config.space_spec, "study_name": study_name, "storage": storage,
                "one_shot": one_shot, "source": config.source}
    atomic_write_json(run_dir / RUN_FILE, run_info)
    nni_database = _nni_database(nas_config, experiment.id) \
        if config.experiment["engine"] == "nni" and not one_shot else None

    def on_record(number: int, metrics: dict[str, Any]) -> None:
        front = write_pareto_file(run_dir, study, space_spec=config.space_spec, scale=config.scale,
                                  strategy=config.strategy_name)
        bar.update(study, len(json.loads(front.read_text())["front"]))

    experiment.recorder = StudyRecorder(study, space, strategy=config.strategy_name,
                                        space_name=config.space_name, scale=config.scale,
                                        on_record=on_record)
    if resume and nni_database is not None:
        # Trials NNI finished that the interrupted run never recorded (before the strategy's checkpoint is
        # loaded: an Optuna strategy would fail its still-running trials as interrupted).
        _record_from_nni_database(experiment.recorder, nni_database, tell_running=hasattr(strategy, "trial_annotator"))
    already = _trials_counted(study) if resume else 0
    total = None if one_shot else config.experiment["max_trials"]
    mode = ("bar" if sys.stderr.isatty() else "lines") if progress is None or progress else "off"
    bar = _Progress(total, mode, initial=already)
    experiment.recorder.deferred = True  # recorded after each checkpoint (_SearchExperiment.commit)
    status = "failed"
    try:
        port = int(config.experiment["port"])  # engine: nni (NNI's manager and web UI); ignored otherwise
        experiment.on_manager_started = lambda url: print(f"NNI web UI: {url}", flush=True)
        interrupted = run_experiment(experiment, port=port, resume=resume)
        experiment.commit()  # the last trial's record
        if experiment.checkpoint_error is not None:  # a checkpoint failed: the strategy stopped there
            raise experiment.checkpoint_error
        if interrupted:  # NNI caught Ctrl-C itself and stopped the experiment: not a finished search
            raise KeyboardInterrupt
        if nni_database is not None:
            _check_every_trial_recorded(study, nni_database, experiment.unfinished, run_dir)
        if one_shot:
            _record_one_shot_results(config, strategy, experiment.recorder, run_dir)
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if status != "done":
            try:
                experiment.commit()  # what finished before the interruption is kept
            except SRNASError as exc:  # the checkpoint: the results are recorded, the interruption goes on
                print(f"srnas: error: {exc}", file=sys.stderr, flush=True)
            except Exception:  # noqa: BLE001 - the interruption is what the caller must see
                _logger.exception("could not record the finished trials at the interruption")
        bar.close()
        experiment.recorder.detach()
        try:
            experiment.stop()
        except SRNASError as exc:  # the final checkpoint could not be written
            if status == "done":
                status = "failed"
                raise
            # Another error is already on its way to the caller; this one must not go unseen either.
            print(f"srnas: error: {exc}", file=sys.stderr, flush=True)
        finally:
            run_info["status"] = status
            atomic_write_json(run_dir / RUN_FILE, run_info)
    write_pareto_file(run_dir, study, space_spec=config.space_spec, scale=config.scale, strategy=config.strategy_name)
    _save_study_note(study, config, run_dir)
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    reasons = Counter(str(t.user_attrs.get("fail_reason") or "no reason recorded") for t in failed)
    log_file = Path(nas_config.experiment_working_directory) / experiment.id / "log" / "experiment.log"
    return SearchResult(run_dir=run_dir, storage=storage, study_name=study_name, front=pareto_front(study),
                        complete=sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials),
                        failed=len(failed), seconds=time.perf_counter() - started,
                        fail_reasons=dict(reasons.most_common()), log_file=log_file if log_file.is_file() else None)


def _record_one_shot_results(config: ExperimentConfig, strategy, recorder: StudyRecorder, run_dir: Path) -> None:
    """Train and record the derived architecture (once), and the shared-weight estimates if any."""
    from ..evaluation.evaluator import evaluate_sr_model

    study = recorder.study
    done = {t.user_attrs.get("source") for t in study.get_trials(deepcopy=False)}
    estimates = getattr(strategy, "shared_weight_evaluations", None)
    if estimates is not None and "shared_weights" not in done:
        for estimate in estimates(tuple(config.evaluator["hr_size"])):
            recorder.record(dict(estimate["architecture"]), estimate, source="shared_weights")
    if "derived" in done:
        return
    derived = next(iter(strategy.list_models()), None)
    if derived is None:
        raise SRNASError(f"strategy {config.strategy_name!r} derived no architecture")
    sample = dict(derived.sample or {})
    probabilities = _probabilities(strategy)
    if probabilities:
        atomic_write_json(run_dir / "probabilities.json", probabilities)
    try:
        metrics = evaluate_sr_model(derived.executable_model(), architecture=sample, report=False,
                                    **_trial_arguments(config, run_dir))
    except SRNASError as exc:
        recorder.record(sample, None, source="derived", fail_reason=str(exc))
        return
    recorder.record(sample, metrics, source="derived")


def _probabilities(strategy) -> dict[str, Any]:
    """Per-label probabilities a one-shot strategy ended with (plain numbers), if it has them."""
    exporter = getattr(strategy, "export_probabilities", None)
    if exporter is not None:
        return exporter()
    try:
        probs = strategy.oneshot_module.export_probs()
    except (AttributeError, NotImplementedError, RuntimeError):
        return {}
    return json.loads(json.dumps(probs, default=lambda v: float(v) if hasattr(v, "__float__") else str(v)))


def _save_study_note(study: optuna.Study, config: ExperimentConfig, run_dir: Path) -> None:
    try:
        from optuna_dashboard import save_note
    except ImportError:  # the dashboard is optional at run time
        return
    trials = study.get_trials(deepcopy=False)
    front = pareto_front(study)
    lines = [
        f"# {config.study_name}",
        "",
        f"* space: `{config.space_name}` {json.dumps(config.space_spec['space_kwargs'])}",
        f"* strategy: `{config.strategy_name}` {json.dumps(config.strategy_options)}",
        f"* scale: x{config.scale}; train data `{config.evaluator['data']}`, "
        f"validation `{config.evaluator['val_data']}`",
        f"* candidate budget: {json.dumps(config.evaluator['train'])}",
        f"* trials: {sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)} complete, "
        f"{sum(t.state == optuna.trial.TrialState.FAIL for t in trials)} failed; run directory `{run_dir}`",
        "",
        "| trial | PSNR (Y) | params | Mult-Adds (1280x720) | source |",
        "|---:|---:|---:|---:|---|",
    ]
    lines += [f"| {e['trial']} | {e['psnr']:.3f} | {e['params']:,} | {e['multadds'] / 1e9:.2f}G | {e['source']} |"
              for e in front]
    save_note(study, "\n".join(lines))
