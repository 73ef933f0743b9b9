"""``srnas worker`` in this process: samplers seeded per worker, the SQLite admission lock, a stop landing
inside image decoding, and one line for a bad or unreachable storage or study (``worker``, ``pareto``,
``plot``). Worker processes sharing one study: ``tests/integration/test_worker.py``."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from srnas_nni.cli import main
from srnas_nni.run.config import ConfigError, parse_config
from srnas_nni.study.evolution_sampler import RegularizedEvolutionSampler
from srnas_nni.run.worker import AdmissionLock, run_worker, worker_sampler

from tests.support.experiments import worker_experiment


# -- samplers and locks ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy, sampler", [("nsga2", optuna.samplers.NSGAIISampler),
                                               ("random", optuna.samplers.RandomSampler),
                                               ("evolution", RegularizedEvolutionSampler)])
def test_shareable_strategies_become_samplers_seeded_per_worker(tmp_path, image_folder, strategy, sampler):
    config = parse_config(worker_experiment(tmp_path, image_folder, strategy))
    first, second, again = (worker_sampler(config, name) for name in ("w1", "w2", "w1"))
    assert isinstance(first, sampler)
    draws = [[s.sample_independent(None, None, "x", CategoricalDistribution(list(range(1000)))) for _ in range(5)]
             for s in (first, second, again)]
    assert draws[0] != draws[1] and draws[0] == draws[2]


def test_single_process_strategies_are_refused_with_the_key(tmp_path, image_folder):
    config = parse_config(worker_experiment(tmp_path, image_folder, "hierarchical_rl"))
    with pytest.raises(ConfigError, match=r"strategy: 'hierarchical_rl' keeps its search state in one process"):
        worker_sampler(config, "w1")


def test_the_sqlite_admission_lock_excludes_concurrent_holders(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    inside, overlaps = [], []

    def hold() -> None:
        lock = AdmissionLock(url, "s")  # one lock object per worker, as in separate processes
        for _ in range(20):
            with lock.held():
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(1)
                time.sleep(0.002)
                inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not overlaps


@pytest.mark.parametrize("storage, message", [
    ("not a url", "Could not parse"),
    ("bogus://x", "bogus"),
    ("sqlite:////no/such/folder/study.db", "No such file or directory"),
])
def test_a_bad_storage_is_one_line_naming_the_option(tmp_path, image_folder, capsys, storage, message):
    experiment = tmp_path / "workers.yaml"
    experiment.write_text(yaml.safe_dump(worker_experiment(tmp_path, image_folder, "random")))
    assert main(["worker", str(experiment), "--storage", storage]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"srnas: error: --storage {storage}") and message in error and "\n" not in error
    assert not Path("/no/such/folder").exists()


def test_an_unreachable_database_server_is_one_line(tmp_path, image_folder, capsys):
    from tests.support.processes import free_port

    experiment = tmp_path / "workers.yaml"
    experiment.write_text(yaml.safe_dump(worker_experiment(tmp_path, image_folder, "random")))
    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nothing"
    assert main(["worker", str(experiment), "--storage", url]) == 2
    error = capsys.readouterr().err.strip()
    assert "--storage postgresql://nobody:***@127.0.0.1" in error and "secret" not in error and "\n" not in error


def test_a_stop_landing_inside_image_decoding_hands_the_trial_back(tmp_path, image_folder, monkeypatch):
    # The decoder turns any Exception into "corrupt image"; a stop arriving there must still stop the worker.
    from srnas_nni.run import worker as worker_module
    from srnas_nni.evaluation import images

    decode, stops = images._decode, []

    def decode_then_stop(path):
        if not stops and signal.getsignal(signal.SIGTERM) is worker_module._on_stop:  # never kill pytest itself
            stops.append(path)
            os.kill(os.getpid(), signal.SIGTERM)
        return decode(path)

    monkeypatch.setattr(images, "_decode", decode_then_stop)
    config = parse_config(worker_experiment(tmp_path, image_folder, "random", max_trials=2))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    with pytest.raises(KeyboardInterrupt):
        run_worker(config, storage=storage, worker_id="stopped", heartbeat_interval=1, log=lambda line: None)
    assert stops, "no image was decoded inside the trial"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the worker's handler is gone again
    trials = optuna.load_study(study_name=config.study_name, storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert "stopped (WorkerStopped)" in trials[0].user_attrs["fail_reason"]
    assert trials[1].params == trials[0].params


@pytest.fixture(scope="module")
def storages(tmp_path_factory) -> dict[str, str]:
    """Names used by the bad-input cases -> a run folder, storages with two, one foreign and no study."""
    root = tmp_path_factory.mktemp("storages")
    run_dir = root / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"storage": "sqlite://", "study_name": "x"}))
    urls = {"RUN": str(run_dir), "URL2": f"sqlite:///{root / 'two.db'}", "URL1": f"sqlite:///{root / 'one.db'}",
            "URL0": f"sqlite:///{root / 'empty.db'}", "MISSING": str(root / "missing.db")}
    for name in ("alpha", "beta"):
        optuna.create_study(study_name=name, storage=urls["URL2"], directions=["maximize"] * 3)
    optuna.create_study(study_name="single", storage=urls["URL1"])
    optuna.storages.RDBStorage(urls["URL0"])  # the tables, no study
    return urls


@pytest.mark.parametrize("command, arguments, message", [
    ("pareto", [], "pareto needs a run directory or --storage URL (one of them)"),
    ("plot", ["RUN", "--storage", "URL2"], "plot needs a run directory or --storage URL (one of them)"),
    ("pareto", ["RUN", "--study", "a"], "--study goes with --storage"),
    ("plot", ["--storage", "not a url"], "--storage not a url: Could not parse"),
    ("pareto", ["--storage", "sqlite:///MISSING"], "no such database file"),
    ("plot", ["--storage", "URL2"], "holds 2 studies, choose one with --study: alpha, beta"),
    ("pareto", ["--storage", "URL2", "--study", "gamma"], "--study gamma: no such study in sqlite:///"),
    ("plot", ["--storage", "URL0"], "holds no study"),
    ("pareto", ["--storage", "URL1"], "--study single: not an srnas-nni study (1 objective(s)"),
])
def test_bad_storage_or_study_is_one_line(storages, capsys, command, arguments, message):
    arguments = [a.replace("MISSING", storages["MISSING"]) if "MISSING" in a else storages.get(a, a)
                 for a in arguments]
    assert main([command, *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("srnas: error: ") and message in error and "\n" not in error, error
    assert not Path(storages["MISSING"]).exists()  # reading never creates a database


def test_an_unreachable_storage_of_pareto_is_one_line_without_the_password(capsys):
    from tests.support.processes import free_port

    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nothing"
    assert main(["pareto", "--storage", url]) == 2
    error = capsys.readouterr().err.strip()
    assert "--storage postgresql://nobody:***@127.0.0.1" in error and "secret" not in error and "\n" not in error
