"""``engine: nni``: NNI's manager on loopback, trials in their own processes, the study filled from engine events."""

from __future__ import annotations

import contextlib
import json
import logging
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

from srnas_nni import nni_engine
from srnas_nni.config import ConfigError, parse_config
from srnas_nni.nni_engine import (
    DEFAULT_HOST, PRELOAD, NniManagerMixin, manager_bound_to, manager_environment, nni_experiment_config, web_ui_url,
)

from .conftest import NNI_NODE_BINARY, free_port, nni_node_problem

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


def _config(tmp_path, image_folder, **experiment):
    return parse_config({
        "space": "deconas-proxy", "strategy": {"name": "random", "seed": 0},
        "evaluator": {"data": str(image_folder), "val_data": str(image_folder),
                      "train": {"steps": 2, "batch_size": 2, "patch_size": 16}},
        "experiment": {"engine": "nni", "max_trials": 2, "trial_concurrency": 2, **experiment},
        "output_dir": str(tmp_path / "run"), "tracking": {"study_name": "nni-engine"},
    }, source="test.yaml")


# -- configuration --------------------------------------------------------------------------------


def test_experiment_section_becomes_a_training_service_config(tmp_path, image_folder):
    config = _config(tmp_path, image_folder, trial_concurrency=3)
    nas_config = nni_experiment_config(config, tmp_path)
    canonical = nas_config.canonical_copy()
    assert canonical.execution_engine.name == "ts" and canonical.model_format.name == "simplified"
    assert canonical.trial_concurrency == 3 and canonical.training_service.platform == "local"
    assert nni_engine.manager_host(nas_config) == DEFAULT_HOST


def test_remote_training_service_is_passed_through(tmp_path, image_folder, caplog):
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key")
    service = {"platform": "remote", "reuseMode": False, "nniManagerIp": "10.1.2.3",
               "machineList": [{"host": "10.1.2.4", "user": "sr", "sshKeyFile": str(key), "pythonPath": "/opt/sr/bin"}]}
    config = _config(tmp_path, image_folder, host="0.0.0.0", training_service=service)
    with caplog.at_level(logging.WARNING, logger="srnas_nni.nni_engine"):
        nas_config = nni_experiment_config(config, tmp_path)
    assert "without authentication" in caplog.text  # not loopback: said so
    service_json = nas_config.json()["trainingService"]
    assert service_json["platform"] == "remote" and service_json["nniManagerIp"] == "10.1.2.3"
    assert service_json["machineList"][0]["host"] == "10.1.2.4" and service_json["machineList"][0]["pythonPath"]
    assert nni_engine.manager_host(nas_config) == "0.0.0.0"
    assert nas_config.json()["trialCommand"] == "python3 -m nni.nas.execution.training_service trial"  # worker's
    # Remote workers connect back to the manager: a loopback-only manager cannot serve them.
    with pytest.raises(ConfigError, match="experiment.host.*connect back") as error:
        nni_experiment_config(_config(tmp_path, image_folder, training_service=service), tmp_path)
    assert "\n" not in str(error.value)


def test_remote_example_is_valid_and_reaches_nni_unchanged(tmp_path):
    example = Path(__file__).resolve().parents[1] / "examples" / "nni" / "search-remote.yaml"
    data = yaml.safe_load(example.read_text())
    key = tmp_path / "id_ed25519"  # the example's key lives on the user's machine
    key.write_text("not a real key")
    for machine in data["experiment"]["training_service"]["machineList"]:
        machine["sshKeyFile"] = str(key)
    data["output_dir"] = str(tmp_path / "run")
    config = parse_config(data, source=str(example), check_data=False)  # its data paths are on the workers
    service = nni_experiment_config(config, tmp_path).json()["trainingService"]
    assert service["platform"] == "remote" and [m["host"] for m in service["machineList"]] == [
        m["host"] for m in data["experiment"]["training_service"]["machineList"]]
    assert service["reuseMode"] is True and service["machineList"][0]["maxTrialNumberPerGpu"] == 1


@pytest.mark.parametrize("service, message", [
    ({"platform": "local", "bogus": 1}, "experiment.training_service"),
    ({"platform": "nowhere"}, "experiment.training_service"),
    ({"platform": "remote", "machineList": [{"host": "h", "user": "u", "sshKeyFile": "/no/such/key"}]},
     "experiment.training_service: .*SSH key file"),
])
def test_bad_training_service_is_one_line(tmp_path, image_folder, service, message):
    with pytest.raises(ConfigError, match=message) as error:
        nni_experiment_config(_config(tmp_path, image_folder, training_service=service), tmp_path)
    assert "\n" not in str(error.value) and str(error.value).startswith("test.yaml:")


def test_web_ui_url():
    assert web_ui_url("127.0.0.1", 8080) == "http://127.0.0.1:8080"
    assert web_ui_url("::1", 9000) == "http://[::1]:9000"
    assert web_ui_url("0.0.0.0", 8080) == f"http://{socket.gethostname()}:8080"


# -- the preload ----------------------------------------------------------------------------------


