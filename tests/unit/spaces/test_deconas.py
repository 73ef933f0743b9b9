"""DeCoNAS search space: the released DeCoNASNet, the cost model, shared decisions, one-shot forms."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from srnas_nni.evaluation.cost import measure
from srnas_nni.spaces import get, load_space_preset
from srnas_nni.spaces.base import NNI_MODULE_PREFIX
from srnas_nni.spaces.deconas import BRANCHES, DenseLayer, DenseLayerSpace
from srnas_nni.spaces.published import build_preset, get_preset

from nni.mutable import SampleValidationError
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule
from nni.nas.strategy import DARTS, RandomOneShot

#: DeCoNASNet x2 as released (layer-major, then input, then branch conv/sep/dil).
DECONASNET_BITS = "1 1 1 | 1 1 0 1 0 0 | 0 1 1 0 0 0 0 1 0 | 0 1 0 0 1 1 1 0 0 0 0 1"
PROXY = dict(channels=8, num_blocks=2, num_layers=3)


def random_sample(space, rng: random.Random) -> dict:
    return {label: rng.choice(values) for label, values in space.labels().items()}


def supernet_modules(space):
    return [m for m in space.modules() if isinstance(m, BaseSuperNetModule)]


def has_nni_module(model) -> bool:
    return any(type(m).__module__.startswith(NNI_MODULE_PREFIX) for m in model.modules())


# ---------------------------------------------------------------- published architecture


def test_deconasnet_preset_matches_published_parameters():
    preset = get_preset("deconasnet")
    assert preset.scales == (2,)
    report = measure(build_preset("deconasnet", 2), 2)
    published = preset.published[2]["params"]
    assert abs(report.params - published) / published < 0.01
    assert report.params == 1_713_795  # the official TensorFlow graph's count, rebuilt
    space = get("deconas", scale=2, **preset.space_kwargs)
    assert preset.sample == space.sample_from_bits(DECONASNET_BITS)
    cost = space.cost(preset.sample)
    assert (cost.params, cost.multadds) == (report.params, report.multadds)


def test_deconasnet_decodes_as_the_paper_and_dead_fusion_only_adds_parameters():
    space = get("deconas", scale=2)
    sample = space.sample_from_bits(DECONASNET_BITS)
    layers = space.freeze(sample).blocks[0].layers
    assert [layer.chosen for layer in layers] == [
        {"conv": [0], "sep": [0], "dil": [0]},
        {"conv": [0, 1], "sep": [0]},
        {"sep": [0, 2], "dil": [0]},
        {"conv": [2], "sep": [0, 1], "dil": [1, 3]},
    ]
    plain = space.cost(sample)
    official = get("deconas", scale=2, keep_unused_last_fusion=True).cost(sample)
    assert plain.params == 1_693_251
    assert official.params - plain.params == 5 * 64 * 64 + 64
    assert official.multadds == plain.multadds


# ---------------------------------------------------------------- cost model


@pytest.mark.parametrize("kwargs, count", [
    (dict(scale=2, **PROXY), 20),
    (dict(scale=3, **PROXY, search_fusions=True), 6),
    (dict(scale=4, channels=8, num_blocks=3, num_layers=2, branches=["sep", "dil"], search_fusions=True,
          keep_unused_last_fusion=True), 6),
    (dict(scale=2, channels=8, num_blocks=1, num_layers=4, attention_reduction=0), 6),
])
def test_cost_model_equals_measure_on_random_samples(kwargs, count):
    space = get("deconas", **kwargs)
    rng = random.Random(7)
    samples = [random_sample(space, rng) for _ in range(count)]
    samples += [{label: value for label in space.labels()} for value in (0, 1)]
    for index, sample in enumerate(samples):
        model = space.freeze(sample)
        # The default 1280x720 output, and now and then an odd one (ceil'd LR size, x3 remainders).
        for hr_size in ((720, 1280), (31, 47))[: 2 if index % 4 == 0 else 1]:
            report = measure(model, space.scale, hr_size)
            cost = space.cost(sample, hr_size)
            assert (cost.params, cost.multadds) == (report.params, report.multadds), sample


def test_cost_model_equals_measure_at_paper_size():
    space = load_space_preset("deconas")
    sample = random_sample(space, random.Random(3))
    report = measure(space.freeze(sample), 2)
    cost = space.cost(sample)
    assert (cost.params, cost.multadds) == (report.params, report.multadds)


def test_cost_model_rejects_bad_samples():
    space = get("deconas", **PROXY)
    sample = {label: 0 for label in space.labels()}
    with pytest.raises(SampleValidationError, match="dnb/layer0/conv/input0"):
        space.cost({**sample, "dnb/layer0/conv/input0": 2})
    with pytest.raises(SampleValidationError, match="dnb/layer2/dil/input2"):
        space.cost({k: v for k, v in sample.items() if k != "dnb/layer2/dil/input2"})
    with pytest.raises(SampleValidationError):
        space.cost({**sample, "up/position": 0})


# ---------------------------------------------------------------- labels and structure


def test_labels_at_paper_size():
    space = load_space_preset("deconas")
    labels = space.labels()
    assert len(labels) == 30
    assert all(values == [0, 1] for values in labels.values())
    expected = {f"dnb/layer{c}/{kind}/input{i}" for c in range(4) for i in range(c + 1) for kind in BRANCHES}
    assert set(labels) == expected
    assert math.isclose(space.info()["log10_size"], 30 * math.log10(2))
    # The published order: layer-major, then input, then branch.
    order = [bit.label for bit in space.bit_mutables()]
    assert order[:6] == ["dnb/layer0/conv/input0", "dnb/layer0/sep/input0", "dnb/layer0/dil/input0",
                         "dnb/layer1/conv/input0", "dnb/layer1/sep/input0", "dnb/layer1/dil/input0"]


def test_fusion_search_adds_eight_labels():
    space = get("deconas", search_fusions=True)
    labels = set(space.labels())
    assert len(labels) == 38
    assert {f"dnb/fusion/input{i}" for i in range(4)} <= labels
    assert {f"global_fusion/input{i}" for i in range(4)} <= labels
    sample = {label: 0 for label in labels}
    model = space.freeze(sample)
    # Only the newest output is fused: one C-channel input per fusion.
    assert model.blocks[0].local_fusion.chosen == [4]
    assert model.global_fusion.chosen == [4]
    assert model.global_fusion.conv.in_channels == 64


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_frozen_model_is_plain_and_scales_any_input(scale):
    space = get("deconas", scale=scale, **PROXY, search_fusions=True)
    rng = random.Random(scale)
    for _ in range(3):
        sample = json.loads(json.dumps(random_sample(space, rng)))
        model = space.freeze(sample)
        assert not has_nni_module(model)
        assert model.scale == scale and model.in_channels == 3
        x = torch.rand(2, 3, 17, 23)
        y = model(x)
        assert y.shape == (2, 3, 17 * scale, 23 * scale)
        assert torch.isfinite(y).all()
        y.mean().backward()


def test_decisions_are_shared_by_all_blocks():
    space = get("deconas", scale=2)
    off = {label: 0 for label in space.labels()}
    on = {**off, "dnb/layer2/conv/input1": 1}
    model = space.freeze(on)
    assert all(block.layers[2].chosen == {"conv": [1]} for block in model.blocks)
    assert all(block.layers[c].chosen == {} for block in model.blocks for c in (0, 1, 3))
    # One bit switches a conv 3x3 (C -> C) on in each of the 4 blocks.
    before, after = space.cost(off), space.cost(on)
    pixels = 360 * 640
    assert after.params - before.params == 4 * (9 * 64 * 64 + 64)
    assert after.multadds - before.multadds == 4 * 9 * 64 * 64 * pixels


def test_branch_width_follows_its_inputs():
    space = get("deconas", scale=2)
    off = {label: 0 for label in space.labels()}
    one = {**off, "dnb/layer3/sep/input0": 1}
    three = {**one, "dnb/layer3/sep/input2": 1, "dnb/layer3/sep/input3": 1}
    sep = space.freeze(three).blocks[0].layers[3].branches["sep"].op
    assert sep[0].groups == sep[0].in_channels == 3 * 64  # depthwise over the 3 concatenated inputs
    assert sep[0].bias is None and sep[1].in_channels == 3 * 64 and sep[1].out_channels == 64
    # Separable: depthwise 9 per channel, pointwise C per channel; both scale with the inputs.
    delta = space.cost(three).params - space.cost(one).params
    assert delta == 4 * 2 * 64 * (9 + 64)
    dil = space.freeze({**off, "dnb/layer1/dil/input1": 1}).blocks[0].layers[1].branches["dil"].op
    assert dil.dilation == (3, 3) and dil.padding == (3, 3)


def test_empty_layer_passes_the_latest_state_on():
    layer = DenseLayer(4, {}, attention_reduction=0)
    states = [torch.randn(1, 4, 5, 6) for _ in range(3)]
    assert torch.equal(layer(states), torch.relu(states[-1]))
    assert sum(p.numel() for p in layer.parameters()) == 0
    # Active branches are averaged, then ReLU.
    layer = DenseLayer(4, {"conv": [0], "dil": [1, 2]}, attention_reduction=0)
    expected = torch.relu((layer.branches["conv"](states[0])
                           + layer.branches["dil"](torch.cat(states[1:], 1))) / 2)
    assert torch.allclose(layer(states), expected)


def test_sample_from_bits_and_constructor_checks():
    space = get("deconas", **PROXY)
    assert len(space.sample_from_bits("1" * 18)) == 18
    with pytest.raises(ValueError):
        space.sample_from_bits("1" * 17)
    with pytest.raises(ValueError):
        get("deconas", scale=5)
    with pytest.raises(Exception):
        get("deconas", branches=["conv", "pool"])


def test_proxy_preset_is_small():
    space = load_space_preset("deconas-proxy")
    assert len(space.labels()) == 18
    sample = {label: 1 for label in space.labels()}
    assert space.cost(sample).params < 60_000


# ---------------------------------------------------------------- one-shot


@pytest.mark.parametrize("search_fusions", [False, True])
def test_random_one_shot_supernet(search_fusions):
    space = get("deconas", **PROXY, search_fusions=search_fusions)
    labels = space.labels()
    RandomOneShot().mutate_model(space)
    modules = supernet_modules(space)
    assert any(isinstance(m, DenseLayerSpace) for m in modules)
    x = torch.rand(2, 3, 17, 23)
    for _ in range(2):
        memo: dict = {}
        for module in modules:
            memo.update(module.resample(memo))
        assert set(memo) == set(labels)  # shared labels sampled once, every label sampled
        space.zero_grad(set_to_none=True)
        space(x).mean().backward()
        trained = []
        for layer in (m for m in modules if isinstance(m, DenseLayerSpace)):
            for kind, inputs in layer.chosen.items():
                slab = layer.weights["sep_pointwise" if kind == "sep" else f"{kind}_weight"]
                if not inputs:  # branches off in this sample are not trained
                    assert slab.grad is None
                elif not search_fusions:  # every layer feeds its local fusion: all sampled slabs train
                    assert slab.grad is not None
                trained.append(slab.grad is not None)
        assert any(trained) or not any(layer.chosen[k] for layer in modules
                                       if isinstance(layer, DenseLayerSpace) for k in layer.chosen)
    exported: dict = {}
    for module in modules:
        exported.update(module.export(exported))
    assert set(exported) == set(labels)
    # The frozen subnet inherits the supernet's weights: same function for that path.
    model = space.freeze(exported)
    assert not has_nni_module(model)
    for module in modules:
        module.resample(dict(exported))
    space.eval()
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        assert torch.allclose(space(x), model(x), atol=1e-6)


def test_darts_supernet():
    space = get("deconas", **PROXY, search_fusions=True)
    labels = space.labels()
    DARTS().mutate_model(space)
    modules = supernet_modules(space)
    alphas = {p for m in modules if hasattr(m, "arch_parameters") for p in m.arch_parameters()}
    assert len(alphas) == len(labels)  # one alpha per label, shared by the blocks
    space(torch.rand(2, 3, 17, 23)).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in alphas)
    exported: dict = {}
    probs: dict = {}
    for module in modules:
        exported.update(module.export(exported))
        probs.update(module.export_probs(probs))
    assert set(exported) == set(labels) == set(probs)
    model = space.freeze(exported)
    assert not has_nni_module(model)
    assert model(torch.rand(1, 3, 9, 10)).shape == (1, 3, 18, 20)
