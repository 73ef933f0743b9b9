"""``engine: nni``: NNI's manager on loopback, trials in their own processes, the study filled from engine events."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import psutil
import pytest
import yaml

from srnas_nni.nni_adapter import experiment as nni_experiment

from srnas_nni.nni_adapter import trial_records as nni_trial_records
from srnas_nni.run.config import parse_config
from srnas_nni.nni_adapter.engine import NniManagerMixin
from srnas_nni.nni_adapter.manager import manager_environment

from tests.support.experiments import nni_engine_config
from tests.support.processes import NNI_NODE_BINARY, free_port, nni_node_problem

NODE = NNI_NODE_BINARY
_free_port = free_port

needs_node = pytest.mark.skipif(nni_node_problem() is not None, reason=str(nni_node_problem()))


def _non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (where a wildcard bind would be reachable)."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


_SERVER_JS = """
const http = require('http');
const server = http.createServer((req, res) => res.end('ok'));
server.listen(0, process.argv[2] || undefined, () => {
  console.log(JSON.stringify({address: server.address(), options: process.env.NODE_OPTIONS ?? null,
                              leaked: Object.keys(process.env).filter((k) => k.startsWith('SRNAS_NNI_')),
                              home: require('os').homedir()}));
  server.close();
});
"""


@needs_node
@pytest.mark.parametrize("listen_host", ["", "0.0.0.0", "::"])
def test_preload_binds_loopback_and_restores_the_environment(tmp_path, listen_host):
    script = tmp_path / "server.js"
    script.write_text(_SERVER_JS)
    env = {**os.environ, "NODE_OPTIONS": "--max-old-space-size=256"}
    env.update(manager_environment("127.0.0.1", env, home=tmp_path))
    out = subprocess.run([str(NODE), str(script), listen_host], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["address"]["address"] == "127.0.0.1"  # no host, or a wildcard: loopback all the same
    assert report["options"] == "--max-old-space-size=256" and report["leaked"] == []  # children see the user's env
    assert report["home"] == str(tmp_path.resolve())  # NNI's index of experiments follows the run


# -- a search with NNI's manager ------------------------------------------------------------------

#: Run in place of ``python`` in each trial's command: the trial registers in a folder, waits until
#: ``parties`` trials have, then runs NNI's trial module. A trial that ends past this barrier proves that
#: the other one was running with it, at any machine speed. The wait is bounded only to fail a broken
#: concurrency (the trial exits with an error) instead of hanging the suite.
_BARRIER = """
import os, runpy, sys, time
folder, parties = sys.argv[1], int(sys.argv[2])
open(os.path.join(folder, str(os.getpid())), "w").close()
give_up = time.monotonic() + 300
while len(os.listdir(folder)) < parties:
    if time.monotonic() > give_up:
        sys.exit(f"barrier: {len(os.listdir(folder))} of {parties} trials ever started")
    time.sleep(0.05)
