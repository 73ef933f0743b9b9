"""The hierarchical RL strategy searching inside ``NasExperiment``: multi-trial with failures, resume,
its state through ``torch.save``, parameter sharing on every proxy space."""

from __future__ import annotations

import pytest
import torch

from srnas_nni.evaluation.cost import measure
from srnas_nni.nni_adapter.loader import nni
from srnas_nni.spaces import load_space_preset
from srnas_nni.strategies import get, load_strategy_preset
from srnas_nni.study.keys import canonical_sample

from nni.nas.evaluator import FunctionalEvaluator  # noqa: E402
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402

from tests.support.spaces import PROXY_SPACES


# ------------------------------------------------------------------------------------------------
# Multi-trial inside NasExperiment


_CALLS = {"count": 0}


def _fake_training(model):
    """The true cost and a PSNR that favours mid-size models; every third call fails."""
    _CALLS["count"] += 1
    if _CALLS["count"] % 3 == 0:
        raise RuntimeError("out of memory (simulated)")
    cost = measure(model, model.scale, hr_size=(36, 48))
    psnr = 30.0 - abs(cost.params - 25_000) / 10_000.0
    nni.report_final_result({"default": psnr, "psnr": psnr, "params": cost.params, "multadds": cost.multadds})


def _experiment(space, strategy, tmp_path, trials, experiment_id=None):
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path)
    config.max_trial_number = trials
    config.execution_engine.continue_on_failure = True
    return NasExperiment(space, FunctionalEvaluator(_fake_training), strategy, config=config, id=experiment_id)


@pytest.mark.parametrize("name", PROXY_SPACES)
def test_multi_trial_search_returns_the_pareto_set_and_survives_failures(name, tmp_path):
    _CALLS["count"] = 0
    preset = "deconas_rl" if name == "deconas-proxy" else "hierarchical_rl"
    strategy = load_strategy_preset(preset, seed=0, controller_batch=2)
    experiment = _experiment(load_space_preset(name), strategy, tmp_path, trials=6)
    experiment.run()
    try:
        front = list(strategy.list_models())
        history = list(strategy.engine.list_models())
    finally:
        experiment.stop()
    assert len(history) == 6
    failed = [record for record in strategy.evaluated.values() if record["psnr"] is None]
    assert strategy.failures == len(failed) == 2  # calls 3 and 6
    assert len(strategy.evaluated) == 6 and len(strategy.archive) == 4
    assert front and all(set(model.sample) == set(load_space_preset(name).simplify()) for model in front)
    for record in failed:  # the penalty: a 0 dB model at its own cost
        assert record["reward"] == pytest.approx(strategy.reward_fn(0.0, record["sample"]))
    assert strategy.learner.updates == 3  # 6 rewards, 2 per update
    assert set(strategy.export_probs()) == set(load_space_preset(name).simplify())


def test_resumed_search_repeats_no_trial_and_keeps_the_controller(tmp_path):
    _CALLS["count"] = 1  # first failure on the 2nd call
    strategy = get("hierarchical_rl", seed=3, learning_rate=0.01)
    experiment = _experiment(load_space_preset("dlsr-proxy"), strategy, tmp_path, trials=4, experiment_id="rl-resume")
    experiment.run()
    first_samples = [canonical_sample(m.sample) for m in strategy.engine.list_models()]
    saved = {k: v.clone() for k, v in strategy.controller.state_dict().items()}
    saved_generator = strategy.learner.generator.get_state().clone()
    experiment.stop()

    resumed = get("hierarchical_rl", seed=3, learning_rate=0.01)
    loaded = {}
    original_load = resumed.load_state_dict

    def spy(state):
        original_load(state)
        loaded.update({k: v.clone() for k, v in resumed.controller.state_dict().items()})
        loaded["generator"] = resumed.learner.generator.get_state().clone()

    resumed.load_state_dict = spy
    experiment = _experiment(load_space_preset("dlsr-proxy"), resumed, tmp_path, trials=8, experiment_id="rl-resume")
    experiment.resume()
    try:
        second_samples = [canonical_sample(m.sample) for m in resumed.engine.list_models()]
    finally:
        experiment.stop()
    assert loaded, "the strategy state was not loaded"
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert torch.equal(loaded["generator"], saved_generator)
    assert len(first_samples) == 4 and len(second_samples) == 4
    assert len(set(first_samples + second_samples)) == 8  # nothing evaluated twice
    assert len(resumed.evaluated) == 8 and len(resumed.archive) == sum(
        record["psnr"] is not None for record in resumed.evaluated.values())
    assert resumed.learner.updates == 8


