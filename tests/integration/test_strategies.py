"""NNI built-ins and the Optuna strategy searching inside ``NasExperiment``: Pareto sets, a DARTS
supernet, three objectives told, a persistent study continued, the tuner behind NNI's HPO bridge."""

from __future__ import annotations

import pytest
import torch

from srnas_nni.evaluation.cost import measure
from srnas_nni.nni_adapter.loader import nni
from srnas_nni.spaces import load_space_preset
from srnas_nni.strategies import get, load_strategy_preset
from srnas_nni.strategies.pareto import dominates

from nni.nas.evaluator import FunctionalEvaluator  # noqa: E402
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402


def _fake_training(model):
    """Objectives without training: the true cost, and a PSNR that rewards a mid-size model."""
    cost = measure(model, model.scale, hr_size=(36, 48))
    psnr = 30.0 - abs(cost.params - 27_000) / 10_000.0  # dlsr-proxy models have 13K-73K parameters
    nni.report_final_result({"default": psnr, "psnr": psnr, "params": cost.params, "multadds": cost.multadds})


@pytest.mark.parametrize("name", ["random", "evolution", "grid", "tpe"])
def test_multi_trial_builtin_returns_the_pareto_set(name, tmp_path):
    kwargs = {"population_size": 3, "sample_size": 2} if name == "evolution" else {}
    strategy = get(name, **kwargs)
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path)
    config.max_trial_number = 5
    space = load_space_preset("dlsr-proxy")  # has InputChoice labels: the TPE encoding is exercised
    experiment = NasExperiment(space, FunctionalEvaluator(_fake_training), strategy, config=config)
    experiment.run()
    try:
        history = list(strategy.list_models(sort=False))
        front = list(strategy.list_models())
        state = strategy.state_dict()
    finally:
        experiment.stop()
    assert len(history) == 5 and len(strategy.archive) == 5
    assert front and all(isinstance(m.sample, dict) for m in front)
    raw = {id(e.model): e.metrics for e in strategy.archive.entries}
    front_metrics = [raw[id(m)] for m in front]
    everything = list(raw.values())
    for candidate in front_metrics:
        assert not any(dominates(other, candidate) for other in everything)
    for candidate in everything:
        if candidate not in front_metrics:
            assert any(dominates(other, candidate) or other == candidate for other in front_metrics)
    psnrs = [m["psnr"] for m in front_metrics]
    assert psnrs == sorted(psnrs, reverse=True)
    assert len(state["pareto_archive"]["entries"]) == 5


def test_darts_builtin_trains_a_supernet_and_exports(image_folder, tmp_path):
    from srnas_nni.evaluation.lightning import sr_lightning_evaluator

    torch.manual_seed(0)
    evaluator = sr_lightning_evaluator(scale=2, train_data=str(image_folder), val_data=str(image_folder),
                                       steps=2, val_batches=1, patch_size=16, batch_size=2, device="cpu")
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path)
    experiment = NasExperiment(load_space_preset("hnas-proxy"), evaluator, load_strategy_preset("darts"),
                               config=config)
    experiment.run()
    try:
        exported = experiment.export_top_models(formatter="dict")[0]
    finally:
        experiment.stop()
    assert set(exported) == set(load_space_preset("hnas-proxy").simplify())


def _fake_training_that_fails_big_models(model):
    cost = measure(model, model.scale, hr_size=(36, 48))
    if cost.params > 50_000:
        raise RuntimeError("out of memory (simulated)")
    _fake_training(model)


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "random"])
def test_optuna_strategy_tells_all_three_objectives(sampler, tmp_path):
    options = {"population_size": 4} if sampler == "nsga2" else {}
    strategy = get("optuna", sampler=sampler, seed=0, sampler_options=options)
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path)
    config.max_trial_number = 8
    config.execution_engine.continue_on_failure = True
    evaluator = FunctionalEvaluator(_fake_training_that_fails_big_models)
    experiment = NasExperiment(load_space_preset("dlsr-proxy"), evaluator, strategy, config=config)
    experiment.run()
    try:
        front = list(strategy.list_models())
    finally:
        experiment.stop()
    study = strategy.study
    assert study.metric_names == ["psnr", "params", "multadds"]
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 8
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(complete) + len(failed) == 8 and complete
    assert all(len(t.values) == 3 and t.values[1] <= 50_000 for t in complete)
    assert set(complete[0].params) == set(load_space_preset("dlsr-proxy").simplify())
    # Compared as sets of objective vectors: Optuna keeps a re-evaluated duplicate once, and two
    # architectures can tie on all three objectives (the archive keeps both).
    optuna_front = sorted({tuple(map(float, t.values)) for t in study.best_trials})
    ours = [(float(e.metrics["psnr"]), float(e.metrics["params"]), float(e.metrics["multadds"]))
            for e in strategy.archive.front()]
    assert sorted(set(ours)) == optuna_front
    assert len(front) == len(ours)


def test_optuna_strategy_continues_a_persistent_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    for run in range(2):
        config = NasExperimentConfig("sequential", "raw")
        config.experiment_working_directory = str(tmp_path / f"run{run}")
        config.max_trial_number = 3
        strategy = get("optuna", sampler="random", seed=run, storage=storage, study_name="resumed")
        experiment = NasExperiment(load_space_preset("dlsr-proxy"), FunctionalEvaluator(_fake_training), strategy,
                                   config=config)
        experiment.run()
        experiment.stop()
    assert len(strategy.study.get_trials(deepcopy=False)) == 6


def test_optuna_tuner_inside_nni_hpo_bridge(tmp_path):
    from nni.nas.strategy.hpo import HPOTunerStrategy

    from srnas_nni.nni_tuner import OptunaTuner

    tuner = OptunaTuner(sampler="random", seed=0)
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path)
    config.max_trial_number = 2
    # deconas labels are plain categoricals: NNI's own bridge can send them to a tuner unchanged.
    experiment = NasExperiment(load_space_preset("deconas-proxy"), FunctionalEvaluator(_fake_training),
                               HPOTunerStrategy(tuner), config=config)
    experiment.run()
    experiment.stop()
    assert [t.state.name for t in tuner.study.get_trials(deepcopy=False)] == ["COMPLETE", "COMPLETE"]
