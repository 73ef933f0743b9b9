"""``nnictl`` experiments driven by the Optuna tuner (``examples/nni/``), with NNI's manager on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import optuna
import psutil
import pytest
import yaml

from srnas_nni.nni_adapter.manager import manager_environment
from srnas_nni.run.nnictl_trial import search_space, trial_config
from tests.support.processes import NNI_NODE_BINARY, free_port, nni_node_problem

ROOT = Path(__file__).resolve().parents[2]
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


def _unactivated_env(tmp_path: Path) -> dict[str, str]:
    """A shell that never activated the venv: its bin folder off PATH, no VIRTUAL_ENV, a HOME of its own."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and os.path.realpath(p) != os.path.realpath(venv_bin))
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "NODE_OPTIONS")}
    env.update(PATH=path, HOME=str(tmp_path / "home"), NNI_CONFIG_DIR=str(tmp_path / "nni-config"))
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def _experiment_folder(root: Path, trial_settings: list[str], trials: int) -> Path:
    """The shipped config.yml (its `python -m srnas_nni.nni_trial` command untouched) in root/exp."""
    folder = root / "exp"
    folder.mkdir(parents=True)
    for name in ("trial.yaml", "search_space.json"):
        shutil.copy(EXAMPLES / name, folder / name)
    config = yaml.safe_load((EXAMPLES / "config.yml").read_text())
    assert config["tuner"]["className"] == "srnas_nni.nni_tuner.OptunaTuner"
    assert config["trialCommand"].startswith("python -m srnas_nni.nni_trial trial.yaml")
    assert "experimentWorkingDirectory" not in config
    config["trialCommand"] += "".join(f" --set {item}" for item in trial_settings)
    config.update(trialConcurrency=2, maxTrialNumber=trials)
    config["tuner"]["classArgs"].update(storage=f"sqlite:///{root / 'study.db'}", study_name="nnictl-test")
    (folder / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _create_all(tmp_path: Path, folders: list[Path]) -> tuple[list[subprocess.CompletedProcess], set[int]]:
    """``python -m srnas_nni.nni_engine create`` in each folder at once, from an unactivated shell.

    Returns the finished commands and the PIDs of the managers they ran; meanwhile checks that each
    manager listens on 127.0.0.1 only.
    """
    env = _unactivated_env(tmp_path)
    processes = [subprocess.Popen([sys.executable, "-m", "srnas_nni.nni_engine", "create",
                                   "--config", "config.yml", "--port", str(_free_port())],
                                  cwd=folder, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for folder in folders]
    managers: set[int] = set()
    try:
        while any(process.poll() is None for process in processes):
            for folder in folders:
                index = folder / "nni-experiments" / ".experiment"
                entries = json.loads(index.read_text() or "{}") if index.exists() else {}
                for entry in entries.values():
                    if not entry.get("pid") or entry["pid"] in managers:
                        continue
                    try:
                        manager = psutil.Process(entry["pid"])
                        listening = [c.laddr for c in manager.net_connections(kind="inet")
                                     if c.status == psutil.CONN_LISTEN]
                    except psutil.Error:
                        listening = None
                    if listening:
                        assert {a.ip for a in listening} == {"127.0.0.1"}, listening
                        managers.add(entry["pid"])
            time.sleep(0.5)
        outputs = [process.communicate(timeout=600) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:  # a hang: ours, by PID (its manager is stopped at its exit)
                process.terminate()
                process.wait(timeout=60)
    return [subprocess.CompletedProcess(process.args, process.returncode, out, err)
            for process, (out, err) in zip(processes, outputs)], managers


def _assert_stopped(pids: set[int]) -> None:
    survivors = []
    for pid in pids:
        try:
            survivors.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(survivors, timeout=30)
    for process in alive:  # ours, by PID
        process.kill()
    assert not alive, f"NNI's manager still running after create returned: {[p.pid for p in alive]}"


def test_nnictl_create_from_an_unactivated_shell(tmp_path, image_folder):
    """Two experiments at once: one whose trials train, one whose every trial fails (missing data)."""
    budget = [f"evaluator.data={image_folder}", f"evaluator.val_data={image_folder}", "evaluator.train.steps=2",
              "evaluator.train.patch_size=16", "evaluator.train.batch_size=2"]
    missing = tmp_path / "no-such-images"
    ok_root, bad_root = tmp_path / "ok", tmp_path / "bad"
    folder = _experiment_folder(ok_root, budget, trials=2)
    bad_folder = _experiment_folder(bad_root, [f"evaluator.data={missing}", f"evaluator.val_data={missing}"],
                                    trials=1)
    (created, failed), managers = _create_all(tmp_path, [folder, bad_folder])
    _assert_stopped(managers)

    assert created.returncode == 0, created.stdout + created.stderr
    assert "2 of 2 trials succeeded" in created.stdout
    assert "pkg_resources" not in created.stderr and "Setuptools" not in created.stderr
    experiments = folder / "nni-experiments"
    (experiment_id,) = json.loads((experiments / ".experiment").read_text())
    trial_folders = {p.parent.name: p.parent for p in (experiments / experiment_id).rglob("trials/*/trial.stderr")}
    assert len(trial_folders) == 2
    assert not (tmp_path / "home" / "nni-experiments").exists()
    study = optuna.load_study(study_name="nnictl-test", storage=f"sqlite:///{ok_root / 'study.db'}")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(study.trials) == 2 and len(complete) == 2
    assert study.metric_names == ["psnr", "params", "multadds"]
    assert {t.user_attrs["nni_trial"] for t in complete} == set(trial_folders)
    assert sorted(t.user_attrs["nni_parameter_id"] for t in complete) == [0, 1]
    for trial in complete:
        assert len(trial.values) == 3 and trial.values[1] > 0 and trial.values[2] > 0
        assert set(trial.params) == set(json.loads((folder / "search_space.json").read_text()))
        assert json.loads(trial.user_attrs["architecture"])
        # the trained model: under the trial's own folder of the experiment
        model = Path(trial.user_attrs["model_file"])
        assert model.is_file() and trial_folders[trial.user_attrs["nni_trial"]] in model.parents

    assert failed.returncode == 1, failed.stdout + failed.stderr
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("srnas: error:")]
    (experiment_id,) = json.loads((bad_folder / "nni-experiments" / ".experiment").read_text())
    trials = (bad_folder / "nni-experiments" / experiment_id).rglob("trials/*/trial.stderr")
    (trial_id,) = [p.parent.name for p in trials]
    assert f"all 1 trials failed; first trial {trial_id}: srnas-nni trial: error:" in error
    assert str(missing) in error
    study = optuna.load_study(study_name="nnictl-test", storage=f"sqlite:///{bad_root / 'study.db'}")
    (trial,) = [t for t in study.trials if "nni_trial" in t.user_attrs]
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["fail_reason"] == "trial failed"
    assert trial.user_attrs["nni_trial"] == trial_id and trial.user_attrs["nni_parameter_id"] == 0
    # NNI asked for trialConcurrency (2) parameters; the one no trial ran is failed, not left RUNNING
    assert all(t.state == optuna.trial.TrialState.FAIL for t in study.trials), study.trials


def test_local_trial_commands_run_this_python(tmp_path):
    from srnas_nni.errors import SRNASError
    from srnas_nni.nni_adapter.nnictl import nnictl_experiment_config, trial_command_for_this_python

    python = shlex.quote(sys.executable)
    assert trial_command_for_this_python("python -m x a") == f"{python} -m x a"
    assert trial_command_for_this_python("  python3.11 run.py") == f"  {python} run.py"
    for unchanged in ("pythonic -m x", "/opt/py/bin/python -m x", "bash run.sh python"):
        assert trial_command_for_this_python(unchanged) == unchanged
    for name in ("trial.yaml", "search_space.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key")
    for name in ("config.yml", "remote.yml"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text().replace("~/.ssh/id_ed25519", str(key)))
    local = nnictl_experiment_config(tmp_path / "config.yml", tmp_path / "out")
    assert local.trial_command.startswith(f"{python} -m srnas_nni.nni_trial trial.yaml")
    assert Path(local.experiment_working_directory) == (tmp_path / "out" / "nni-experiments").resolve()
    remote = nnictl_experiment_config(tmp_path / "remote.yml", tmp_path / "out")
    assert remote.trial_command.startswith("python3 -m srnas_nni.nni_trial")  # the workers' own python3
    own = yaml.safe_load((tmp_path / "config.yml").read_text())
    own["experimentWorkingDirectory"] = str(tmp_path / "mine")
    (tmp_path / "own.yml").write_text(yaml.safe_dump(own))
    assert Path(nnictl_experiment_config(tmp_path / "own.yml", tmp_path).experiment_working_directory) == \
        tmp_path / "mine"
    with pytest.raises(SRNASError, match="no such NNI experiment config"):
        nnictl_experiment_config(tmp_path / "missing.yml", tmp_path)


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
    from srnas_nni.nni_adapter.tuner import OptunaNSGA2Tuner, OptunaTuner

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
    tuner.trial_end(0, True)  # NNI may hand over a trial's end before its result (two dispatcher queues)
    tuner.receive_trial_result(0, params[0], metric, trial_job_id="AbCdE")
    tuner.receive_trial_result(1, params[1], json.dumps({**metric, "psnr": 31.0}))  # a JSON string of the dict
    tuner.receive_trial_result(2, params[2], 29.5)  # a bare number: not the three objectives
    tuner.trial_end(3, False, trial_job_id="FgHiJ")  # failed without a result (job id: our dispatcher hook)
    tuner.generate_parameters(4)  # asked, never run: the experiment ends
    tuner.close()
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'tuner.db'}")
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.FAIL] * 3
    assert [t.user_attrs["nni_parameter_id"] for t in study.trials] == [0, 1, 2, 3, 4]
    assert study.trials[3].user_attrs["nni_trial"] == "FgHiJ"
    assert "stopped before" in study.trials[4].user_attrs["fail_reason"]
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
    from srnas_nni.nni_adapter import tuner as adapter_tuner
    from srnas_nni.strategies import optuna as strategy_module
    from srnas_nni.strategies import pareto
    from srnas_nni.study import objectives, storage

    # One definition of the objectives, the directions and the samplers, shared by the tuner, the strategy and
    # the Pareto archive (they were three copies kept equal by this test).
    assert objectives.METRIC_NAMES == [key for key, _ in objectives.OBJECTIVES]
    assert objectives.METRIC_NAMES is strategy_module.METRIC_NAMES
    assert adapter_tuner.objective_values is objectives.objective_values is strategy_module.objective_values
    assert strategy_module.DIRECTIONS is objectives.DIRECTIONS and strategy_module.SAMPLERS is storage.SAMPLERS
    assert pareto.dominates is objectives.dominates
    assert strategy_module.OptunaTuner is nni_tuner.OptunaTuner is adapter_tuner.OptunaTuner
    # NNI's dispatcher imports the tuner's module within a 10 s limit: no torch, no NNI NAS stack there.
    probe = ("import sys, srnas_nni.nni_adapter.tuner; "
             "print(sorted(m for m in ('torch', 'nni.nas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_module_runs_nnictl_with_the_preload_and_a_local_index(monkeypatch, capsys, tmp_path):
    from srnas_nni.nni_adapter import manager as nni_manager
    from srnas_nni.nni_adapter import nnictl as nni_nnictl
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nnictl's import, as nni_engine does it, warns about nothing
        nnictl_cli = nni_nnictl.nnictl_module()
    from nni.tools.nnictl import config_utils

    assert nni_nnictl._nnictl_main(["--print-env"]) == 0
    printed = capsys.readouterr().out
    assert "export NODE_OPTIONS=" in printed and "export SRNAS_NNI_HOST=127.0.0.1" in printed
    # any other command: nnictl in this process, with the manager's variables set and the index local
    defaults = config_utils.Experiments.__init__.__defaults__
    monkeypatch.setattr(config_utils.Experiments.__init__, "__defaults__", defaults)  # restored afterwards
    seen = []
    monkeypatch.setattr(nnictl_cli, "parse_args", lambda: seen.append(
        (list(sys.argv), dict(os.environ), config_utils.Experiments().experiment_file)))
    assert nni_nnictl._nnictl_main(["--output-dir", str(tmp_path), "experiment", "list", "--all"]) == 0
    ((argv, env, index),) = seen
    assert argv == ["nnictl", "experiment", "list", "--all"] and sys.argv != argv
    assert env["SRNAS_NNI_HOST"] == "127.0.0.1" and str(nni_manager.PRELOAD) in env["NODE_OPTIONS"]
    assert env["SRNAS_NNI_HOME"] == str(tmp_path.resolve()) and "SRNAS_NNI_HOST" not in os.environ
    assert Path(index) == tmp_path / "nni-experiments" / ".experiment"
    monkeypatch.setattr(nnictl_cli, "parse_args", lambda: sys.exit(3))
    assert nni_nnictl._nnictl_main(["--output-dir", str(tmp_path), "stop", "nope"]) == 3  # nnictl's exit status is ours
    assert nni_nnictl._nnictl_main(["create", "--config", str(tmp_path / "missing.yml")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("srnas: error: ")
