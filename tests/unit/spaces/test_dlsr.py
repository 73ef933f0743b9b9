"""DLSR space: the released model's figures, the exact cost model, shared labels, one-shot supernets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srnas_nni.evaluation.cost import measure
from srnas_nni.models.ops import esa_map_sizes
from srnas_nni.spaces import get, load_space_preset
from srnas_nni.spaces.base import NNI_MODULE_PREFIX, SelectedInputs
from srnas_nni.spaces.dlsr import REFINE_OPS, CellInputFusion, refine_op_weights
from srnas_nni.spaces.oneshot.common import PathSamplingInputSelect
from srnas_nni.spaces.oneshot.dlsr import DifferentiableCellInputFusion
from srnas_nni.spaces.published import build_preset, get_preset

from nni.mutable import SampleValidationError, frozen_context  # noqa: E402
from nni.nas.nn.pytorch import LayerChoice, MutableModule  # noqa: E402
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule  # noqa: E402
from nni.nas.strategy import DARTS, GumbelDARTS, Proxyless, RandomOneShot  # noqa: E402

REFINE_LABELS = ["cell/refine0", "cell/refine1", "cell/refine2"]
INPUT_LABELS = [f"network/cell{k}/inputs" for k in range(3, 7)]
RELEASED = get_preset("dlsr").sample


def _random_samples(space, count: int, seed: int = 0) -> list[dict]:
    rng = np.random.RandomState(seed)
    return [{label: mutable.random(random_state=rng) for label, mutable in space.simplify().items()}
            for _ in range(count)]


def _assert_plain(model: torch.nn.Module) -> None:
    leftovers = [type(m).__name__ for m in model.modules()
                 if type(m).__module__.startswith(NNI_MODULE_PREFIX) or isinstance(m, MutableModule)]
    assert not leftovers, leftovers


def _supernet_modules(model) -> list[BaseSuperNetModule]:
    return [m for m in model.modules() if isinstance(m, BaseSuperNetModule)]


def _resample(model) -> dict:
    memo: dict = {}
    for module in _supernet_modules(model):
        memo.update(module.resample(memo))
    return memo


def _export(model) -> dict:
    memo: dict = {}
    for module in _supernet_modules(model):
        memo.update(module.export(memo))
    return memo


# ----------------------------------------------------------------------------------------------
# The published model


@pytest.mark.parametrize("scale, params, published_multadds", [(2, 327_804, 68e9), (4, 343_392, 18e9)])
def test_released_model_lands_on_the_papers_mult_adds(scale, params, published_multadds):
    report = measure(build_preset("dlsr", scale), scale)
    assert report.params == params  # the official x2 model rebuilt; x4 swaps in a PixelShuffle(4) tail
    assert abs(report.multadds / published_multadds - 1) <= 0.02, report.multadds
    assert abs(report.params / 0.33e6 - 1) <= 0.05  # "about 0.33M"
    assert get_preset("dlsr").published[scale]["multadds"] == published_multadds


def test_released_model_structure_follows_the_official_code():
    network = build_preset("dlsr", 2)
    _assert_plain(network)
    for cell in network.cells:
        kernels = [op[1][0].kernel_size for op in cell.refine]  # sep conv: ReLU, (depthwise, pointwise) x 2
        assert kernels == [(3, 3), (5, 5), (5, 5)]
        convs = [m for op in cell.refine for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 12 and all(conv.bias is None for conv in convs)
    chosen = {key: fusion.select.chosen for key, fusion in network.fusions.items()}
    assert chosen == {"3": [1, 0], "4": [2, 1], "5": [3, 2], "6": [0, 2]}


# ----------------------------------------------------------------------------------------------
# Labels and size


def test_labels_values_and_size():
    space = get("dlsr")
    labels = space.labels()
    assert list(labels) == REFINE_LABELS + INPUT_LABELS
    for label in REFINE_LABELS:
        assert labels[label] == list(REFINE_OPS)
    for k, label in zip(range(3, 7), INPUT_LABELS):
        assert labels[label] == list(range(k - 1))
    info = space.info()
    assert info["labels"]["network/cell6/inputs"]["n_chosen"] == 2
    assert round(10 ** info["log10_size"]) == 729 * 180 == 131_220


def test_yaml_presets():
    paper = load_space_preset("dlsr")
    assert (paper.channels, paper.num_cells, paper.scale) == (48, 6, 2)
    assert round(10 ** paper.info()["log10_size"]) == 131_220
    proxy = load_space_preset("dlsr-proxy")
    assert proxy.channels <= 16 and proxy.num_cells <= 4
    assert list(proxy.labels()) == REFINE_LABELS + ["network/cell3/inputs", "network/cell4/inputs"]


def test_refine_label_is_shared_by_all_cells():
    space = get("dlsr", channels=8, num_cells=4)
    choices = [m for m in space.modules() if isinstance(m, LayerChoice)]
    assert len(choices) == 3 * 4 and {c.label for c in choices} == set(REFINE_LABELS)
    sample = {**_random_samples(space, 1)[0], "cell/refine0": "conv_7x7", "cell/refine1": "dil_conv_5x5",
              "cell/refine2": "sep_conv_3x3"}
    network = space.freeze(sample)
    for cell in network.cells:  # one decision, every cell
        assert cell.refine[0].kernel_size == (7, 7)
        assert cell.refine[1][1][0].dilation == (2, 2) and cell.refine[1][1][0].kernel_size == (5, 5)
        assert len(cell.refine[2]) == 4 and cell.refine[2][1][0].kernel_size == (3, 3)


def test_invalid_samples_are_refused_by_freeze_and_cost():
    space = get("dlsr", channels=8, num_cells=4)
    sample = _random_samples(space, 1)[0]
    for bad, label in [({**sample, "cell/refine1": "conv_9x9"}, "cell/refine1"),
                       ({**sample, "network/cell4/inputs": [1, 1]}, "network/cell4/inputs"),
                       ({**sample, "network/cell4/inputs": [0, 3]}, "network/cell4/inputs")]:
        with pytest.raises(SampleValidationError, match=label):
            space.freeze(bad)
        with pytest.raises(SampleValidationError, match=label):
            space.cost(bad)
    with pytest.raises(SampleValidationError):
        space.cost({k: v for k, v in sample.items() if k != "cell/refine2"})


@pytest.mark.parametrize("kwargs", [{"scale": 5}, {"channels": 18}, {"refine_ops": ["conv_3x3", "rcab"]},
                                    {"num_cells": 0}])
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(Exception, match="DLSR|channels|refine_ops|num_cells|bad arguments"):
        get("dlsr", **kwargs)


# ----------------------------------------------------------------------------------------------
# Frozen networks


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_frozen_networks_are_plain_and_keep_any_input_size(scale):
    space = get("dlsr", scale=scale, channels=8, num_cells=4)
    torch.manual_seed(0)
    for sample in _random_samples(space, 2, seed=scale):
        assert json.loads(json.dumps(sample)) == sample
        network = space.freeze(sample)
        _assert_plain(network)
        for height, width in [(17, 23), (8, 8), (1, 1), (2, 5)]:  # ESA's tiny-input path included
            with torch.no_grad():
                y = network(torch.rand(1, 3, height, width))
            assert y.shape == (1, 3, height * scale, width * scale)
            assert torch.isfinite(y).all()


def test_a_searched_cell_reads_the_chosen_outputs_in_order():
    space = get("dlsr", channels=8, num_cells=5)
    sample = {**_random_samples(space, 1)[0], "network/cell5/inputs": [3, 0]}
    network = space.freeze(sample).eval()
    outputs, inputs = [], []

    def record(module, args, out) -> None:
        inputs.append(args[0])
        outputs.append(out)

    for cell in network.cells:
        cell.register_forward_hook(record)
    with torch.no_grad():
        network(torch.rand(1, 3, 16, 16))
        fusion = network.fusions["5"]
        expected = F.leaky_relu(fusion.fuse(torch.cat([outputs[3], outputs[0]], dim=1)), 0.05)
    assert torch.allclose(inputs[4], expected)
    assert torch.equal(inputs[1], outputs[0])  # cell 2 is chained to cell 1


def test_esa_geometry_is_the_official_one_for_ordinary_sizes():
    for side in (15, 17, 180, 320, 360, 640):
        strided = (side - 3) // 2 + 1
        assert esa_map_sizes(side) == (strided, (strided - 7) // 3 + 1)


# ----------------------------------------------------------------------------------------------
# Cost model


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_cost_model_equals_the_measured_count_at_proxy_size(scale):
    space = load_space_preset("dlsr-proxy", scale=scale)
    for i, sample in enumerate(_random_samples(space, 7, seed=scale)):
        hr_size = [(720, 1280), (17, 23), (64, 50)][i % 3]
        counted = measure(space.freeze(sample), scale, hr_size=hr_size)
        predicted = space.cost(sample, hr_size=hr_size)
        assert (predicted.params, predicted.multadds) == (counted.params, counted.multadds), (sample, hr_size)


def test_cost_model_equals_the_measured_count_at_paper_size():
    space = get("dlsr", scale=3)
    for sample in [RELEASED, _random_samples(space, 1, seed=7)[0]]:
        counted = measure(space.freeze(sample), 3)
        predicted = space.cost(sample)
        assert (predicted.params, predicted.multadds) == (counted.params, counted.multadds)


def test_only_the_refine_ops_move_the_cost():
    space = get("dlsr", scale=2)
    base = space.cost(RELEASED)
    rewired = space.cost({**RELEASED, "network/cell6/inputs": [4, 3], "network/cell5/inputs": [0, 1]})
    assert rewired == base  # every fusion is 2 * channels -> channels, whatever it reads
    heavier = space.cost({**RELEASED, "cell/refine0": "conv_7x7"})
    delta = 6 * (refine_op_weights("conv_7x7", 48) - refine_op_weights("sep_conv_3x3", 48))
    assert heavier.params - base.params == delta
    assert heavier.multadds - base.multadds == delta * 360 * 640  # all refine ops run at LR size
    costs = {op: space.cost({**RELEASED, "cell/refine1": op}).multadds for op in REFINE_OPS}
    assert min(costs, key=costs.get) == "conv_1x1" and max(costs, key=costs.get) == "conv_7x7"


# ----------------------------------------------------------------------------------------------
# One-shot


def test_random_one_shot_supernet_samples_shares_and_exports():
    space = load_space_preset("dlsr-proxy")
    supernet = RandomOneShot().mutate_model(space)
    kinds = {type(m).__name__ for m in _supernet_modules(supernet)}
    assert kinds == {"PathSamplingLayer", "PathSamplingInputSelect"}
    torch.manual_seed(0)
    for _ in range(3):
        sampled = _resample(supernet)
        assert set(sampled) == set(space.simplify())
        for label in REFINE_LABELS:  # every cell runs the one sampled op of its stage
            assert {m._sampled for m in _supernet_modules(supernet) if m.label == label} == {sampled[label]}
        y = supernet(torch.rand(2, 3, 17, 23))
        assert y.shape == (2, 3, 34, 46)
        y.mean().backward()
    exported = json.loads(json.dumps(_export(supernet)))
    for network in (load_space_preset("dlsr-proxy").freeze(exported), supernet.freeze(exported)):
        _assert_plain(network)
        assert network(torch.rand(1, 3, 9, 11)).shape == (1, 3, 18, 22)


@pytest.mark.parametrize("strategy_class", [DARTS, GumbelDARTS])
def test_darts_supernet_relaxes_ops_and_connections_like_dlsr(strategy_class):
    space = load_space_preset("dlsr-proxy")
    channels = space.channels
    supernet = strategy_class().mutate_model(space)
    modules = _supernet_modules(supernet)
    fusions = [m for m in modules if isinstance(m, DifferentiableCellInputFusion)]
    assert [f.fuse.in_channels for f in fusions] == [2 * channels, 3 * channels]  # DLSR's wide 1x1
    alphas = {}
    for m in modules:
        for p in m.arch_parameters():
            assert alphas.setdefault(m.label, p) is p  # one alpha per label, shared by all cells
    assert sorted(alphas) == sorted(space.simplify())
    y = supernet(torch.rand(2, 3, 17, 23))
    y.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in alphas.values())

    with torch.no_grad():
        alphas["cell/refine1"].copy_(torch.arange(9.0))
        alphas["network/cell4/inputs"].copy_(torch.tensor([2.0, 0.0, 5.0]))
    exported = _export(supernet)
    assert exported["cell/refine1"] == REFINE_OPS[-1] and exported["network/cell4/inputs"] == [2, 0]
    frozen = supernet.freeze(exported)
    _assert_plain(frozen)
    fusion = frozen.fusions["4"]
    assert isinstance(fusion, CellInputFusion) and isinstance(fusion.select, SelectedInputs)
    weights = fusions[1]._softmax(alphas["network/cell4/inputs"]).detach()
    wide = fusions[1].fuse.weight.detach()
    if strategy_class is DARTS:  # deterministic softmax: the inherited 1x1 is the chosen, weighted columns
        expected = torch.cat([wide[:, 2 * channels:3 * channels] * weights[2], wide[:, :channels] * weights[0]], 1)
        assert torch.allclose(fusion.fuse.weight, expected)
    assert frozen(torch.rand(1, 3, 9, 11)).shape == (1, 3, 18, 22)
    assert measure(frozen, 2).params == space.cost(exported).params


def test_path_sampling_hook_only_takes_input_select():
    space = get("dlsr", channels=8, num_cells=3)
    select = space.network.fusions["3"].select
    with frozen_context():  # as in OneShotStrategy.mutate_model
        converted = PathSamplingInputSelect.mutate(select, "select", {}, {})
    assert isinstance(converted, PathSamplingInputSelect) and converted.label == "network/cell3/inputs"
    assert PathSamplingInputSelect.mutate(space.network.stem, "stem", {}, {}) is None


def test_proxyless_is_refused():
    with pytest.raises((TypeError, ValueError), match="InputSelect|reduction"):
        Proxyless().mutate_model(get("dlsr", channels=8, num_cells=3))
