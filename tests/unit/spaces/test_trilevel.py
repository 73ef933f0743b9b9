"""Trilevel NAS space: labels, freezing, the exact cost model, the path module and its supernets."""

from __future__ import annotations

import numpy as np
import warnings

import pytest
import torch

from srnas_nni.evaluation.cost import measure
from srnas_nni.spaces import get, load_space_preset
from srnas_nni.spaces.base import NNI_MODULE_PREFIX
from srnas_nni.spaces.published import build_preset, get_preset
from srnas_nni.spaces.trilevel import TrilevelSpace, candidate_paths
from srnas_nni.spaces.oneshot.trilevel import NetworkPathDifferentiable, NetworkPathSampling

from nni.mutable import SampleValidationError
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule

PROXY_HR = (34, 46)


def proxy(scale: int = 4, **overrides) -> TrilevelSpace:
    return load_space_preset("trilevel-proxy", scale=scale, **overrides)


def nni_modules(model: torch.nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.modules() if type(m).__module__.startswith(NNI_MODULE_PREFIX)]


def supernet_modules(model: torch.nn.Module) -> list[BaseSuperNetModule]:
    return [m for m in model.modules() if isinstance(m, BaseSuperNetModule)]


def test_candidate_paths_match_the_derived_code_tree():
    # 1 stem cell, <= 4 searched cells, <= 2 up layers: the derived code's 55 path nodes.
    assert len(candidate_paths(1, 4, 2, False)) == 55
    complete = candidate_paths(1, 4, 2, True)
    assert len(complete) == 35 and all(p.count("U") == 2 and p.startswith("C") for p in complete)
    assert len(candidate_paths(1, 4, 1, True)) == 15


def test_labels_and_size_at_paper_size():
    space = get("trilevel", scale=4)
    labels = space.labels()
    expected = {"network/path"}
    for k in range(5):
        for j in range(5):
            expected.add(f"cell{k}/op{j}")
            if j < 4:
                expected.add(f"cell{k}/op{j}/width")
    assert set(labels) == expected
    assert labels["cell3/op2"] == ["conv1x1", "conv3x3", "residual", "dwsblock"]
    assert labels["cell0/op0/width"] == [24, 32, 40, 56, 64]
    assert len(labels["network/path"]) == 35
    assert "CCCUCU" in labels["network/path"]
    info = space.info()
    assert info["num_labels"] == 46
    assert info["log10_size"] == pytest.approx(5 * (5 * 0.60206 + 4 * 0.69897) + 1.544068, abs=1e-3)
    assert len(get("trilevel", scale=2).labels()["network/path"]) == 15
    assert len(get("trilevel", scale=4, upsampling="pixelshuffle").labels()["network/path"]) == 55


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("upsampling", ["progressive", "pixelshuffle"])
def test_frozen_samples_are_plain_and_upscale_any_size(scale, upsampling):
    space = proxy(scale, upsampling=upsampling)
    rng = np.random.RandomState(scale)
    for _ in range(3):
        model = space.freeze(space.random_sample(rng))
        assert nni_modules(model) == []
        assert model.scale == scale and model.in_channels == 3
        x = torch.rand(2, 3, 17, 23, requires_grad=True)
        y = model(x)
        assert y.shape == (2, 3, 17 * scale, 23 * scale)
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
        y.mean().backward()
        assert torch.isfinite(x.grad).all()


def test_cost_model_equals_measure_on_random_proxy_samples():
    rng = np.random.RandomState(0)
    checked = 0
    for scale in (2, 3, 4):
        for upsampling in ("progressive", "pixelshuffle"):
            space = proxy(scale, upsampling=upsampling)
            for _ in range(4):
                sample = space.random_sample(rng)
                report = measure(space.freeze(sample), scale, hr_size=PROXY_HR)
                cost = space.cost(sample, hr_size=PROXY_HR)
                assert (cost.params, cost.multadds) == (report.params, report.multadds), sample
                checked += 1
    assert checked >= 20


def test_cost_model_equals_measure_at_paper_size():
    rng = np.random.RandomState(1)
    for scale, upsampling in ((4, "progressive"), (3, "pixelshuffle")):
        space = get("trilevel", scale=scale, upsampling=upsampling)
        sample = space.random_sample(rng)
        report = measure(space.freeze(sample), scale)
        cost = space.cost(sample)
        assert (cost.params, cost.multadds) == (report.params, report.multadds)


def test_preset_is_documented_representative_and_matches_its_pinned_figures():
    preset = get_preset("trilevel")
    assert preset.published == {}
    assert "NOT the paper's model" in preset.notes
    expected = {2: (573_452, 132_076_339_200), 3: (582_107, 59_631_882_240), 4: (594_224, 34_213_478_400)}
    for scale in preset.scales:
        model = build_preset("trilevel", scale)
        report = measure(model, scale)
        assert (report.params, report.multadds) == expected[scale]
        space = get("trilevel", scale=scale, **preset.space_kwargs)
        assert tuple(vars(space.cost(preset.sample)).values()) == expected[scale]
        assert nni_modules(model) == []