def test_manager_environment_chains_node_options(monkeypatch):
    monkeypatch.setenv("NODE_OPTIONS", "--max-old-space-size=512")
    variables = manager_environment("127.0.0.1", home="/tmp/somewhere")
    assert variables["NODE_OPTIONS"] == f'--require "{PRELOAD}" --max-old-space-size=512'
    assert variables["SRNAS_NNI_PREVIOUS_NODE_OPTIONS"] == "--max-old-space-size=512"
    assert variables["SRNAS_NNI_HOST"] == "127.0.0.1" and variables["SRNAS_NNI_HOME"] == "/tmp/somewhere"
    with manager_bound_to("127.0.0.1"):
        assert os.environ["NODE_OPTIONS"].startswith("--require ") and os.environ["SRNAS_NNI_HOST"] == "127.0.0.1"
    assert os.environ["NODE_OPTIONS"] == "--max-old-space-size=512" and "SRNAS_NNI_HOST" not in os.environ
    monkeypatch.delenv("NODE_OPTIONS")
    assert "SRNAS_NNI_PREVIOUS_NODE_OPTIONS" not in manager_environment()


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
    config = _config(tmp_path, image_folder, port=port).data
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
    configure = nni_engine.nni_experiment_config

    def configure_behind_a_barrier(*args, **kwargs):
        nas_config = configure(*args, **kwargs)
        nas_config._trial_command_params = {"python": f"{sys.executable} {barrier} {arrived} 2"}
        return nas_config

    monkeypatch.setattr(nni_engine, "nni_experiment_config", configure_behind_a_barrier)
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


def test_busy_port_is_one_line():
    from srnas_nni.errors import SRNASError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SRNASError, match=f"experiment.port: 127.0.0.1:{port} is not available"):
            nni_engine.check_port_free("127.0.0.1", port)
    nni_engine.check_port_free("127.0.0.1", port)  # free again


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
    return nni_engine.finished_nni_trials(database)


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
    from srnas_nni.search import run_search

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
    from srnas_nni import tracking
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
        missing = [t for t in nni_engine.finished_nni_trials(database)
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


def test_trial_end_goes_to_the_parameter_the_trial_ran():
    """NNI hands queued parameters to whichever trial asks first: trial A, created for parameter 0, may run
    parameter 1. Its end must end parameter 1 (the one its metric named), not 0, which B still runs."""
    from types import SimpleNamespace

    from nni.nas.execution import ExecutionEngine, ModelEventType
    from nni.utils import MetricType

    engine = nni_engine.KeepAliveEngine.__new__(nni_engine.KeepAliveEngine)  # no manager: commands by hand
    ExecutionEngine.__init__(engine)  # the event callbacks only
    engine._models, engine._submitted_cache, engine._outstanding, engine._parameter_of_trial = {}, {}, {}, {}
    engine._lock = threading.Lock()
    models = {p: SimpleNamespace(nni_parameter_id=p, nni_trial_id=None, sample={"x": p}, status=None,
                                 metrics=SimpleNamespace(final=None)) for p in (0, 1, 2)}
    for parameter_id, model in models.items():
        engine._outstanding[parameter_id] = model
        engine._models[parameter_id] = (lambda m: (lambda: m))(model)
    ended, finals = [], []
    engine.register_model_event_callback(ModelEventType.TrainingEnd, lambda e: ended.append(e.model.nni_parameter_id))
    engine.register_model_event_callback(ModelEventType.FinalMetric, lambda e: finals.append(e.model.nni_parameter_id))

    def report(trial, parameter_id):
        engine._report_metric_data_callback(SimpleNamespace(trial_job_id=trial, parameter_id=parameter_id,
                                                            type=MetricType.FINAL, value={"default": 1.0}))

    def end(trial, assigned, event="SUCCEEDED"):
        engine._trial_end_callback(SimpleNamespace(trial_job_id=trial, parameter_ids=[assigned], event=event))

    report("A", 1)
    end("A", 0)  # the manager believes A ran 0
    assert ended == [1] and models[1].nni_trial_id == "A" and set(engine.outstanding()) == {0, 2}
    end("C", 2, "FAILED")  # no metric: the manager's assignment, which no other trial claimed
    assert ended == [1, 2] and models[2].nni_trial_id == "C"
    report("B", 0)
    end("B", 1)
    assert ended == [1, 2, 0] and finals == [1, 0] and models[0].nni_trial_id == "B" and not engine.outstanding()
    end("B", 1)  # a repeated end changes nothing
    assert ended == [1, 2, 0]


def test_recovered_result_completes_the_optuna_strategys_running_trial(tmp_path):
    from srnas_nni.spaces import load_space_preset
    from srnas_nni.strategies.encoding import SpaceEncoding
    from srnas_nni.tracking import StudyRecorder

    space = load_space_preset("deconas-proxy")
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    recorder = StudyRecorder(study, space, strategy="nsga2", space_name="deconas-proxy", scale=2)
    encoding = SpaceEncoding(space)
    asked = study.ask({label: optuna.distributions.CategoricalDistribution(values)
                       for label, values in encoding.choices.items()})
    sample = encoding.decode(asked.params)
    metrics = {"psnr": 30.0, "params": 1000, "multadds": 2e6, "ssim": 0.9}
    number = recorder.recover(sample, metrics, nni_trial="AbCdE", nni_parameter_id=4, tell_running=True)
    (trial,) = study.trials
    assert number == asked.number and trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.values == [30.0, 1000.0, 2e6]
    assert trial.user_attrs["nni_trial"] == "AbCdE" and trial.user_attrs["nni_parameter_id"] == 4
    # Not an asked trial any more: a second recovery of another sample adds a trial instead.
    recorder.recover(sample, None, nni_trial="FgHiJ", nni_parameter_id=5, tell_running=True, fail_reason="FAILED")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
