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


@pytest.mark.parametrize("content, message", [
    ("name: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "mapping with a 'name' key"),
    ("name: random\nseeed: 3\n", "unknown option(s) ['seeed'] (did you mean 'seed'?)"),
])
def test_a_bad_strategy_file_is_named_in_one_line(tmp_path, content, message):
    path = tmp_path / "mine.yaml"
    path.write_text(content)
    with pytest.raises(SRNASError) as excinfo:
        load_strategy_preset(path)
    text = str(excinfo.value)
    assert str(path) in text and message in text and "\n" not in text


def test_optuna_tuner_serves_nni_hpo_configs():
    from srnas_nni.strategies.encoding import SpaceEncoding
    from srnas_nni.strategies.optuna import OptunaTuner

    space = load_space_preset("dlsr-proxy")
    encoding = SpaceEncoding(space)
    tuner = OptunaTuner(sampler="random", seed=0)
    tuner.update_search_space(encoding.legacy_search_space())
    for parameter_id in range(3):
        parameters = tuner.generate_parameters(parameter_id)
        model = space.freeze(encoding.decode(parameters))
        cost = measure(model, 2, hr_size=(36, 48))
        tuner.receive_trial_result(parameter_id, parameters,
                                   {"default": 30.0, "psnr": 30.0, "params": cost.params, "multadds": cost.multadds})
        tuner.trial_end(parameter_id, True)
    tuner.generate_parameters(3)
    tuner.trial_end(3, False)  # crashed before reporting
    states = [t.state.name for t in tuner.study.get_trials(deepcopy=False)]
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    with pytest.raises(SRNASError, match="'lr'.*choice"):
        tuner.update_search_space({"lr": {"_type": "loguniform", "_value": [1e-4, 1e-2]}})


def test_optuna_tuner_inside_nni_hpo_bridge(tmp_path):
    from nni.nas.strategy.hpo import HPOTunerStrategy

    from srnas_nni.strategies.optuna import OptunaTuner

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
