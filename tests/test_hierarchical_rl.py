"""The hierarchical RL controller (HNAS / DeCoNAS): learning, rewards, multi-trial, resume, parameter sharing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srnas_nni.errors import SRNASError
from srnas_nni.evaluation.cost import measure
from srnas_nni.nni_compat import nni
from srnas_nni.spaces import load_space_preset
from srnas_nni.strategies import check_compatible, get, load_strategy_preset
from srnas_nni.strategies.hierarchical_rl import (
    ControllerConfig, DeCoNASComplexityReward, HierarchicalController, HierarchicalRL, HierarchicalRLOneShot,
    HNASJointReward, ReinforceLearner, controller_levels_of, resolve_options, sample_key,
)
from srnas_nni.strategies.hierarchical_rl import _MULTI_TRIAL_DEFAULTS

from nni.mutable import Categorical, CategoricalMultiple  # noqa: E402
from nni.nas.evaluator import FunctionalEvaluator  # noqa: E402
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402

PROXIES = ["hnas-proxy", "trilevel-proxy", "hinas-proxy", "dlsr-proxy", "deconas-proxy"]

# A hand-made two-level space with every kind of decision the controller handles.
TOY_LEVELS = [
    ("cell", [("cell/op", Categorical(["a", "b", "c", "d"], label="op")),
              ("cell/width", Categorical([8, 16, 32], label="width")),
              ("cell/inputs", CategoricalMultiple([0, 1, 2, 3], n_chosen=2, label="inputs")),
              ("cell/any", CategoricalMultiple([0, 1, 2], n_chosen=None, label="any"))]),
    ("network", [("network/position", Categorical([0, 1, 2, 3], label="position"))]),
]
TOY_BEST = {"cell/op": "c", "cell/width": 16, "cell/inputs": [1, 3], "cell/any": [0, 2], "network/position": 2}


def _toy_reward(sample) -> float:
    """Partial credit per decision; only TOY_BEST scores the maximum, 5."""
    score = sum(float(sample[k] == TOY_BEST[k]) for k in ("cell/op", "cell/width", "network/position"))
    score += len(set(sample["cell/inputs"]) & set(TOY_BEST["cell/inputs"])) / 2
    score += sum((i in sample["cell/any"]) == (i in TOY_BEST["cell/any"]) for i in range(3)) / 3
    return score


def test_controller_learns_a_known_best_architecture_and_its_entropy_falls():
    options = resolve_options("hnas", {"learning_rate": 0.003, "entropy_weight": 0.01, "seed": 0},
                              _MULTI_TRIAL_DEFAULTS)
    generator = torch.Generator().manual_seed(0)
    controller = HierarchicalController(TOY_LEVELS, ControllerConfig(), generator=generator)
    learner = ReinforceLearner(controller, options, generator)
    entropy_before = np.mean([controller.sample(generator).entropy for _ in range(20)])
    assert controller.greedy().sample != TOY_BEST
    reached = None
    for update in range(400):
        rollout = learner.sample()
        reward = _toy_reward(rollout.sample)
        learner.observe(rollout.sample, reward, reward)
        if reached is None and controller.greedy().sample == TOY_BEST:
            reached = update
    entropy_after = np.mean([controller.sample(generator).entropy for _ in range(20)])
    assert reached is not None and controller.greedy().sample == TOY_BEST
    assert learner.updates == 400
    assert entropy_after < 0.5 * entropy_before
    # Samples are valid: k distinct inputs for a fixed n_chosen, any subset for a free one.
    for _ in range(20):
        sample = controller.sample(generator).sample
        assert len(set(sample["cell/inputs"])) == 2 and set(sample["cell/any"]) <= {0, 1, 2}


@pytest.mark.parametrize("name", PROXIES)
def test_controller_samples_valid_architectures_and_replays_them(name):
    space = load_space_preset(name)
    levels = controller_levels_of(space)
    assert [label for _, decisions in levels for label, _ in decisions] == sum(space.controller_levels().values(), [])
    generator = torch.Generator().manual_seed(1)
    controller = HierarchicalController(levels, ControllerConfig(hidden_size=16), generator=generator)
    for _ in range(3):
        rollout = controller.sample(generator)
        space.check_sample(rollout.sample)
        replay = controller.evaluate(rollout.sample)
        assert replay.sample == rollout.sample
        assert torch.allclose(torch.stack(replay.log_probs), torch.stack(rollout.log_probs), atol=1e-5)
    probs = controller.greedy().probs
    assert set(probs) == set(space.simplify())


def test_hnas_levels_are_cells_then_position():
    levels = load_space_preset("hnas-proxy").controller_levels()
    assert list(levels) == ["normal", "up", "up/position"] and levels["up/position"] == ["up/position"]
    assert list(load_space_preset("trilevel-proxy").controller_levels())[-1] == "network"
    assert list(load_space_preset("hinas-proxy").controller_levels())[-1] == "outer"


def test_hnas_reward_uses_the_sampled_architectures_own_cost():
    space = load_space_preset("hnas-proxy")
    reward = HNASJointReward(space, reward_lambda=0.2)
    rng = np.random.RandomState(0)
    samples = [space.random_sample(rng) for _ in range(6)]
    costs = [space.cost(s, hr_size=(96, 96)).multadds for s in samples]  # 48x48 LR at x2
    rewards = [reward(30.0, s) for s in samples]
    for sample, cost, value in zip(samples, costs, rewards):
        assert value == pytest.approx(0.2 * 30.0 - 0.8 * 0.5e-8 * cost)
    assert len(set(costs)) > 1
    cheapest, dearest = int(np.argmin(costs)), int(np.argmax(costs))
    assert rewards[cheapest] > rewards[dearest]  # equal PSNR: the cheaper sample wins
    early = {**samples[0], "up/position": 0}
    late = {**samples[0], "up/position": 3}
    assert reward(30.0, late) > reward(30.0, early)  # an early upsampling cell runs the rest at HR


def test_deconas_complexity_is_the_bit_weighted_parameter_ratio():
    space = load_space_preset("deconas-proxy")
    reward = DeCoNASComplexityReward(space, lambda_cb=2.0)
    C = space.channels
    weight = {"conv": 9 * C * C, "dil": 9 * C * C, "sep": 9 * C + C * C}  # per bit (one input slab)
    labels = list(space.simplify())

    def expected(sample):
        selected = sum(weight[label.split("/")[2]] for label in labels if sample[label])
        branches = {label.rsplit("/", 1)[0] for label in labels if sample[label]}
        total = sum(weight[label.split("/")[2]] for label in labels)
        all_branches = {label.rsplit("/", 1)[0] for label in labels}
        return (selected + C * len(branches)) / (total + C * len(all_branches))

    assert reward.complexity({label: 0 for label in labels}) == 0.0
    assert reward.complexity({label: 1 for label in labels}) == 1.0
    rng = np.random.RandomState(3)
    for _ in range(5):
        sample = space.random_sample(rng)
        assert reward.complexity(sample) == pytest.approx(expected(sample))
        assert reward(32.0, sample) == pytest.approx(32.0 - 2.0 * expected(sample))
    light = {label: 0 for label in labels}
    light[labels[0]] = 1
    heavy = {label: 1 for label in labels}
    assert reward(32.0, light) > reward(32.0, heavy)


def test_options_presets_and_errors():
    hnas = load_strategy_preset("hierarchical_rl")
    deconas = load_strategy_preset("deconas_rl")
    assert isinstance(hnas, HierarchicalRL) and isinstance(deconas, HierarchicalRL)
    assert hnas.options["hidden_size"] == 100 and hnas.options["betas"] == (0.5, 0.999)
    assert hnas.options["weight_decay"] == 5e-4 and hnas.options["baseline_decay"] == 0.95
    assert deconas.options["num_layers"] == 2 and deconas.options["tanh_constant"] == 1.1
    assert deconas.options["baseline_target"] == "psnr" and deconas.options["reward"] == "deconas"
    assert isinstance(get("hierarchical_rl", parameter_sharing=True), HierarchicalRLOneShot)
    with pytest.raises(SRNASError, match="baseline_decay = 1.5"):
        get("hierarchical_rl", baseline_decay=1.5)
    with pytest.raises(SRNASError, match="preset = 'enas'"):
        get("hierarchical_rl", preset="enas")
    with pytest.raises(SRNASError, match=r"\['dedup'\] do not apply"):
        get("hierarchical_rl", parameter_sharing=True, dedup=False)
    with pytest.raises(SRNASError, match="unknown option"):
        get("hierarchical_rl", hiden_size=3)
    check_compatible("hierarchical_rl", load_space_preset("dlsr-proxy"))


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


@pytest.mark.parametrize("name", PROXIES)
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
    first_samples = [sample_key(m.sample) for m in strategy.engine.list_models()]
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
        second_samples = [sample_key(m.sample) for m in resumed.engine.list_models()]
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


@pytest.mark.parametrize("name", PROXIES)
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
