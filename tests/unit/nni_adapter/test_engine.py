"""``engine: nni`` without NNI's manager: the experiment section as NNI's config, the manager's environment,
a busy port, and the engine's bookkeeping of trials (events fed by hand). The manager itself, on
loopback with trials in their own processes: ``tests/integration/test_nni_engine.py``."""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

import optuna
import pytest
import yaml

from srnas_nni.nni_adapter import engine as nni_engine

from srnas_nni.nni_adapter import manager as nni_manager
from srnas_nni.run.config import ConfigError, parse_config
from srnas_nni.nni_adapter.experiment import nni_experiment_config
from srnas_nni.nni_adapter.manager import DEFAULT_HOST, PRELOAD, manager_bound_to, manager_environment, web_ui_url

from tests.support.experiments import nni_engine_config


# -- configuration --------------------------------------------------------------------------------


def test_experiment_section_becomes_a_training_service_config(tmp_path, image_folder):
    config = nni_engine_config(tmp_path, image_folder, trial_concurrency=3)
    nas_config = nni_experiment_config(config.experiment, error=config.error)
    canonical = nas_config.canonical_copy()
    assert canonical.execution_engine.name == "ts" and canonical.model_format.name == "simplified"
    assert canonical.trial_concurrency == 3 and canonical.training_service.platform == "local"
    assert nni_manager.manager_host(nas_config) == DEFAULT_HOST


def test_remote_training_service_is_passed_through(tmp_path, image_folder, caplog):
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key")
    service = {"platform": "remote", "reuseMode": False, "nniManagerIp": "10.1.2.3",
               "machineList": [{"host": "10.1.2.4", "user": "sr", "sshKeyFile": str(key), "pythonPath": "/opt/sr/bin"}]}
    config = nni_engine_config(tmp_path, image_folder, host="0.0.0.0", training_service=service)
    with caplog.at_level(logging.WARNING, logger="srnas_nni.nni_adapter.engine"):
        nas_config = nni_experiment_config(config.experiment, error=config.error)
    assert "without authentication" in caplog.text  # not loopback: said so
    service_json = nas_config.json()["trainingService"]
    assert service_json["platform"] == "remote" and service_json["nniManagerIp"] == "10.1.2.3"
    assert service_json["machineList"][0]["host"] == "10.1.2.4" and service_json["machineList"][0]["pythonPath"]
    assert nni_manager.manager_host(nas_config) == "0.0.0.0"
    assert nas_config.json()["trialCommand"] == "python3 -m nni.nas.execution.training_service trial"  # worker's
    # Remote workers connect back to the manager: a loopback-only manager cannot serve them.
    config = nni_engine_config(tmp_path, image_folder, training_service=service)
    with pytest.raises(ConfigError, match="experiment.host.*connect back") as error:
        nni_experiment_config(config.experiment, error=config.error)
    assert "\n" not in str(error.value)


def test_remote_example_is_valid_and_reaches_nni_unchanged(tmp_path):
    example = Path(__file__).resolve().parents[3] / "examples" / "nni" / "search-remote.yaml"
    data = yaml.safe_load(example.read_text())
    key = tmp_path / "id_ed25519"  # the example's key lives on the user's machine
    key.write_text("not a real key")
    for machine in data["experiment"]["training_service"]["machineList"]:
        machine["sshKeyFile"] = str(key)
    data["output_dir"] = str(tmp_path / "run")
    config = parse_config(data, source=str(example), check_data=False)  # its data paths are on the workers
    service = nni_experiment_config(config.experiment, error=config.error).json()["trainingService"]
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
    config = nni_engine_config(tmp_path, image_folder, training_service=service)
    with pytest.raises(ConfigError, match=message) as error:
        nni_experiment_config(config.experiment, error=config.error)
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


def test_busy_port_is_one_line():
    from srnas_nni.errors import SRNASError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SRNASError, match=f"experiment.port: 127.0.0.1:{port} is not available"):
            nni_manager.check_port_free("127.0.0.1", port)
    nni_manager.check_port_free("127.0.0.1", port)  # free again


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
    from srnas_nni.spaces.encoding import SpaceEncoding
    from srnas_nni.run.recorder import StudyRecorder

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
