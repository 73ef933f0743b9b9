"""HiNAS space: labels, preset, cost model, the width trellis and its one-shot supernets."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from srnas_nni.evaluation.cost import measure
from srnas_nni.nni_adapter.loader import nni  # noqa: F401
from srnas_nni.spaces import load_space_preset
from srnas_nni.spaces.base import NNI_MODULE_PREFIX
from srnas_nni.spaces.hinas import DEFAULT_OPS, HiNASSpace, decode_width_path
from srnas_nni.spaces.oneshot.hinas import HiNASNodeDifferentiable, WidthTrellisDifferentiable, WidthTrellisPathSampling
from srnas_nni.spaces.published import get_preset

from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule  # noqa: E402
from nni.nas.strategy import DARTS, RandomOneShot  # noqa: E402

PROXY = dict(base_width=8, stem_channels=16, num_layers=2)


def _samples(space: HiNASSpace, count: int, seed: int = 0) -> list[dict]:
    rng = np.random.RandomState(seed)
    return [space.random_sample(rng) for _ in range(count)]


def _base_sample(space: HiNASSpace, op: str = "conv_3x3", move: str = "same") -> dict:
    sample = {}
    for label in space.labels():
        if label.startswith("outer/"):
            sample[label] = move
        elif label.endswith("/inputs"):
            sample[label] = [0, 1]
        else:
            sample[label] = op
    return sample


def _supernet_modules(model: nn.Module) -> list[BaseSuperNetModule]:
    return [m for m in model.modules() if isinstance(m, BaseSuperNetModule)]


def test_labels_read_as_paths():
    space = load_space_preset("hinas-proxy")
    labels = space.labels()
    expected = {f"outer/layer{layer}/width" for layer in range(2)}
    for layer in range(2):
        for i in range(3):
            expected |= {f"layer{layer}/node{i}/inputs", f"layer{layer}/node{i}/op0", f"layer{layer}/node{i}/op1"}
    assert set(labels) == expected
    assert labels["outer/layer1/width"] == ["narrower", "same", "wider"]
    assert labels["layer0/node2/inputs"] == [0, 1, 2, 3]  # node 2 reads 2 of 4 states
    assert labels["layer1/node0/op1"] == list(DEFAULT_OPS)
    info = space.info()
    assert info["labels"]["layer0/node2/inputs"]["count"] == 6
    assert info["log10_size"] == pytest.approx(2 * np.log10(3) + 2 * np.log10(1 * 3 * 6 * 6**6))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_preset_builds_and_cost_model_matches(scale):
    preset = get_preset("hinas")
    assert preset.published == {} and "representative" in preset.notes
    space = HiNASSpace(scale=scale, **preset.space_kwargs)
    model = space.freeze(preset.sample)
    assert model.body.levels == [1, 1]
    report = measure(model, scale)
    assert (report.params, report.multadds) == tuple(space.cost(preset.sample).__dict__.values())
    y = model(torch.rand(1, 3, 17, 23))
    assert y.shape == (1, 3, 17 * scale, 23 * scale) and torch.isfinite(y).all()


def test_cost_model_is_exact_on_random_samples_and_odd_sizes():
    for kwargs in (dict(PROXY, scale=3), dict(PROXY, scale=4, num_layers=4, batch_norm=False),
                   dict(PROXY, scale=2, num_nodes=2, ops=["conv_3x3", "identity", "zero"])):
        space = HiNASSpace(**kwargs)
        for sample in _samples(space, 5, seed=len(kwargs)):
            for hr_size in ((720, 1280), (97, 61)):
                counted = measure(space.freeze(sample), space.scale, hr_size=hr_size)
                assert tuple(space.cost(sample, hr_size).__dict__.values()) == (counted.params, counted.multadds)


def test_cost_model_is_exact_at_paper_size():
    space = load_space_preset("hinas")
    sample = _samples(space, 1, seed=5)[0]
    counted = measure(space.freeze(sample), space.scale)
    assert tuple(space.cost(sample).__dict__.values()) == (counted.params, counted.multadds)


def test_frozen_network_is_plain_and_right_sized_at_every_scale():
    for scale in (2, 3, 4):
        space = HiNASSpace(scale=scale, **PROXY)
        for sample in _samples(space, 2, seed=scale):
            model = space.freeze(sample)
            assert not [m for m in model.modules() if type(m).__module__.startswith(NNI_MODULE_PREFIX)]
            y = model(torch.rand(2, 3, 17, 23))
            assert y.shape == (2, 3, 17 * scale, 23 * scale) and torch.isfinite(y).all()


def test_layer_wise_sharing_one_architecture_per_layer():
    space = load_space_preset("hinas-proxy")
    trellis = space.network.body
    # Every width copy of a layer carries the same labels (one decision), layers differ.
    for layer in range(2):
        label_sets = {level: sorted(str(m.label) for m in trellis.cells[f"{layer}_{level}"].modules()
                                    if hasattr(m, "label"))
                      for level in trellis.layout.reachable[layer]}
        assert len({tuple(v) for v in label_sets.values()}) == 1
        assert all(lab.startswith(f"layer{layer}/") for lab in label_sets[0])
    # Changing layer 0's op changes layer 0's cell only.
    sample = _base_sample(space)
    changed = {**sample, "layer0/node1/op0": "sep_conv_5x5"}
    before, after = space.freeze(sample), space.freeze(changed)
    assert "kernel_size=(5, 5)" in repr(after.body.cells[0].nodes[1].op0)
    assert "kernel_size=(5, 5)" not in repr(before.body.cells[0].nodes[1].op0)
    assert repr(after.body.cells[1]) == repr(before.body.cells[1])


def test_width_path_moves_and_routers():
    space = load_space_preset("hinas-proxy")
    assert decode_width_path(["wider", "wider", "wider", "narrower"], 3) == [1, 2, 2, 1]
    assert decode_width_path(["narrower", "same"], 3) == [0, 0]
    same = _base_sample(space, move="same")
    wider = {**same, "outer/layer0/width": "wider"}
    off_trellis = {**same, "outer/layer0/width": "narrower"}  # no narrower level: stays
    assert space.cost(off_trellis) == space.cost(same)
    assert space.cost(wider).multadds > space.cost(same).multadds
    model = space.freeze(wider)
    assert model.body.levels == [1, 1]
    assert isinstance(model.body.routers[0], nn.Sequential)  # 1x1 conv where the width changes
    assert model.body.routers[0][0].kernel_size == (1, 1)
    assert isinstance(model.body.routers[1], nn.Identity)  # nothing where it does not
    assert model.body.cells[1].nodes[0].op0[1].in_channels == 12  # node width 1.5 x 8


def test_random_one_shot_supernet_samples_paths_and_exports_frozen_models():
    torch.manual_seed(0)
    space = HiNASSpace(scale=2, **PROXY)
    supernet = RandomOneShot().mutate_model(space)
    modules = _supernet_modules(supernet)
    assert any(isinstance(m, WidthTrellisPathSampling) for m in modules)
    seen_paths = set()
    for _ in range(6):
        memo = {}
        for m in modules:
            memo.update(m.resample(memo))
        assert set(memo) == set(space.labels())
        y = supernet(torch.rand(2, 3, 17, 23))
        assert y.shape == (2, 3, 34, 46)
        y.mean().backward()
        seen_paths.add(tuple(decode_width_path([memo[f"outer/layer{layer}/width"] for layer in range(2)], 3)))
    assert len(seen_paths) > 1
    exported = {}
    for m in modules:
        exported.update(m.export(exported))
    model = supernet.freeze(exported)
    assert not [m for m in model.modules() if type(m).__module__.startswith(NNI_MODULE_PREFIX)]
    assert model(torch.rand(1, 3, 17, 23)).shape == (1, 3, 34, 46)
    counted = measure(model, 2)
    assert tuple(space.cost(exported).__dict__.values()) == (counted.params, counted.multadds)
    # The frozen model keeps the supernet's weights for its path.
    trellis = next(m for m in modules if isinstance(m, WidthTrellisPathSampling))
    level = model.body.levels[0]
    assert torch.equal(model.body.cells[0].preprocess0[1].weight, trellis.cells[f"0_{level}"].preprocess0[1].weight)


def test_darts_supernet_weights_the_trellis_and_exports_by_viterbi():
    torch.manual_seed(0)
    space = HiNASSpace(scale=2, **PROXY)
    supernet = DARTS().mutate_model(space)
    modules = _supernet_modules(supernet)
    trellis = next(m for m in modules if isinstance(m, WidthTrellisDifferentiable))
    nodes = [m for m in modules if isinstance(m, HiNASNodeDifferentiable)]
    # LWAS: the copies of a node at different widths share their alphas.
    layer1_node2 = [n for n in nodes if str(n.inputs_label) == "layer1/node2/inputs"]
    assert len(layer1_node2) == 3 and all(n._arch_alpha[0] is layer1_node2[0]._arch_alpha[0] for n in layer1_node2)
    y = supernet(torch.rand(2, 3, 17, 23))
    assert y.shape == (2, 3, 34, 46)
    y.mean().backward()
    arch = [p for m in modules for p in m.arch_parameters()]
    assert all(p.grad is not None for p in arch)
    # Favour 0 -> 1 at layer 0 and 1 -> 2 at layer 1: Viterbi follows it.
    with torch.no_grad():
        trellis._arch_beta["0_0"].copy_(torch.tensor([0.0, 0.0, 5.0]))
        trellis._arch_beta["1_1"].copy_(torch.tensor([0.0, 0.0, 5.0]))
    assert trellis.viterbi_levels() == [1, 2]
    exported = {}
    for m in modules:
        exported.update(m.export(exported))
    assert exported["outer/layer0/width"] == "wider" and exported["outer/layer1/width"] == "wider"
    assert set(exported) == set(space.labels())
    model = supernet.freeze(exported)
    assert model.body.levels == [1, 2]
    assert model(torch.rand(1, 3, 17, 23)).shape == (1, 3, 34, 46)
    counted = measure(model, 2)
    assert tuple(space.cost(exported).__dict__.values()) == (counted.params, counted.multadds)
