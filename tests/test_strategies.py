"""Strategies by name: the registry, YAML presets, the Pareto archive, and NNI built-ins end to end."""

from __future__ import annotations

import pytest
import torch

from srnas_nni.errors import SRNASError
from srnas_nni.evaluation.cost import measure
from srnas_nni.nni_compat import nni
from srnas_nni.spaces import load_space_preset
from srnas_nni.strategies import get, list_strategies, load_strategy_preset, strategy_preset_names
from srnas_nni.strategies.pareto import ParetoArchive, dominates

from nni.nas.evaluator import FunctionalEvaluator  # noqa: E402
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402

BUILTINS = {"random", "evolution", "grid", "tpe", "darts", "gumbel_darts", "proxyless", "random_one_shot"}


def test_builtins_are_registered_and_have_presets():
    assert BUILTINS <= set(list_strategies())
    assert BUILTINS <= set(strategy_preset_names())
    for name in strategy_preset_names():
        assert load_strategy_preset(name) is not None


def test_unknown_or_misconfigured_strategies_are_named():
    with pytest.raises(SRNASError, match="unknown strategy 'randon'.*did you mean 'random'"):
        get("randon")
    with pytest.raises(SRNASError, match="strategy 'evolution': unknown option.*'population'.*population_size"):
        get("evolution", population=3)
    with pytest.raises(SRNASError, match="unknown strategy preset 'nsga'"):
        load_strategy_preset("nsga")


def _m(psnr, params, multadds):
    return {"psnr": psnr, "params": params, "multadds": multadds}


def test_pareto_front_keeps_exactly_the_non_dominated():
    archive = ParetoArchive()
    archive.add({"a": 1}, _m(30.0, 100, 10))   # front: best PSNR
    archive.add({"a": 2}, _m(29.0, 50, 10))    # front: fewer params
    archive.add({"a": 3}, _m(28.0, 60, 10))    # dominated by a=2
    archive.add({"a": 4}, _m(28.0, 200, 1))    # front: fewest Mult-Adds
    archive.add({"a": 5}, {"default": 31.0})   # incomplete: never on the front
    archive.add({"a": 1}, _m(30.0, 100, 10))   # re-evaluated duplicate counts once
    assert [e.sample["a"] for e in archive.front()] == [1, 2, 4]
    assert dominates(_m(30, 1, 1), _m(29, 1, 1)) and not dominates(_m(30, 2, 1), _m(29, 1, 1))
    restored = ParetoArchive()
    restored.load_state_dict(archive.state_dict())
    assert [e.sample for e in restored.front()] == [e.sample for e in archive.front()]


def _fake_training(model):
    """Objectives without training: the true cost, and a PSNR that rewards a mid-size model."""
    cost = measure(model, model.scale, hr_size=(36, 48))
    psnr = 30.0 - abs(cost.params - 3000) / 1000.0
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