def test_state_dict_round_trip_through_torch_save(tmp_path):
    strategy = get("hierarchical_rl", seed=5, controller_batch=3)
    experiment = _experiment(load_space_preset("hnas-proxy"), strategy, tmp_path, trials=4)
    _CALLS["count"] = 0
    experiment.run()
    experiment.stop()
    path = tmp_path / "state.pt"
    torch.save(strategy.state_dict(), path)
    fresh = get("hierarchical_rl", seed=99, controller_batch=3)
    fresh_experiment = _experiment(load_space_preset("hnas-proxy"), fresh, tmp_path / "b", trials=4)
    fresh.initialize(fresh_experiment.executable_model_factory(fresh_experiment.config.model_format),
                     fresh_experiment.execution_engine_factory(fresh_experiment.config.execution_engine))
    fresh.load_state_dict(torch.load(path, weights_only=False))
    assert all(torch.equal(a, b) for a, b in zip(fresh.controller.state_dict().values(),
                                                 strategy.controller.state_dict().values()))
    assert fresh.learner.pending == strategy.learner.pending and len(fresh.learner.pending) == 1
    assert fresh.learner.baseline == strategy.learner.baseline
    assert fresh.evaluated == strategy.evaluated
    assert fresh.learner.sample().sample == strategy.learner.sample().sample  # same sampler state


# ------------------------------------------------------------------------------------------------
# Parameter sharing


@pytest.mark.parametrize("name", PROXY_SPACES)
def test_parameter_sharing_trains_supernet_and_controller_and_derives(name, image_folder, tmp_path):
    from srnas_nni.evaluation.lightning import sr_lightning_evaluator

    torch.manual_seed(0)
    space = load_space_preset(name)
    evaluator = sr_lightning_evaluator(scale=space.scale, train_data=str(image_folder), val_data=str(image_folder),
                                       steps=4, val_batches=2, patch_size=16, batch_size=2, device="cpu")
    preset = "deconas_rl" if name == "deconas-proxy" else "hierarchical_rl"
    strategy = load_strategy_preset(preset, parameter_sharing=True, controller_every=2, controller_steps=2,
                                    derive_samples=3, seed=0)
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path)
    experiment = NasExperiment(space, evaluator, strategy, config=config)
    initial = None

    original = strategy.configure_oneshot_module

    def capture(training_module):
        nonlocal initial
        initial = {k: v.clone() for k, v in strategy.controller.state_dict().items()}
        return original(training_module)

    strategy.configure_oneshot_module = capture
    experiment.run()
    try:
        exported = experiment.export_top_models(formatter="dict")[0]
        module = strategy.oneshot_module
        probs = strategy.export_probs()
        checkpoint_path = tmp_path / "search.ckpt"
        module.trainer.save_checkpoint(checkpoint_path)
    finally:
        experiment.stop()

    # Every piece of search state is in the Lightning checkpoint.
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    saved_state = {k: v.clone() for k, v in module.state_dict().items()}
    assert {"baseline", "weight_steps", "controller_updates"} <= set(checkpoint["state_dict"])
    assert any(k.startswith("controller.") for k in checkpoint["state_dict"])
    assert len(checkpoint["optimizer_states"]) == 2  # supernet weights, controller
    assert checkpoint["optimizer_states"][1]["state"]  # the controller's Adam moments
    generator_state = module.generator.get_state().clone()
    with torch.no_grad():
        for parameter in module.controller.parameters():
            parameter.add_(1.0)
    module.baseline.fill_(-1.0)
    module.generator.manual_seed(12345)
    module.load_state_dict(checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    assert all(torch.equal(v, saved_state[k]) for k, v in module.state_dict().items())
    assert torch.equal(module.generator.get_state(), generator_state)
    labels = set(load_space_preset(name).simplify())
    assert set(exported) == labels
    assert exported == module.derived and len(module.derived_scores) == 3
    assert exported in [score["sample"] for score in module.derived_scores]
    best = max(module.derived_scores, key=lambda score: score["psnr"])
    assert exported == best["sample"]
    frozen = load_space_preset(name).freeze(exported)
    with torch.no_grad():
        assert frozen(torch.rand(1, 3, 12, 12)).shape == (1, 3, 12 * space.scale, 12 * space.scale)
    assert set(probs) == labels
    assert int(module.weight_steps) == 4 and int(module.controller_updates) == 4  # 2 phases x 2 steps
    changed = [k for k, v in strategy.controller.state_dict().items() if not torch.equal(v, initial[k])]
    assert changed  # the controller was trained
    assert not torch.isnan(module.baseline)
