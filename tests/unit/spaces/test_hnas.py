"""HNAS space: released genotypes, cost model, labels, structure and one-shot supernets."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch

from srnas_nni.evaluation.cost import measure
from srnas_nni.nni_adapter.loader import nni  # noqa: F401
from srnas_nni.spaces import get, load_space_preset
from srnas_nni.spaces.base import NNI_MODULE_PREFIX
from srnas_nni.spaces.hnas import NORMAL_OPS, UPSAMPLING_OPS, CellStack, HNASCell
from srnas_nni.spaces.published import build_preset, get_preset

from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule  # noqa: E402
from nni.nas.strategy import DARTS, Proxyless, RandomOneShot  # noqa: E402

#: Parameters of the released genotypes as the official code builds them (C = 64, L = 12); they
#: include 24 frozen numbers of EDSR's two mean-shift convolutions, which are buffers here.
OFFICIAL_PARAMS = {("hnas_a", 2): 974_043, ("hnas_a", 4): 1_105_115, ("hnas_b", 2): 2_141_314,
                   ("hnas_b", 4): 2_502_274, ("hnas_c", 2): 2_542_569, ("hnas_c", 4): 2_690_281}
MEAN_SHIFT_PARAMS = 24


@functools.lru_cache(maxsize=None)
def _paper_space(scale: int):
    return get("hnas", scale=scale, channels=64, layers=12)


def _random_samples(space, count: int, seed: int = 0) -> list[dict]:
    rng = np.random.RandomState(seed)
    samples = []
    for _ in range(count):
        sample: dict = {}
        for mutable in space.simplify().values():
            mutable.random(sample, rng)
        samples.append(sample)
    return samples


@pytest.fixture(scope="module")
def proxy():
    return load_space_preset("hnas-proxy")


@pytest.fixture(scope="module")
def paper():
    return load_space_preset("hnas")


def test_labels_read_as_paths(proxy):
    labels = proxy.labels()
    expected = {"up/position"}
    for cell in ("normal", "up"):
        for i in range(4):
            for j in range(2):
                expected |= {f"{cell}/node{i}/input{j}", f"{cell}/node{i}/op{j}"}
    assert set(labels) == expected
    assert labels["normal/node0/op0"] == list(NORMAL_OPS)
    assert labels["up/node3/op1"] == list(UPSAMPLING_OPS)
    assert labels["normal/node2/input1"] == [0, 1, 2, 3]
    assert labels["up/position"] == [0, 1, 2, 3]


def test_paper_size_space_counts_like_the_controller(paper):
    # prod_i (i+2)^2 * 6^2 normal, prod_i (i+2)^2 * 5^2 upsampling, 12 positions: about 1.6e21.
    assert paper.info()["log10_size"] == pytest.approx(math.log10(14400**2 * 6**8 * 5**8 * 12))


@pytest.mark.parametrize("name", ["hnas_a", "hnas_b", "hnas_c"])
def test_released_genotypes_have_the_official_parameter_counts(name):
    preset = get_preset(name)
    assert preset.published == {} and "official" in preset.notes
    assert preset.space_kwargs == {"channels": 64, "layers": 12}
    for scale in (2, 4):
        space = _paper_space(scale)
        assert space.cost(preset.sample).params + MEAN_SHIFT_PARAMS == OFFICIAL_PARAMS[(name, scale)]


def test_hnas_a_x2_measured_is_the_official_model():
    model = build_preset("hnas_a", 2)
    report = measure(model, 2)
    assert report.params + MEAN_SHIFT_PARAMS == 974_043
    assert report.multadds == 408_217_190_400  # upsampling cell at index 9 (README --upsampling_Pos 9)
    body = model.body
    assert isinstance(body, CellStack) and body.upsampling_index == 9 and len(body.cells) == 12


def test_preset_genotypes_run_at_every_scale_on_odd_sizes():
    for name in ("hnas_a", "hnas_b", "hnas_c"):
        preset = get_preset(name)
        assert preset.scales == (2, 3, 4) and preset.sample["up/position"] in (9, 11)
    # The genotypes at a small width (running C = 64 on CPU is slow); x3 has no official figure.
    for scale in (2, 3, 4):
        model = get("hnas", scale=scale, channels=8, layers=12).freeze(get_preset("hnas_c").sample)
        with torch.no_grad():
            y = model(torch.rand(1, 3, 7, 9))
        assert y.shape == (1, 3, 7 * scale, 9 * scale) and torch.isfinite(y).all()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_cost_model_equals_measure_on_proxy_samples(scale):
    space = get("hnas", scale=scale, channels=8, layers=4)
    for sample in _random_samples(space, 7, seed=scale):
        counted = measure(space.freeze(sample), scale)
        predicted = space.cost(sample)
        assert (predicted.params, predicted.multadds) == (counted.params, counted.multadds), sample
    sample = _random_samples(space, 1, seed=10 + scale)[0]
    counted = measure(space.freeze(sample), scale, hr_size=(37, 53))  # odd size: ceil'd LR
    predicted = space.cost(sample, hr_size=(37, 53))
    assert (predicted.params, predicted.multadds) == (counted.params, counted.multadds)


def test_cost_model_equals_measure_at_paper_size(paper):
    sample = _random_samples(paper, 1, seed=3)[0]
    counted = measure(paper.freeze(sample), paper.scale)
    predicted = paper.cost(sample)
    assert (predicted.params, predicted.multadds) == (counted.params, counted.multadds)


def test_frozen_models_are_plain_and_json_samples_round_trip(proxy):
    for sample in _random_samples(proxy, 4, seed=5):
        sample = json.loads(json.dumps(sample))
        model = proxy.freeze(sample)
        assert not [m for m in model.modules() if type(m).__module__.startswith(NNI_MODULE_PREFIX)]
        y = model(torch.rand(1, 3, 17, 23))
        assert y.shape == (1, 3, 34, 46) and torch.isfinite(y).all()


def test_all_normal_cells_share_one_genotype(proxy):
    sample = _random_samples(proxy, 1, seed=6)[0]
    stack = proxy.freeze(sample).body
    normal = [cell for i, cell in enumerate(stack.cells) if i != stack.upsampling_index]
    assert len(normal) == 3 and all(isinstance(cell, HNASCell) for cell in normal)

    def signature(cell):
        return [[(edge.source, type(edge.op).__name__) for edge in edges] for edges in cell.nodes]

    assert all(signature(cell) == signature(normal[0]) for cell in normal)
    # ... but not the same weights.
    assert normal[0].preprocess0[1].weight is not normal[1].preprocess0[1].weight


def test_position_moves_the_upsampling_cell_and_costs_less_when_late(paper):
    sample = dict(get_preset("hnas_a").sample)
    costs = [paper.cost({**sample, "up/position": p}) for p in range(12)]
    assert len({c.params for c in costs}) == 1
    assert all(a.multadds > b.multadds for a, b in zip(costs, costs[1:]))
    proxy = load_space_preset("hnas-proxy")
    sample = _random_samples(proxy, 1, seed=7)[0]
    for position in range(4):
        stack = proxy.freeze({**sample, "up/position": position}).body
        assert stack.upsampling_index == position


def test_upsampling_ops_upsample_only_on_edges_from_the_cell_inputs(proxy):
    sample = _random_samples(proxy, 1, seed=8)[0]
    sample.update({"up/node1/input0": [2], "up/node1/op0": "sub_pixel",  # from node 0: identity
                   "up/node1/input1": [0], "up/node1/op1": "sub_pixel",  # from s0: conv + pixel shuffle
                   "up/node2/input0": [3], "up/node2/op0": "deconvolution"})  # stride-1 transposed conv
    cell = proxy.freeze(sample).body.cells[sample["up/position"]]
    between, from_input = cell.nodes[1]
    assert isinstance(between.op, torch.nn.Identity)
    assert isinstance(from_input.op[-1], torch.nn.PixelShuffle)
    assert cell.nodes[2][0].op.stride == (1, 1)


def _supernet_step(supernet, scale: int, size=(6, 7)) -> None:
    modules = [m for m in supernet.modules() if isinstance(m, BaseSuperNetModule)]
    memo: dict = {}
    for module in modules:
        memo.update(module.resample(memo))
    y = supernet(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale)
    y.abs().mean().backward()


def _export(supernet) -> dict:
    result: dict = {}
    for module in supernet.modules():
        if isinstance(module, BaseSuperNetModule):
            result.update(module.export(result))
    return result


def test_random_one_shot_supernet_samples_positions_and_exports():
    torch.manual_seed(0)
    space = get("hnas", scale=3, channels=4, layers=3)
    labels = set(space.simplify())
    supernet = RandomOneShot().mutate_model(space)
    kinds = {type(m).__name__ for m in supernet.modules() if isinstance(m, BaseSuperNetModule)}
    assert kinds == {"UpsamplingPositionPathSampling", "PathSamplingLayer", "PathSamplingInput"}
    for _ in range(3):
        _supernet_step(supernet, 3)
    assert any(p.grad is not None for p in supernet.parameters())
    exported = _export(supernet)
    assert set(exported) == labels
    frozen = get("hnas", scale=3, channels=4, layers=3).freeze(exported)
    assert frozen(torch.rand(1, 3, 5, 4)).shape == (1, 3, 15, 12)


def test_darts_supernet_mixes_positions_and_learns_their_weights():
    torch.manual_seed(0)
    space = get("hnas", scale=2, channels=4, layers=2, num_nodes=2)
    supernet = DARTS().mutate_model(space)
    position = next(m for m in supernet.modules() if type(m).__name__ == "UpsamplingPositionDifferentiable")
    _supernet_step(supernet, 2, size=(4, 5))
    alpha = next(iter(position.arch_parameters()))
    assert alpha.shape == (2,) and alpha.grad is not None and torch.isfinite(alpha.grad).all()
    exported = _export(supernet)
    assert set(exported) == set(space.simplify())
    assert set(position.export_probs({})["up/position"]) == {0, 1}
    get("hnas", scale=2, channels=4, layers=2, num_nodes=2).freeze(exported)


def test_proxyless_is_refused_clearly():
    with pytest.raises(TypeError, match="one-shot version"):
        Proxyless().mutate_model(get("hnas", scale=2, channels=4, layers=2, num_nodes=1))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="x5"):
        get("hnas", scale=5)
    with pytest.raises(ValueError, match="normal_ops"):
        get("hnas", normal_ops=["conv_7x7"])
