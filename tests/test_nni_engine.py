"""``engine: nni``: NNI's manager on loopback, trials in their own processes, the study filled from engine events."""

from __future__ import annotations

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


def test_module_runs_nnictl_with_the_preload(monkeypatch, capsys):
    assert nni_engine._nnictl_main(["--print-env"]) == 0
    printed = capsys.readouterr().out
    assert "export NODE_OPTIONS=" in printed and "export SRNAS_NNI_HOST=127.0.0.1" in printed
    calls = []
    monkeypatch.setattr(nni_engine.subprocess, "call", lambda command, env: calls.append((command, env)) or 0)
    assert nni_engine._nnictl_main(["create", "--config", "c.yml", "--port", "8080"]) == 0
    command, env = calls[0]
    assert command[0].endswith("nnictl") and command[1:] == ["create", "--config", "c.yml", "--port", "8080"]
    assert env["SRNAS_NNI_HOST"] == "127.0.0.1" and str(PRELOAD) in env["NODE_OPTIONS"]
    if (Path(sys.executable).parent / "nnictl").exists():  # the nnictl beside this Python
        assert command[0] == str(Path(sys.executable).parent / "nnictl")


def test_busy_port_is_one_line():
    from srnas_nni.errors import SRNASError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SRNASError, match=f"experiment.port: 127.0.0.1:{port} is not available"):
            nni_engine.check_port_free("127.0.0.1", port)
    nni_engine.check_port_free("127.0.0.1", port)  # free again