module = sys.argv[sys.argv.index("-m") + 1]
sys.argv = [module, *sys.argv[sys.argv.index("-m") + 2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


@needs_node
def test_search_with_nni_engine_fills_the_study_on_loopback(tmp_path, image_folder, capsys, monkeypatch):
    from srnas_nni.cli import main

    port = _free_port()
    config = nni_engine_config(tmp_path, image_folder, port=port).data
    path = tmp_path / "nni-engine.yaml"
    path.write_text(yaml.safe_dump(config))
    seen: dict = {"pids": set(), "listening": [], "foreign": None}
    outside = _non_loopback_address()
    original = NniManagerMixin._start_nni_manager

    stop = threading.Event()

    def watch_children(pid: int) -> None:  # every process the manager starts (trials), while it runs
        while not stop.is_set():
            try:
                seen["pids"].update(c.pid for c in psutil.Process(pid).children(recursive=True))
            except psutil.Error:
                return
            stop.wait(0.2)

    def start_and_inspect(self, port, *args, **kwargs):
        try:
            original(self, port, *args, **kwargs)
        finally:
            if self._proc is not None:
                seen["pids"].add(self._proc.pid)
                threading.Thread(target=watch_children, args=(self._proc.pid,), daemon=True).start()
        manager = psutil.Process(self._proc.pid)
        seen["listening"] = [c.laddr for c in manager.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        if outside is not None:
            with socket.socket() as sock:
                sock.settimeout(5)
                seen["foreign"] = sock.connect_ex((outside, port))

    monkeypatch.setattr(NniManagerMixin, "_start_nni_manager", start_and_inspect)
    barrier, arrived = tmp_path / "barrier.py", tmp_path / "arrived"
    barrier.write_text(_BARRIER)
    arrived.mkdir()
    configure = nni_experiment.nni_experiment_config

    def configure_behind_a_barrier(*args, **kwargs):
        nas_config = configure(*args, **kwargs)
        nas_config._trial_command_params = {"python": f"{sys.executable} {barrier} {arrived} 2"}
        return nas_config

    monkeypatch.setattr(nni_experiment, "nni_experiment_config", configure_behind_a_barrier)
    try:
        assert main(["search", str(path), "--no-progress"]) == 0
        printed = capsys.readouterr().out
        assert f"NNI web UI: http://127.0.0.1:{port}" in printed
        assert seen["listening"] and {a.ip for a in seen["listening"]} == {"127.0.0.1"}
        assert port in {a.port for a in seen["listening"]}
        if outside is not None:
            assert seen["foreign"] != 0, f"the manager answered on {outside}:{port}"
        run_dir = tmp_path / "run"
        info = json.loads((run_dir / "run.json").read_text())
        study = optuna.load_study(study_name=info["study_name"], storage=info["storage"])
        complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert len(study.trials) == 2 and len(complete) == 2, [t.user_attrs.get("fail_reason") for t in study.trials]
        for trial in complete:
            assert trial.values[0] > 0 and trial.values[1] > 0 and trial.values[2] > 0
            assert json.loads(trial.user_attrs["architecture"]) and trial.params
        experiments = run_dir / "nni-experiments"
        assert (experiments / ".experiment").is_file()  # NNI's index (Python's and the manager's) under the run
        assert not any("ERROR" in log.read_text() for log in experiments.glob("*/log/nnimanager.log"))
        # trial_concurrency 2 on the local training service: the two trials ran at the same time (each
        # completed past the barrier, which it could leave only once the other had started).
        with sqlite3.connect(experiments / info["experiment_id"] / "db" / "nni.sqlite") as connection:
            events = connection.execute("SELECT trialJobId, event, timestamp FROM TrialJobEvent").fetchall()
        started = {job for job, event, _ in events if event == "RUNNING"}
        succeeded = {job for job, event, _ in events if event == "SUCCEEDED"}
        assert len(started) == 2 and succeeded == started, events
        assert len(list(arrived.iterdir())) == 2
        assert len(seen["pids"]) >= 2  # the manager and what it started
    finally:
        stop.set()
        survivors = []
        for pid in seen["pids"]:
            try:
                process = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
            survivors.append(process)
        gone, alive = psutil.wait_procs(survivors, timeout=30)
        for process in alive:  # ours, by PID
            process.kill()
        psutil.wait_procs(alive, timeout=10)
    assert not alive, f"still running after the search: {[p.pid for p in alive]}"


# -- exactly once: every trial NNI ran is a study trial with its NNI identity ----------------------------


def _strategy_config(tmp_path, image_folder, strategy, space="deconas-proxy", max_trials=3):
    return {
        "space": space, "strategy": strategy,
        "evaluator": {"data": str(image_folder), "val_data": str(image_folder),
                      "train": {"steps": 2, "batch_size": 2, "patch_size": 16}},
        "experiment": {"engine": "nni", "max_trials": max_trials, "trial_concurrency": 2, "port": _free_port()},
        "output_dir": str(tmp_path / "run"), "tracking": {"study_name": "exactly-once"},
    }


def _study_and_database(run_dir: Path):
    info = json.loads((run_dir / "run.json").read_text())
    study = optuna.load_study(study_name=info["study_name"], storage=info["storage"])
    return info, study, run_dir / "nni-experiments" / info["experiment_id"] / "db" / "nni.sqlite"


def _assert_study_holds_every_nni_trial(run_dir: Path) -> list[dict]:
    """Every trial NNI's database shows SUCCEEDED is a COMPLETE study trial with the architecture NNI sent it
    and the same NNI trial id and parameter id; none is left RUNNING; what NNI stored as each trial's
    parameters is the clean {label: value} dict of that trial's architecture."""
    _, study, database = _study_and_database(run_dir)
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    with sqlite3.connect(database) as connection:
        events = connection.execute("SELECT trialJobId, event, data FROM TrialJobEvent").fetchall()
        reports = connection.execute("SELECT trialJobId, parameterId FROM MetricData WHERE type = 'FINAL'").fetchall()
    sent = {}  # parameter id -> the parameters NNI stored for it (as the web UI shows them)
    for _, _, data in events:
        if data:
            form = json.loads(data)
            sent[int(form["parameter_id"])] = form["parameters"]
    ran = {trial: int(parameter) for trial, parameter in reports}  # the trial that reported for a parameter
    succeeded = {trial for trial, event, _ in events if event == "SUCCEEDED"}
    assert succeeded and succeeded <= set(ran), (events, reports)
    by_nni_trial = {t.user_attrs.get("nni_trial"): t for t in study.trials}
    for trial_id in succeeded:
        trial = by_nni_trial.get(trial_id)
        assert trial is not None, f"NNI trial {trial_id} is not in the study"
        assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("fail_reason")
        assert trial.user_attrs["nni_parameter_id"] == ran[trial_id]
        architecture = json.loads(trial.user_attrs["architecture"])
        assert sent[ran[trial_id]] == architecture and architecture  # the clean label dict, as NNI recorded it
    assert all(isinstance(p, dict) and "__symbol__" not in json.dumps(p) for p in sent.values())
    return nni_trial_records.finished_nni_trials(database)


def _stop_leftovers(tmp_path: Path) -> list[int]:
    """Kill (by PID) any process still running for this test's run folder; their PIDs."""
    leftovers = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if str(tmp_path) in " ".join(process.info["cmdline"] or []) and process.pid != os.getpid():
            leftovers.append(process)
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(leftovers, timeout=10)
    return [p.pid for p in leftovers]


@needs_node
@pytest.mark.parametrize("strategy, space", [
    ({"name": "random", "seed": 0}, "deconas-proxy"),
    ({"preset": "nsga2", "sampler_options": {"population_size": 2}}, "deconas-proxy"),
    ({"name": "evolution", "population_size": 2, "sample_size": 2}, "deconas-proxy"),
    ({"preset": "hierarchical_rl"}, "hnas-proxy"),
], ids=["random", "nsga2", "evolution", "hierarchical_rl"])
def test_every_trial_nni_ran_is_recorded_once_with_its_identity(tmp_path, image_folder, strategy, space):
    from srnas_nni.run.search import run_search

    config = parse_config(_strategy_config(tmp_path, image_folder, strategy, space), source="test.yaml")
    try:
        result = run_search(config, progress=False)
        finished = _assert_study_holds_every_nni_trial(tmp_path / "run")
        assert len(finished) == 3 and result.complete + result.failed == 3
        assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "done"
    finally:
        leftovers = _stop_leftovers(tmp_path)
    assert not leftovers, f"still running after the search: {leftovers}"


@needs_node
def test_unrecorded_trial_fails_the_run_and_resume_records_it_from_nni(tmp_path, image_folder, capsys, monkeypatch):
    from srnas_nni.run import recorder as tracking
    from srnas_nni.cli import main

    path = tmp_path / "drop.yaml"
    path.write_text(yaml.safe_dump(_strategy_config(tmp_path, image_folder, {"name": "random", "seed": 0},
                                                    max_trials=2)))
    record_result = tracking.StudyRecorder._on_final_metric
    dropped = []

    def drop_the_first_result(self, event):  # a record lost between NNI and the study
        if not dropped:
            dropped.append(event.model)
            self._recorded.add(id(event.model))
            return
        record_result(self, event)

    monkeypatch.setattr(tracking.StudyRecorder, "_on_final_metric", drop_the_first_result)
    run_dir = tmp_path / "run"
    try:
        assert main(["search", str(path), "--no-progress"]) != 0
        error = capsys.readouterr().err
        _, study, database = _study_and_database(run_dir)
        missing = [t for t in nni_trial_records.finished_nni_trials(database)
                   if t["parameter_id"] == dropped[0].nni_parameter_id]
        assert len(missing) == 1
        line = next(line for line in error.splitlines() if line.startswith("srnas: error:"))
        assert "1 trial(s) that NNI finished are not in the study" in line and missing[0]["trial"] in line
        assert json.loads((run_dir / "run.json").read_text())["status"] != "done"
        assert len(study.trials) == 1

        monkeypatch.setattr(tracking.StudyRecorder, "_on_final_metric", record_result)
        assert main(["search", "--resume", str(run_dir), "--no-progress"]) == 0
        finished = _assert_study_holds_every_nni_trial(run_dir)
        assert len(finished) == 2  # nothing ran again
        assert len(study.trials) == 2
        assert json.loads((run_dir / "run.json").read_text())["status"] == "done"
    finally:
        leftovers = _stop_leftovers(tmp_path)
    assert not leftovers, f"still running after the search: {leftovers}"
