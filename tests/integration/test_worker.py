"""``srnas worker``: many processes on one shared study, a worker killed mid-trial, every planned trial once.

The multi-process tests run on SQLite (always) and on a real PostgreSQL server when
``SRNAS_TEST_POSTGRES_URL`` names one (``.ci/run`` starts one on 127.0.0.1 and sets it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from srnas_nni.cli import main
from srnas_nni.run.config import parse_config
from srnas_nni.run.recorder import pareto_front
from srnas_nni.run.worker import LOST_WORKER_REASON, _fail_lost_trials, _storage, run_worker, worker_identity

from tests.support.experiments import worker_experiment
from tests.support.processes import signal_when_ready

POSTGRES_URL = os.environ.get("SRNAS_TEST_POSTGRES_URL")


# -- samplers and locks ---------------------------------------------------------------------------


def test_worker_cli_evaluates_the_planned_trials_and_leaves_a_run_folder(tmp_path, image_folder, capsys):
    experiment = tmp_path / "workers.yaml"
    experiment.write_text(yaml.safe_dump(worker_experiment(tmp_path, image_folder, "evolution", max_trials=3)))
    assert main(["worker", str(experiment), "--worker-id", "solo", "--heartbeat", "1"]) == 0
    assert "3 evaluated, 0 failed" in capsys.readouterr().out
    assert main(["pareto", str(tmp_path / "run"), "--format", "json"]) == 0  # the folder works like a search's
    study = optuna.load_study(study_name="workers", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert {t.user_attrs["worker"] for t in trials} == {"solo"}
    assert all("default" in t.user_attrs and "architecture" in t.user_attrs for t in trials)


# -- many workers, one killed ---------------------------------------------------------------------


BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgresql", id="postgresql", marks=pytest.mark.skipif(
                not POSTGRES_URL, reason="SRNAS_TEST_POSTGRES_URL not set (.ci/run starts a PostgreSQL server)"))]


def _worker(experiment: Path, storage: str, name: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "srnas_nni", "worker", str(experiment), "--storage", storage,
               "--worker-id", name, "--heartbeat", "1", "--grace", "4", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_three_workers_one_killed_mid_trial_complete_every_planned_trial_once(tmp_path, image_folder, backend):
    planned = 6
    study_name = f"workers-{uuid.uuid4().hex[:8]}"
    storage = POSTGRES_URL if backend == "postgresql" else f"sqlite:///{tmp_path / 'shared.db'}"
    experiment = tmp_path / "workers.yaml"
    config = worker_experiment(tmp_path, image_folder, {"name": "optuna", "sampler": "nsga2",
                                                        "sampler_options": {"population_size": 4}}, max_trials=planned)
    config["tracking"] = {"study_name": study_name}
    experiment.write_text(yaml.safe_dump(config))
    # The victim trains long enough to be killed inside its first trial.
    victim = _worker(experiment, storage, "victim", "--set", "evaluator.train.steps=100000")
    survivors = []
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            running = _running_of(storage, study_name, "victim")
            if running:
                break
            assert victim.poll() is None, victim.communicate()[0]
            time.sleep(0.2)
        else:
            pytest.fail("the victim started no trial within 180 s")
        killed_trial = running[0].number
        survivors = [_worker(experiment, storage, name) for name in ("w1", "w2")]
        time.sleep(1.0)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        for survivor in survivors:
            output, _ = survivor.communicate(timeout=300)
            assert survivor.returncode == 0, output
    finally:
        for process in [victim, *survivors]:
            if process.poll() is None:
                process.kill()
                process.wait()

    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    assert killed_trial in retried  # found stale by its heartbeat and re-queued
    by_number = {t.number: t for t in trials}
    assert by_number[killed_trial].state == TrialState.FAIL
    assert by_number[killed_trial].user_attrs["fail_reason"] == "worker lost (heartbeat)"
    assert by_number[killed_trial].user_attrs["worker"] == "victim"
    counted = [t for t in trials if t.number not in retried]
    assert len(counted) == planned  # exactly the planned trials, whatever the number of workers
    assert all(t.state == TrialState.COMPLETE for t in counted), [(t.number, t.state) for t in counted]
    retry = [t for t in counted if t.system_attrs.get("failed_trial") == killed_trial]
    assert len(retry) == 1 and retry[0].params == by_number[killed_trial].params  # the lost architecture, once
    assert retry[0].user_attrs["worker"] in {"w1", "w2"} and "fail_reason" not in retry[0].user_attrs
    assert retry[0].user_attrs["attempt"] == 2 and retry[0].user_attrs["retry_of"] == killed_trial
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.slow
def test_a_stopped_worker_hands_its_trial_back_and_another_finishes_it(tmp_path, image_folder):
    experiment = tmp_path / "workers.yaml"
    experiment.write_text(yaml.safe_dump(worker_experiment(tmp_path, image_folder, "random", max_trials=2)))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    stopped = _worker(experiment, storage, "stopped", "--set", "evaluator.train.steps=100000")
    output = signal_when_ready(stopped, lambda: _running_of(storage, "workers", "stopped"), signal.SIGTERM,
                               timeout=60)
    assert stopped.returncode == 130 and "handed back" in output, output
    trials = optuna.load_study(study_name="workers", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert "stopped (WorkerStopped)" in trials[0].user_attrs["fail_reason"]
    assert trials[1].params == trials[0].params and "fail_reason" not in trials[1].user_attrs

    assert main(["worker", str(experiment), "--storage", storage, "--worker-id", "next", "--heartbeat", "1"]) == 0
    trials = optuna.load_study(study_name="workers", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].user_attrs["worker"] == "next"


def _running_of(storage: str, study_name: str, worker: str) -> list:
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return []
    return [t for t in study.get_trials(states=(TrialState.RUNNING,)) if t.user_attrs.get("worker") == worker]


# -- a lost worker's trial, identities ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")
def test_a_trial_whose_heartbeat_stopped_fails_as_lost_and_is_retried_at_most_max_retry_times(tmp_path):
    # In one process: a trial that stops beating is what a killed worker leaves behind.
    from srnas_nni.study.storage import open_study

    study = open_study(_storage(f"sqlite:///{tmp_path / 'shared.db'}", 1, 1, max_retry=1), "lost")
    distributions = {"layer0": CategoricalDistribution(["a", "b"])}

    def start_then_die() -> optuna.trial.Trial:
        trial = study.ask(distributions)
        study._storage.record_heartbeat(trial._trial_id)
        for key, value in worker_identity("dead", study._storage.get_trial(trial._trial_id)).items():
            trial.set_user_attr(key, value)
        time.sleep(3)  # silent for longer than the 1 s grace period (the storage's clock has whole seconds)
        _fail_lost_trials(study)
        return trial

    first = start_then_die()
    lost, retry = study.get_trials()
    assert lost.state == TrialState.FAIL and lost.user_attrs["fail_reason"] == LOST_WORKER_REASON
    assert (lost.user_attrs["worker"], lost.user_attrs["attempt"], lost.user_attrs["worker_pid"]) == \
        ("dead", 1, os.getpid())
    assert lost.user_attrs["nni_trial"] is None and lost.user_attrs["nni_parameter_id"] is None
    assert retry.state == TrialState.WAITING and retry.params == first.params
    assert retry.system_attrs["failed_trial"] == lost.number
    assert not {"fail_reason", "worker", "attempt"} & set(retry.user_attrs)  # a fresh attempt, not a failed one

    second = start_then_die()  # asks the retry, which dies too: max_retry=1 re-queues no more
    assert second.number == retry.number
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.FAIL]
    assert study.get_trials()[1].user_attrs["attempt"] == 2
    assert study.get_trials()[1].user_attrs["retry_of"] == lost.number


# -- srnas pareto / plot --storage ----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_pareto_and_plot_read_the_shared_study_of_workers(tmp_path, image_folder, capsys, monkeypatch, backend):
    study_name = f"workers-{uuid.uuid4().hex[:8]}"
    storage = POSTGRES_URL if backend == "postgresql" else f"sqlite:///{tmp_path / 'shared.db'}"
    raw = worker_experiment(tmp_path, image_folder, "random", max_trials=2)
    raw["tracking"] = {"study_name": study_name}
    result = run_worker(parse_config(raw), storage=storage, worker_id="solo", heartbeat_interval=1,
                        log=lambda line: None)
    assert result.evaluated == 2
    study = optuna.load_study(study_name=study_name, storage=storage)
    expected = pareto_front(study)
    assert expected and study.user_attrs["srnas"]["scale"] == 2
    for trial in study.get_trials():
        assert (trial.user_attrs["worker"], trial.user_attrs["worker_pid"], trial.user_attrs["attempt"]) == \
            ("solo", os.getpid(), 1)
        assert trial.user_attrs["worker_host"] and trial.user_attrs["nni_trial"] is None
    capsys.readouterr()

    assert main(["pareto", "--storage", storage, "--study", study_name, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(expected))
    assert main(["pareto", "--storage", storage, "--study", study_name, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("trial,psnr,") and len(rows) == 1 + len(expected)
    if backend == "sqlite":  # the only study of the storage: --study is not needed
        assert main(["pareto", "--storage", storage]) == 0
        assert f"| {expected[0]['trial']} |" in capsys.readouterr().out

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["plot", "--storage", storage, "--study", study_name]) == 0  # default: named after the study
    assert (here / f"{study_name}.png").stat().st_size > 0
    assert study_name in (here / f"{study_name}.html").read_text()
    assert main(["plot", "--storage", storage, "--study", study_name, "-o", str(tmp_path / "front")]) == 0
    assert (tmp_path / "front.png").is_file() and (tmp_path / "front.html").is_file()