def test_shared_width_label_ties_consecutive_ops():
    space = get("trilevel", scale=2)
    sample = space.random_sample(np.random.RandomState(3))
    sample.update({"network/path": "CU", "cell0/op1": "conv3x3", "cell0/op2": "dwsblock",
                   "cell0/op4": "conv1x1", "cell0/op1/width": 56})
    model = space.freeze(sample)
    chain = model.path[0].chain
    assert chain[1].body.out_channels == 56  # op1's output width ...
    assert chain[2].body[0].in_channels == 56  # ... is op2's input width (same label)
    assert chain[2].body[2].groups == 56 * 4  # depthwise over the x4 expansion
    assert chain[4].body.out_channels == 64  # the last op returns to C for the residual


def test_path_position_and_depth_change_multadds_as_they_should():
    space = get("trilevel", scale=4)
    sample = space.random_sample(np.random.RandomState(4))
    for k in range(5):
        for j in range(5):
            sample[f"cell{k}/op{j}"] = "conv3x3"
            if j < 4:
                sample[f"cell{k}/op{j}/width"] = 40

    def cost(path: str):
        return space.cost({**sample, "network/path": path})

    late, early = cost("CCCUU"), cost("CUUCC")
    assert late.params == early.params  # same layers ...
    assert early.multadds > 3 * late.multadds  # ... but cells after the upsamplers run at HR (x16 pixels)
    cell_weights = cost("CCUU").params - cost("CUU").params
    lr_pixels = 180 * 320
    assert cost("CCUU").multadds - cost("CUU").multadds == cell_weights * lr_pixels
    assert cost("CUUC").multadds - cost("CUU").multadds == cell_weights * 16 * lr_pixels
    # Cells not on the path do not count.
    assert cost("CUU") == space.cost({**sample, "network/path": "CUU", "cell4/op0": "residual"})


def test_invalid_samples_name_their_label():
    space = proxy(4)
    sample = space.random_sample(np.random.RandomState(5))
    for label, value in (("network/path", "CUUUC"), ("cell1/op0/width", 7), ("cell0/op2", "conv5x5")):
        bad = {**sample, label: value}
        with pytest.raises(SampleValidationError, match=label):
            space.freeze(bad)
        with pytest.raises(SampleValidationError, match=label):
            space.cost(bad)
    missing = dict(sample)
    del missing["network/path"]
    with pytest.raises(SampleValidationError, match="network/path"):
        space.freeze(missing)


def test_random_one_shot_supernet_samples_paths_and_exports_weight_preserving():
    from nni.nas.strategy import RandomOneShot

    space = proxy(4)
    supernet = RandomOneShot().mutate_model(space)
    assert isinstance(supernet.network.path, NetworkPathSampling)
    modules = supernet_modules(supernet)
    seen_paths = set()
    for _ in range(4):
        memo: dict = {}
        for module in modules:
            memo.update(module.resample(memo))
        seen_paths.add(memo["network/path"])
        y = supernet(torch.rand(2, 3, 9, 11))
        assert y.shape == (2, 3, 36, 44)
        y.mean().backward()
    assert seen_paths <= set(space.paths)
    assert supernet.simplify().keys() == space.labels().keys()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported: dict = {}
        for module in modules:
            exported.update(module.export(exported))
    assert exported.keys() == space.labels().keys()
    model = supernet.freeze(exported)
    assert nni_modules(model) == []
    assert model(torch.rand(1, 3, 9, 11)).shape == (1, 3, 36, 44)
    counted = measure(model, 4, hr_size=PROXY_HR)
    predicted = space.cost(exported, hr_size=PROXY_HR)
    assert (predicted.params, predicted.multadds) == (counted.params, counted.multadds)
    # Frozen weights are slices of the supernet's shared (slimmable) weights.
    op_name = exported["cell0/op0"]
    frozen_first_conv = next(m for m in model.path[0].chain[0].modules() if isinstance(m, torch.nn.Conv2d))
    super_op = supernet.network.path.cells[0].chain[0][op_name]
    super_first_conv = next(m for m in super_op.modules() if isinstance(m, torch.nn.Conv2d))
    out_c, in_c = frozen_first_conv.weight.shape[:2]
    assert torch.equal(frozen_first_conv.weight, super_first_conv.weight[:out_c, :in_c])
    assert frozen_first_conv.weight.data_ptr() != super_first_conv.weight.data_ptr()


def test_darts_supernet_mixes_all_exits_and_exports_the_heaviest():
    from nni.nas.strategy import DARTS

    space = proxy(4)
    supernet = DARTS().mutate_model(space)
    path_module = supernet.network.path
    assert isinstance(path_module, NetworkPathDifferentiable)
    gamma = next(path_module.arch_parameters())
    assert gamma.shape == (len(space.paths),)
    y = supernet(torch.rand(1, 3, 9, 11))
    assert y.shape == (1, 3, 36, 44)
    y.mean().backward()
    assert gamma.grad is not None and torch.count_nonzero(gamma.grad) == len(space.paths)
    with torch.no_grad():
        gamma.zero_()
        gamma[space.paths.index("CCUCU")] = 5.0
    assert path_module.export({}) == {"network/path": "CCUCU"}
    probs = path_module.export_probs({})["network/path"]
    assert max(probs, key=probs.get) == "CCUCU" and sum(probs.values()) == pytest.approx(1.0)

    exported: dict = {}
    for module in supernet_modules(supernet):
        exported.update(module.export(exported))
    model = supernet.freeze(exported)
    assert nni_modules(model) == [] and model.path.path == "CCUCU"
    assert model(torch.rand(1, 3, 9, 11)).shape == (1, 3, 36, 44)
