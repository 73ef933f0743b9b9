"""SREvaluator: standalone result dict, and a real NNI multi-trial experiment driving it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from srnas_nni.errors import TrainingDivergedError
from srnas_nni.evaluation.cost import measure
from srnas_nni.evaluation.evaluator import SREvaluator
from srnas_nni.nni_adapter.loader import experiment_directory

from nni.nas.execution import ModelEventType  # noqa: E402
from nni.nas.space import ModelStatus  # noqa: E402
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402
from nni.nas.nn.pytorch import LayerChoice, ModelSpace  # noqa: E402
from nni.nas.strategy import GridSearch  # noqa: E402

from tests.support.models import TinySR

TRAIN = {"steps": 4, "batch_size": 2, "patch_size": 16, "device": "cpu", "learning_rate": 1e-3}


class _NaNOp(nn.Module):
    def forward(self, x):
        return x * float("nan")


class TinySpace(ModelSpace, label_prefix="tiny"):
    """Two candidates of different cost, and a third that diverges."""

    def __init__(self):
        super().__init__()
        self.scale = 2
        self.in_channels = 3
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.body = LayerChoice(
            {"conv3": nn.Conv2d(8, 8, 3, padding=1), "conv1": nn.Conv2d(8, 8, 1), "nan": _NaNOp()}, label="op"
        )
        self.tail = nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, x):
        return self.tail(self.body(self.head(x)))


@pytest.fixture
def evaluator(image_folder):
    return SREvaluator(scale=2, train_data=str(image_folder), val_data=str(image_folder), train=TRAIN)


def test_standalone_returns_every_objective(evaluator):
    torch.manual_seed(0)
    model = TinySR()
    result = evaluator.evaluate(model)
    expected = measure(model, 2)
    assert result["params"] == expected.params and result["multadds"] == expected.multadds
    assert result["default"] == result["psnr"] and math.isfinite(result["psnr"])
    assert 0 < result["ssim"] <= 1 and result["steps"] == 4 and result["scale"] == 2
    assert result["train_seconds"] > 0 and result["architecture"] is None


def test_objective_option_changes_default(image_folder):
    evaluator = SREvaluator(scale=2, train_data=str(image_folder), val_data=str(image_folder), train=TRAIN,
                            objective="hnas", objective_options={"lam": 0.5, "cost_per_gmac": 1.0})
    torch.manual_seed(0)
    result = evaluator.evaluate(TinySR())
    assert result["default"] == pytest.approx(0.5 * result["psnr"] - 0.5 * result["multadds"] / 1e9)


def test_evaluator_recreates_from_its_trace(evaluator):
    clone = type(evaluator)(**evaluator.trace_kwargs)
    assert clone.arguments == evaluator.arguments


def test_divergence_is_a_named_failure(evaluator):
    class Diverging(TinySR):
        def forward(self, x):
            return super().forward(x) * float("inf")

    with pytest.raises(TrainingDivergedError, match="diverged at step 1"):
        evaluator.evaluate(Diverging())


def test_multi_trial_nni_experiment_gets_the_full_metric_dict(evaluator, tmp_path):
    config = NasExperimentConfig("sequential", "simplified")
    config.experiment_working_directory = str(experiment_directory(tmp_path))
    config.max_trial_number = 3
    config.execution_engine.continue_on_failure = True
    experiment = NasExperiment(TinySpace(), evaluator, GridSearch(shuffle=False), config=config)
    experiment.run()
    try:
        models = list(experiment.strategy.list_models(sort=False))
    finally:
        experiment.stop()
    by_choice = {m.sample["tiny/op"]: m for m in models}
    assert set(by_choice) == {"conv3", "conv1", "nan"}
    assert by_choice["nan"].status == ModelStatus.Failed
    for choice in ("conv3", "conv1"):
        model = by_choice[choice]
        assert model.status == ModelStatus.Trained
        assert model.metric == pytest.approx(model.metrics.final)
    experiments = tmp_path / "nni-experiments"
    assert any(p.is_dir() for p in experiments.iterdir())  # the experiment's folder
    assert (experiments / ".experiment").exists()  # and NNI's index of experiments


def test_final_metric_event_carries_objectives_and_architecture(evaluator, tmp_path):
    config = NasExperimentConfig("sequential", "simplified")
    config.experiment_working_directory = str(experiment_directory(tmp_path))
    config.max_trial_number = 2
    received = []

    class Recording(GridSearch):
        def _initialize(self, model_space, engine):
            engine.register_model_event_callback(ModelEventType.FinalMetric, lambda e: received.append(e.metric))
            return super()._initialize(model_space, engine)

    experiment = NasExperiment(TinySpace(), evaluator, Recording(shuffle=False), config=config)
    experiment.run()
    experiment.stop()
    assert [m["architecture"] for m in received] == [{"tiny/op": "conv3"}, {"tiny/op": "conv1"}]
    conv3, conv1 = received
    assert conv3["params"] - conv1["params"] == 8 * 8 * 9 - 8 * 8
    assert conv3["multadds"] > conv1["multadds"]
    for metric in received:
        assert set(metric) >= {"default", "psnr", "ssim", "params", "multadds", "train_seconds"}


def _fp32_switches() -> tuple:
    from srnas_nni.runtime import float32_precision_switches

    return tuple(getattr(owner, name) for owner, name, _ in float32_precision_switches())


class _SwitchProbe(TinySR):
    """Records the float32 precision switches each time it runs."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(_fp32_switches())
        return super().forward(x)


def test_scoring_runs_in_ieee_float32_and_restores_the_switches(image_folder):
    from srnas_nni.evaluation.data import open_dataset
    from srnas_nni.evaluation.validation import super_resolve, validate

    before = _fp32_switches()
    model = _SwitchProbe()
    validate(model, open_dataset(str(image_folder), 2, split="val"))
    super_resolve(model, (torch.rand(12, 10, 3) * 255).byte().numpy())
    from srnas_nni.runtime import float32_precision_switches

    ieee = tuple(value for _, _, value in float32_precision_switches())
    assert model.seen and set(model.seen) == {ieee}  # TF32 convolutions would move PSNR by ~1e-3 dB on CUDA
    assert _fp32_switches() == before
