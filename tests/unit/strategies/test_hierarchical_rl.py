"""The hierarchical RL controller (HNAS / DeCoNAS): learning, sampling and replay, rewards, options. Its
searches (multi-trial, resume, parameter sharing): ``tests/integration/test_hierarchical_rl.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srnas_nni.errors import SRNASError
from srnas_nni.nni_adapter.loader import nni  # noqa: F401
from srnas_nni.spaces import load_space_preset
from srnas_nni.strategies import check_compatible, get, load_strategy_preset
from srnas_nni.strategies.hierarchical_rl import (
    ControllerConfig, DeCoNASComplexityReward, HierarchicalController, HierarchicalRL, HierarchicalRLOneShot,
    HierarchicalRLOptions, HNASJointReward, ReinforceLearner, controller_levels_of,
)

from nni.mutable import Categorical, CategoricalMultiple  # noqa: E402

from tests.support.spaces import PROXY_SPACES


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
    options = HierarchicalRLOptions(preset="hnas", learning_rate=0.003, entropy_weight=0.01, seed=0)
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


@pytest.mark.parametrize("name", PROXY_SPACES)
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
    assert hnas.options.hidden_size == 100 and hnas.options.betas == (0.5, 0.999)
    assert hnas.options.weight_decay == 5e-4 and hnas.options.baseline_decay == 0.95
    assert deconas.options.num_layers == 2 and deconas.options.tanh_constant == 1.1
    assert deconas.options.baseline_target == "psnr" and deconas.options.reward == "deconas"
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
