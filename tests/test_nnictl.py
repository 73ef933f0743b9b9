"""``nnictl`` experiments driven by the Optuna tuner (``examples/nni/``), with NNI's manager on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import psutil
import pytest
import yaml

from srnas_nni.nni_engine import manager_environment
from srnas_nni.nni_trial import search_space, trial_config
from .conftest import NNI_NODE_BINARY, free_port, nni_node_problem

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "nni"
NNICTL = Path(sys.executable).with_name("nnictl")
NODE = NNI_NODE_BINARY
_free_port = free_port


def _why_not() -> str | None:
    if not NNICTL.exists():
        return f"nnictl not found beside {sys.executable}"
    return nni_node_problem()


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


def _nnictl_env(tmp_path: Path) -> dict[str, str]:
    """nnictl's index (~/nni-experiments), its registered algorithms and the manager all kept in tmp_path."""
    env = {**os.environ, "HOME": str(tmp_path / "home"), "NNI_CONFIG_DIR": str(tmp_path / "nni-config")}
    env.update(manager_environment("127.0.0.1", env))
    return env


def _nnictl(env, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([str(NNICTL), *args], env=env, capture_output=True, text=True, timeout=timeout)


def _get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/nni{path}", timeout=10) as response:
        return json.loads(response.read())


def test_example_search_space_matches_the_trial_file():
    written = json.loads((EXAMPLES / "search_space.json").read_text())
    assert written == search_space(trial_config(EXAMPLES / "trial.yaml"))
    assert all(entry["_type"] == "choice" for entry in written.values())


def test_nnictl_experiment_with_the_optuna_tuner(tmp_path, image_folder):
    for name in ("trial.yaml", "search_space.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    config = yaml.safe_load((EXAMPLES / "config.yml").read_text())
    assert config["tuner"]["className"] == "srnas_nni.nni_tuner.OptunaTuner"
    budget = [f"evaluator.data={image_folder}", f"evaluator.val_data={image_folder}", "evaluator.train.steps=2",
              "evaluator.train.patch_size=16", "evaluator.train.batch_size=2"]
    config["trialCommand"] = " ".join([sys.executable, "-m", "srnas_nni.nni_trial", "trial.yaml",
                                       *(f"--set {item}" for item in budget)])
    config.update(trialConcurrency=2, maxTrialNumber=2, experimentWorkingDirectory=str(tmp_path / "experiments"))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    config["tuner"]["classArgs"].update(storage=storage, study_name="nnictl-test")
    (tmp_path / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = _nnictl_env(tmp_path)
    port = _free_port()
    index = tmp_path / "home" / "nni-experiments" / ".experiment"
    pids: set[int] = set()
    experiment_id = None
    try:
        created = _nnictl(env, "create", "--config", str(tmp_path / "config.yml"), "--port", str(port))
        assert created.returncode == 0, created.stdout + created.stderr
        experiments = json.loads(index.read_text())
        experiment_id, entry = next(iter(experiments.items()))
        assert entry["port"] == port
        pids.add(entry["pid"])
        manager = psutil.Process(entry["pid"])
        listening = [c.laddr for c in manager.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening
        deadline, status = time.time() + 600, None
        while time.time() < deadline:
            try:
                pids.update(c.pid for c in manager.children(recursive=True))
            except psutil.Error:
                pass
            status = _get(port, "/check-status")
            if status["status"] in ("DONE", "ERROR", "STOPPED"):
                break
            time.sleep(1)
        log = (tmp_path / "experiments" / experiment_id / "log" / "nnimanager.log")
        assert status and status["status"] == "DONE", (status, log.read_text()[-3000:] if log.exists() else "")
        jobs = _get(port, "/trial-jobs")
        assert len(jobs) == 2 and all(job["status"] == "SUCCEEDED" for job in jobs), jobs
        for job in jobs:
            (final,) = job["finalMetricData"]
            metric = json.loads(json.loads(final["data"]))
            assert {"default", "psnr", "params", "multadds", "architecture"} <= set(metric)
            assert metric["default"] == metric["psnr"] and metric["params"] > 0 and metric["multadds"] > 0
        study = optuna.load_study(study_name="nnictl-test", storage=storage)
        complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert len(study.trials) == 2 and len(complete) == 2
        assert study.metric_names == ["psnr", "params", "multadds"]
        for trial in complete:
            assert len(trial.values) == 3 and trial.user_attrs["nni_trial"] in {job["trialJobId"] for job in jobs}
            assert set(trial.params) == set(json.loads((tmp_path / "search_space.json").read_text()))
            assert json.loads(trial.user_attrs["architecture"])
    finally:
        if experiment_id is not None:
            _nnictl(env, "stop", experiment_id)
        survivors = []
        for pid in pids:
            try:
                survivors.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(survivors, timeout=30)
        for process in alive:  # ours, by PID
            process.kill()
        psutil.wait_procs(alive, timeout=10)
    assert not alive, f"still running after nnictl stop: {[p.pid for p in alive]}"
    assert not (Path.home() / "nni-experiments" / experiment_id).exists()


def test_registered_tuner_names_resolve(tmp_path):
    env = _nnictl_env(tmp_path)
    for meta in ("srnas_nsga2.yml", "srnas_tpe.yml"):
        registered = _nnictl(env, "algo", "register", "--meta", str(EXAMPLES / meta))
        assert registered.returncode == 0, registered.stdout + registered.stderr
    listed = _nnictl(env, "algo", "list")
    assert "srnas_nsga2" in listed.stdout and "srnas_tpe" in listed.stdout
    config = yaml.safe_load((EXAMPLES / "config-registered.yml").read_text())
    assert config["tuner"]["name"] == "srnas_nsga2"
    # What NNI's dispatcher does with {name, classArgs}: the registered class, built with those arguments.
    probe = ("import json, sys; from nni.tools.package_utils.tuner_factory import create_builtin_class_instance; "
             "t = create_builtin_class_instance(sys.argv[1], json.loads(sys.argv[2]), 'tuners'); "
             "print(type(t).__name__, t.sampler_name, type(t.study.sampler).__name__)")
    out = subprocess.run([sys.executable, "-c", probe, "srnas_nsga2", json.dumps(config["tuner"]["classArgs"])],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["OptunaNSGA2Tuner", "nsga2", "NSGAIISampler"]
    installation = Path(sys.prefix, "nni", "registered_algorithms.yml")  # NNI's default registry: untouched
    assert not installation.exists() or "srnas_nsga2" not in installation.read_text()


@pytest.mark.parametrize("name", ["config.yml", "config-registered.yml", "remote.yml"])
def test_example_configs_pass_nnis_validation(tmp_path, name):
    from nni.experiment.config import ExperimentConfig

    for other in ("trial.yaml", "search_space.json"):
        shutil.copy(EXAMPLES / other, tmp_path / other)
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key")
    text = (EXAMPLES / name).read_text().replace("~/.ssh/id_ed25519", str(key))  # NNI checks the key file exists
    (tmp_path / name).write_text(text)
    canonical = ExperimentConfig.load(str(tmp_path / name)).json()
    assert canonical["searchSpaceFile"] == str(tmp_path / "search_space.json")
    tuner = canonical["tuner"]
    assert tuner.get("className", "").startswith("srnas_nni.nni_tuner.") or tuner.get("name") == "srnas_nsga2"
    assert "srnas_nni.nni_trial trial.yaml" in canonical["trialCommand"]
    if name == "remote.yml":
        service = canonical["trainingService"]
        assert service["platform"] == "remote" and len(service["machineList"]) == 2
        assert service["nniManagerIp"] == "192.168.1.10"


# -- the tuner, without NNI -----------------------------------------------------------------------


def test_tuner_tells_optuna_the_three_objectives(tmp_path):
    from srnas_nni.errors import SRNASError
    from srnas_nni.nni_tuner import OptunaNSGA2Tuner, OptunaTuner

    space = json.loads((EXAMPLES / "search_space.json").read_text())
    tuner = OptunaTuner(sampler="tpe", seed=0, storage=f"sqlite:///{tmp_path / 'tuner.db'}", study_name="t")
    with pytest.raises(SRNASError, match="'x'.*choice"):
        tuner.update_search_space({"x": {"_type": "uniform", "_value": [0, 1]}})
    tuner.update_search_space(space)
    params = [tuner.generate_parameters(i) for i in range(4)]
    for p in params:
        assert set(p) == set(space) and all(p[k] in space[k]["_value"] for k in space)
    metric = {"default": 30.0, "psnr": 30.0, "params": 1000, "multadds": 2e9, "ssim": 0.9,
              "architecture": {"cell/refine0": "conv_3x3"}, "model_file": "/m.pt"}
    tuner.receive_trial_result(0, params[0], metric, trial_job_id="AbCdE")
    tuner.trial_end(0, True)
    tuner.receive_trial_result(1, params[1], json.dumps({**metric, "psnr": 31.0}))  # a JSON string of the dict
    tuner.receive_trial_result(2, params[2], 29.5)  # a bare number: not the three objectives
    tuner.trial_end(3, False)  # failed without a result
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'tuner.db'}")
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.FAIL] * 2
    first = study.trials[0]
    assert first.values == [30.0, 1000.0, 2e9] and first.user_attrs["nni_trial"] == "AbCdE"
    assert json.loads(first.user_attrs["architecture"]) == {"cell/refine0": "conv_3x3"} and first.user_attrs["ssim"]
    assert study.trials[1].values[0] == 31.0
    assert "incomplete objectives" in study.trials[2].user_attrs["fail_reason"]
    # nnictl resume / experiment import: complete results the study lacks are added, once.
    tuner.import_data([{"parameter": params[0], "value": metric}, {"parameter": params[2], "value": metric}])
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3
    assert OptunaNSGA2Tuner(seed=1).sampler_name == "nsga2"


def test_tuner_module_agrees_with_the_strategy():
    from srnas_nni import nni_tuner
    from srnas_nni.strategies import optuna as strategy_module
    from srnas_nni.strategies.pareto import OBJECTIVES

    assert nni_tuner.METRIC_NAMES == [key for key, _ in OBJECTIVES] == strategy_module.METRIC_NAMES
    assert nni_tuner.DIRECTIONS == strategy_module.DIRECTIONS and nni_tuner.SAMPLERS == strategy_module.SAMPLERS
    assert strategy_module.OptunaTuner is nni_tuner.OptunaTuner
    # NNI's dispatcher imports the tuner's module within a 10 s limit: no torch, no NNI NAS stack there.
    probe = "import sys, srnas_nni.nni_tuner; print(sorted(m for m in ('torch', 'nni.nas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
