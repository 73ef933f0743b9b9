"""The NNI 3.0 behaviours srnas_nni.nni_adapter absorbs: one test per workaround.

Each test states what NNI does that the workaround exists for, then that the workaround does its job.
When NNI (or torch under it) changes, the first half fails and names the workaround to revisit.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from srnas_nni.nni_adapter import loader


# -- import -----------------------------------------------------------------------------------------


def test_import_filter_ignores_only_nni_import_noise():
    from srnas_nni.nni_adapter.import_filter import filtered_import_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with filtered_import_warnings():
            warnings.warn("<class 'torch.nn.Buffer'> is found to be not a nn.Module", RuntimeWarning)
            warnings.warn("pkg_resources is deprecated as an API", UserWarning)
            warnings.warn("anything else", UserWarning)
        warnings.warn("pkg_resources is deprecated as an API", UserWarning)  # the filter ends with the block
    assert [str(w.message) for w in caught] == ["anything else", "pkg_resources is deprecated as an API"]


def test_strategies_before_oneshot_keeps_nni_one_shot_strategies():
    # NNI: importing nni.nas.oneshot first makes nni.nas.strategy replace its one-shot strategies by placeholders.
    probe = ("import nni.nas.oneshot.pytorch.strategy, nni.nas.strategy as s; print(s.DARTS.__name__); "
             "import srnas_nni.nni_adapter.oneshot")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.split() == ["ImportFailedStrategy"], out.stderr
    # the adapter's order gives NNI's real classes
    from nni.nas.oneshot.pytorch.strategy import DARTS as OneShotDARTS
    from srnas_nni.nni_adapter.strategy import nni_strategies

    assert nni_strategies.DARTS is OneShotDARTS


# -- checkpoints --------------------------------------------------------------------------------------


def test_checkpoint_serializer_reads_back_nni_strategy_state(tmp_path):
    from nni.nas.utils.serializer import TorchSerializer, _find_path_with_prefix, get_default_serializer

    state = {"random_state": np.random.RandomState(0).get_state(), "strategy": SimpleNamespace(x=1)}
    serializer = get_default_serializer()
    assert isinstance(serializer, loader.ExperimentStateSerializer)
    serializer.save(state, tmp_path / "state")
    assert [p.name for p in tmp_path.iterdir()] == ["state" + serializer.suffix]  # no temporary file left
    assert _find_path_with_prefix(tmp_path / "state", serializer.suffix) == tmp_path / ("state" + serializer.suffix)
    # NNI's own serializer (torch.load, weights_only by default) refuses what NNI's strategies keep
    with pytest.raises(Exception, match="weights_only|Weights only"):
        TorchSerializer().load(tmp_path / "state")
    loaded = serializer.load(tmp_path / "state")
    assert loaded["strategy"].x == 1 and np.array_equal(loaded["random_state"][1], state["random_state"][1])


def test_darts_architecture_parameters_keep_module_order():
    from srnas_nni.nni_adapter.oneshot import DartsLightningModule

    # NNI collects them through a set: their order changes from one process to the next
    assert "set(" in inspect.getsource(loader.nni_arch_parameters)
    assert DartsLightningModule.arch_parameters is loader._stable_arch_parameters
    parameters = [nn.Parameter(torch.zeros(1)) for _ in range(20)]
    modules = [SimpleNamespace(arch_parameters=lambda p=p: [p]) for p in parameters]
    modules.append(SimpleNamespace(arch_parameters=lambda: parameters[:3]))  # shared: listed once
    module = SimpleNamespace(supernet_modules=lambda: modules)
    assert loader._stable_arch_parameters(module) == parameters
    assert set(loader.nni_arch_parameters(module)) == set(parameters)


def test_unseeded_mutable_draws_follow_the_run_seed():
    import importlib

    from nni.mutable import Categorical

    from srnas_nni.runtime import seed_everything

    for name in loader.UNSEEDED_DRAW_MODULES:  # NNI draws from numpy's RandomState() imported by name
        assert importlib.import_module(name).RandomState is loader._seeded_when_unseeded
    choice = Categorical(list(range(1000)), label="x")
    seed_everything(3)
    first = [choice.random() for _ in range(5)]
    seed_everything(3)
    assert [choice.random() for _ in range(5)] == first
    assert loader._seeded_when_unseeded(7).randint(1 << 30) == np.random.RandomState(7).randint(1 << 30)


# -- NNI's index of experiments and the console -------------------------------------------------------


def test_experiment_index_is_moved_under_the_run(monkeypatch, tmp_path):
    from nni.tools.nnictl import config_utils

    init = config_utils.Experiments.__init__
    # NNI binds the index folder as the one default argument of nnictl's Experiments
    assert init.__defaults__ is not None and len(init.__defaults__) == 1
    monkeypatch.setattr(init, "__defaults__", init.__defaults__)  # restored afterwards
    folder = loader.experiment_directory(tmp_path)
    assert folder == tmp_path / "nni-experiments" and folder.is_dir()
    assert config_utils.Experiments().experiment_file == str(folder / ".experiment")
    assert loader.experiment_index_home() == tmp_path
    init.__defaults__ = (str(tmp_path / "elsewhere"),)
    assert loader.experiment_index_home() is None


def test_quiet_console_keeps_nni_reports_of_input_failures_off_the_console(monkeypatch):
    from nni.nas.execution import sequential
    from nni.runtime import log as nni_log

    from srnas_nni.errors import SRNASError

    assert callable(nni_log.silence_stdout)
    assert sequential._logger.name == loader.SEQUENTIAL_ENGINE_LOGGER  # where NNI reports a failed trial
    logger = logging.getLogger("nni")
    monkeypatch.setattr(logger, "propagate", logger.propagate)
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(nni_log, "silence_stdout", lambda: None)  # its effect is NNI's; not undone by monkeypatch
    loader.quiet_console()
    loader.quiet_console()
    ours = [h for h in logger.handlers if getattr(h, "_srnas_console", False)]
    assert len(ours) == 1 and not logger.propagate and ours[0].level == logging.WARNING

    def record(name):
        return logging.LogRecord(name, logging.ERROR, __file__, 1, "trial failed", None, None)

    try:
        raise SRNASError("bad input")
    except SRNASError:
        assert not ours[0].filter(record(loader.SEQUENTIAL_ENGINE_LOGGER))
        assert ours[0].filter(record("nni.other"))
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        assert ours[0].filter(record(loader.SEQUENTIAL_ENGINE_LOGGER))


# -- strategies -------------------------------------------------------------------------------------


def _raw_space():
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace
    from nni.nas.space import RawFormatModelSpace

    class Net(ModelSpace):
        def __init__(self):
            super().__init__()
            self.op = LayerChoice([nn.Identity(), nn.ReLU(), nn.Tanh()], label="op")

    return RawFormatModelSpace.from_model(Net(), None)


def test_plain_state_of_nni_strategies():
    from nni.nas.strategy.utils import _to_hashable

    from srnas_nni.nni_adapter import multi_trial
    from srnas_nni.nni_adapter.strategy import Individual, nni_strategies

    # NNI's state holds numpy's random state tuple, its dedup history frozensets, its population Individuals
    assert isinstance(nni_strategies.Random().state_dict()["random_state"], tuple)
    sample = {"a": 1, "b": [1, 2], "c": {"d": "x"}}
    assert multi_trial._sample_hashable(sample) == _to_hashable(sample)
    assert multi_trial._plain_sample(_to_hashable(sample)) == sample

    class PlainEvolution(multi_trial.PlainNNIState, nni_strategies.RegularizedEvolution):
        pass

    strategy = PlainEvolution()
    strategy._population.append(Individual(sample, 1.0))
    state = strategy.state_dict()
    assert isinstance(state["random_state"], dict) and state["population"] == [{"sample": sample, "metric": 1.0}]
    restored = PlainEvolution()
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    assert restored._random_state.randint(1 << 30) == strategy._random_state.randint(1 << 30)


def test_grid_points_are_frozen_on_their_own_sample():
    from srnas_nni.nni_adapter.multi_trial import FreshSampleGridSearch
    from srnas_nni.nni_adapter.strategy import nni_strategies

    space = _raw_space()
    nni_grid = nni_strategies.GridSearch()._grid_generator(space)
    held = [next(nni_grid) for _ in range(3)]
    assert [m.sample for m in held] == [{"op": 2}] * 3  # NNI: one sample dict, mutated in place
    ours = FreshSampleGridSearch()._grid_generator(space)
    assert [next(ours).sample for _ in range(3)] == [{"op": 0}, {"op": 1}, {"op": 2}]


def test_tpe_sees_input_choices_through_the_encoding():
    from nni.mutable import CategoricalMultiple

    from srnas_nni.nni_adapter.multi_trial import EncodedSpaceTPE
    from srnas_nni.nni_adapter.strategy import ModelStatus, nni_strategies

    # NNI's TPE hands its tuner as_legacy_dict() of every label, which InputChoice labels lack
    assert "as_legacy_dict()" in inspect.getsource(nni_strategies.TPE._run)
    with pytest.raises(NotImplementedError):
        CategoricalMultiple([1, 2, 3], label="x").as_legacy_dict()

    class Encoding:
        def legacy_search_space(self):
            return {"op": {"_type": "choice", "_value": ["id", "relu", "tanh"]}}

        def encode(self, sample):
            return {"op": ["id", "relu", "tanh"][sample["op"]]}

        def decode(self, parameters):
            return {"op": ["id", "relu", "tanh"].index(parameters["op"])}

    class Strategy(EncodedSpaceTPE):
        def space_encoding(self, space):
            return Encoding()

        def completed_trials(self):
            return [({"op": 1}, {"default": 3.0})]

    submitted = []
    strategy = Strategy()
    strategy._model_space = _raw_space()  # what NNI's Strategy.initialize sets
    strategy._engine = SimpleNamespace(budget_available=lambda: len(submitted) < 2, idle_worker_available=lambda: True,
                                       submit_models=submitted.append)
    seen = {}
    strategy.tuner = SimpleNamespace(
        update_search_space=lambda space: seen.setdefault("space", space),
        import_data=lambda data: seen.setdefault("history", data),
        generate_parameters=lambda number: {"op": "tanh"},
        receive_trial_result=lambda number, parameters, value: seen.setdefault("result", (number, parameters, value)))
    strategy._run()
    assert seen["space"] == Encoding().legacy_search_space()
    assert seen["history"] == [{"parameter": {"op": "relu"}, "value": {"default": 3.0}}]
    assert [m.sample for m in submitted] == [{"op": 2}, {"op": 2}] and submitted[0].status == ModelStatus.Frozen
    strategy.on_metric(SimpleNamespace(model=submitted[1], metric=1.5))
    assert seen["result"] == (1, {"op": "tanh"}, 1.5)


# -- the experiment -------------------------------------------------------------------------------------


def test_run_experiment_reports_what_nni_does_with_ctrl_c():
    from nni.experiment import Experiment

    from srnas_nni.nni_adapter.experiment import NasExperiment, run_experiment

    class Interrupted:
        stopped = False

        def start(self, port, debug):
            raise KeyboardInterrupt

        def stop(self):
            self.stopped = True

    # NNI catches Ctrl-C itself, stops the experiment and returns None
    interrupted = Interrupted()
    assert Experiment._run_impl(interrupted, 8080, True, False) is None and interrupted.stopped
    assert inspect.getsource(NasExperiment._wait_completion).count("return True") == 1  # a NAS run ends True
    calls = []
    fake = SimpleNamespace(run=lambda port: calls.append(("run", port)),
                           resume=lambda port: calls.append(("resume", port)))
    assert run_experiment(fake, port=1) is True  # None from NNI
    fake.run = lambda port: True
    assert run_experiment(fake, port=2) is False
    assert run_experiment(fake, port=3, resume=True) is True and calls == [("run", 1), ("resume", 3)]


def test_failure_reason_rides_on_the_model():
    from nni.nas.execution import TrainingEndEvent

    from srnas_nni.nni_adapter.failures import failure_reason, set_failure_reason

    # NNI's end-of-training event carries the model and its status, no reason
    assert list(inspect.signature(TrainingEndEvent.__init__).parameters) == ["self", "model", "status"]
    model = SimpleNamespace()
    assert failure_reason(model) is None
    set_failure_reason(model, "TrainingDivergedError: loss is nan")
    assert failure_reason(model) == "TrainingDivergedError: loss is nan"


# -- engine: nni ------------------------------------------------------------------------------------


def test_unknown_manager_commands_are_skipped():
    from nni.runtime.tuner_command_channel import CommandType, TunerCommandChannel

    from srnas_nni.nni_adapter.engine import SKIPPED_COMMANDS, skip_unknown_commands

    def channel_receiving(*commands):
        channel = TunerCommandChannel.__new__(TunerCommandChannel)
        queue = list(commands)
        channel._receive = lambda: queue.pop(0)
        return channel

    # NNI's NAS channel: a resumed experiment's ImportData is an unknown command (its listener thread dies)
    for command in SKIPPED_COMMANDS:
        with pytest.raises(ValueError, match="Unknown command type"):
            channel_receiving((command, "")).receive()
    channel = channel_receiving((CommandType.ImportData, "[]"), (CommandType.Ping, ""), (CommandType.Terminate, ""))
    skip_unknown_commands(channel)
    assert type(channel.receive()).__name__ == "Terminate"


def test_nni_engine_internals_keep_alive_engine_relies_on():
    from nni.nas.execution import TrainingServiceExecutionEngine

    from srnas_nni.nni_adapter.engine import KeepAliveEngine

    # NNI's engine keeps weak references to submitted models, and its own submit/callbacks we extend
    assert "weakref.ref" in inspect.getsource(TrainingServiceExecutionEngine.submit_models)
    init = inspect.getsource(TrainingServiceExecutionEngine.__init__)
    for attribute in ("_models", "_submitted_cache", "_channel", "_current_parameter_id", "_workers"):
        assert f"self.{attribute}" in init, attribute
    for method in ("_next_parameter_id", "_find_reference_model", "_interpret_trial_job_status", "_check_running",
                   "_report_metric_data_callback", "_trial_end_callback", "budget_available", "list_models",
                   "idle_worker_available"):
        assert callable(getattr(TrainingServiceExecutionEngine, method)), method
    assert issubclass(KeepAliveEngine, TrainingServiceExecutionEngine)


def test_freezing_model_space_freezes_with_the_space_itself():
    from nni.nas.space import SimplifiedModelSpace

    from srnas_nni.nni_adapter.engine import FreezingModelSpace

    # NNI's simplified format re-creates the space inside model_context to freeze it
    assert "model_context" in inspect.getsource(SimplifiedModelSpace.executable_model)
    frozen = []

    class Space:
        def freeze(self, sample):
            frozen.append(sample)
            return "model"

    model = FreezingModelSpace.__new__(FreezingModelSpace)
    model.sample = {"op": 1}
    model.built_space = lambda: Space()
    assert model.executable_model() == "model" and frozen == [{"op": 1}]


def test_manager_preload_assumptions_hold_for_nni_manager():
    import nni_node

    from srnas_nni.nni_adapter.manager import PRELOAD, manager_environment

    # NNI's manager listens with no host (every interface) and reads its index from the user's home
    node = Path(nni_node.__file__).parent
    assert "app.listen(this.port);" in (node / "rest_server" / "index.js").read_text()
    assert "os_1.default.homedir(), 'nni-experiments', '.experiment'" in \
        (node / "common" / "globals" / "paths.js").read_text()
    preload = PRELOAD.read_text()
    assert "SRNAS_NNI_HOST" in preload and "os.homedir = () => HOME" in preload
    variables = manager_environment("127.0.0.1", {"NODE_OPTIONS": "--max-old-space-size=64"}, home="/tmp")
    assert variables["NODE_OPTIONS"].startswith(f'--require "{PRELOAD}"') and variables["SRNAS_NNI_HOME"]


def test_manager_host_rides_on_nni_config():
    from srnas_nni.nni_adapter.experiment import NasExperimentConfig
    from srnas_nni.nni_adapter.manager import DEFAULT_HOST, manager_host, set_manager_host

    config = NasExperimentConfig("ts", "simplified", training_service={"platform": "local"})
    config.trial_concurrency = 1
    assert manager_host(config) == DEFAULT_HOST
    set_manager_host(config, "0.0.0.0")  # NNI's configs accept "_" attributes and leave them out of json()
    assert manager_host(config) == "0.0.0.0" and "srnas" not in str(config.json())


# -- the tuner's dispatcher ---------------------------------------------------------------------------


def test_dispatcher_patches_for_our_tuners():
    from nni.runtime import msg_dispatcher_base
    from nni.runtime.msg_dispatcher import MsgDispatcher

    from srnas_nni.nni_adapter import tuner

    # NNI: trial_end(parameter_id, success) only; run() never tells the tuner; queued commands dropped on stop
    calls = []
    fake = SimpleNamespace(tuner=SimpleNamespace(trial_end=lambda *a, **k: calls.append((a, k))), assessor=None,
                           is_created_in_previous_exp=lambda id_: False)
    tuner._nni_handle_trial_end(fake, {"trial_job_id": "T", "event": "FAILED", "hyper_params": '{"parameter_id": 4}'})
    assert calls == [((4, False), {})]
    assert "_worker_fast_exit_on_terminate = True" in inspect.getsource(msg_dispatcher_base)
    assert MsgDispatcher.handle_trial_end is tuner._handle_trial_end_naming_the_trial
    assert MsgDispatcher.run is tuner._run_then_close_the_tuner

    class Recording(tuner.OptunaTuner):
        def __init__(self):
            self.ends = []

        def trial_end(self, parameter_id, success, **kwargs):
            self.ends.append((parameter_id, success, kwargs))

    fake.tuner = Recording()
    tuner._handle_trial_end_naming_the_trial(fake, {"trial_job_id": "T", "event": "SUCCEEDED",
                                                    "hyper_params": '{"parameter_id": 5}'})
    assert fake.tuner.ends == [(5, True, {"trial_job_id": "T"})] and "trial_end" not in vars(fake.tuner)
