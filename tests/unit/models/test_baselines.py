"""Tests of srnas_nni.models.baselines (and the blocks of srnas_nni.models.ops they are built from).

The acceptance figures: at x2 and a 1280x720 output, parameters within 1% and Mult-Adds within 2%
of the figures the papers publish (srnas_nni.models.baselines.PUBLISHED_X2), plus the exact counts each
architecture implies.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from srnas_nni.models.baselines import CARN, PUBLISHED_X2, VDSRCore
from srnas_nni.evaluation.cost import count_params, measure
from srnas_nni.models.imresize import imresize
from srnas_nni.models.registry import build_model, get_entry, list_models
from srnas_nni.models.ops import MeanShift, YChannelSR, rgb_to_ycbcr, ycbcr_to_rgb

BASELINES = ("bicubic", "srcnn", "fsrcnn", "vdsr", "carn", "carn_m")
TRAINABLE = ("srcnn", "fsrcnn", "vdsr", "carn", "carn_m")

EXACT_PARAMS = {"bicubic": 0, "srcnn": 57_281, "fsrcnn": 12_809, "vdsr": 665_921,
                "carn_m": 414_787, "carn": 1_591_939}


@pytest.fixture(scope="module")
def x2_reports():
    return {name: measure(build_model(name, 2), 2) for name in BASELINES}


def conv_weight_count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


# --------------------------------------------------------------------------------------------
# Acceptance: published parameters and Mult-Adds


def test_registry_holds_the_baselines():
    assert set(BASELINES) <= set(list_models())
    assert set(PUBLISHED_X2) <= set(list_models())
    assert get_entry("bicubic").trainable is False
    for name in TRAINABLE:
        assert get_entry(name).trainable is True
        assert get_entry(name).scales == (2, 3, 4)


@pytest.mark.parametrize("name", ["srcnn", "vdsr", "carn_m", "carn"])
def test_published_params_and_multadds_at_x2(name, x2_reports):
    report, published = x2_reports[name], PUBLISHED_X2[name]
    assert report.hr_size == (720, 1280) and report.lr_size == (360, 640)
    assert abs(report.params / published.params - 1) <= 0.01, report.params
    assert abs(report.multadds / published.multadds - 1) <= 0.02, report.multadds


def test_fsrcnn_published_figures(x2_reports):
    report = x2_reports["fsrcnn"]
    assert abs(report.multadds / PUBLISHED_X2["fsrcnn"].multadds - 1) <= 0.02
    assert report.params == 12_809  # with biases and PReLU slopes
    assert conv_weight_count(build_model("fsrcnn", 2)) == 12_464  # the paper's "12K"


@pytest.mark.parametrize("name", BASELINES)
def test_exact_parameter_counts(name, x2_reports):
    assert x2_reports[name].params == EXACT_PARAMS[name]


def test_carn_single_scale_and_multi_scale_forms():
    single = measure(build_model("carn", 2, multi_scale=False), 2)
    assert single.params == 964_163  # the ~964K of an x2-only CARN
    multi = measure(build_model("carn", 2), 2)
    assert single.multadds == multi.multadds  # only one upsampler runs either way
    assert measure(build_model("carn_m", 4, multi_scale=False), 4).params < EXACT_PARAMS["carn_m"]


def test_parameter_count_does_not_depend_on_scale():
    for name in ("srcnn", "fsrcnn", "vdsr", "carn", "carn_m"):
        counts = {count_params(build_model(name, s)) for s in (2, 3, 4)}
        assert len(counts) == 1, name


# --------------------------------------------------------------------------------------------
# Model contract


@pytest.mark.parametrize("name", BASELINES)
def test_every_scale_maps_lr_to_scaled_rgb(name):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 12, 10)
    for scale in get_entry(name).scales:
        model = build_model(name, scale).eval()
        assert model.scale == scale and model.in_channels == 3
        with torch.no_grad():
            y = model(x)
        assert y.shape == (1, 3, 12 * scale, 10 * scale), (name, scale)
        assert torch.isfinite(y).all()


def test_bicubic_is_imresize():
    x = torch.rand(2, 3, 9, 7)
    for scale in (2, 3, 4):
        model = build_model("bicubic", scale)
        assert sum(p.numel() for p in model.parameters()) == 0
        assert torch.equal(model(x), imresize(x, scale))


def test_unsupported_scale_is_refused():
    with pytest.raises(ValueError, match="x5"):
        CARN(5)
    with pytest.raises(Exception, match="x8"):
        build_model("srcnn", 8)


# --------------------------------------------------------------------------------------------
# Y-channel wrapper and colour conversion


def test_ycbcr_round_trip_and_reference_values():
    rgb = torch.rand(2, 3, 8, 8)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-6, rtol=0)
    corners = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]).view(2, 3, 1, 1)
    ycbcr = rgb_to_ycbcr(corners).flatten(1)
    expected = torch.tensor([[16, 128, 128], [235, 128, 128]]) / 255.0
    assert torch.allclose(ycbcr, expected, atol=1e-6)
    red = rgb_to_ycbcr(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).flatten()
    assert torch.allclose(red * 255, torch.tensor([16 + 65.481, 128 - 37.797, 128 + 112.0]), atol=1e-4)


@pytest.mark.parametrize("name", ["srcnn", "fsrcnn", "vdsr"])
def test_y_channel_models_keep_gray_images_gray(name):
    # Gray input -> Cb = Cr = 128/255 everywhere -> whatever the core does to Y, R = G = B.
    torch.manual_seed(1)
    gray = torch.rand(1, 1, 10, 9).expand(1, 3, 10, 9)
    model = build_model(name, 3).eval()
    with torch.no_grad():
        out = model(gray)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5)
    assert torch.allclose(out[:, 1], out[:, 2], atol=1e-5)


def test_y_channel_wrapper_with_identity_core_is_bicubic():
    # Colour conversion and bicubic are both linear: identity on the upsampled Y = bicubic on RGB.
    x = torch.rand(1, 3, 11, 8)
    wrapper = YChannelSR(nn.Identity(), 3, pre_upsample=True)
    assert torch.allclose(wrapper(x), imresize(x, 3), atol=1e-5)


def test_vdsr_predicts_a_residual_to_the_bicubic_y():
    model = build_model("vdsr", 2)
    last = model.core.body[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert torch.allclose(model(x), imresize(x, 2), atol=1e-5)
    assert isinstance(model.core, VDSRCore)


# --------------------------------------------------------------------------------------------
# CARN specifics


def test_mean_shift_is_a_fixed_buffer():
    shift = MeanShift(sign=-1)
    assert list(shift.parameters()) == []
    assert [name for name, _ in shift.named_buffers()] == ["mean"]
    x = torch.rand(1, 3, 4, 4)
    assert torch.allclose(MeanShift(sign=+1)(shift(x)), x)
    model = build_model("carn", 2)
    assert not any("mean" in name for name, _ in model.named_parameters())


def test_carn_m_reuses_one_residual_unit_three_times():
    model = build_model("carn_m", 2)
    calls: dict[int, int] = {}

    def count_call(index: int):
        return lambda module, inputs, output: calls.__setitem__(index, calls.get(index, 0) + 1)

    for index, block in enumerate(model.body.units):
        assert len(block.units) == 1  # one unit, shared
        block.units[0].register_forward_hook(count_call(index))
    with torch.no_grad():
        model(torch.rand(1, 3, 6, 6))
    assert calls == {0: 3, 1: 3, 2: 3}


def test_multi_scale_carn_runs_only_its_upsampler():
    report = measure(build_model("carn", 3), 3)
    assert report.uncounted["pixel_shuffle"] == 1
    assert measure(build_model("carn", 4), 4).uncounted["pixel_shuffle"] == 2


# --------------------------------------------------------------------------------------------
# Training


@pytest.mark.parametrize("name", TRAINABLE)
def test_one_adam_step_changes_the_parameters(name):
    torch.manual_seed(2)
    model = build_model(name, 2).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    lr, hr = torch.rand(2, 3, 12, 10), torch.rand(2, 3, 24, 20)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = (model(lr) - hr).abs().mean()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    for n, p in model.named_parameters():
        if p.grad is None:
            # Only the upsamplers of the other scales of a multi-scale model sit out.
            assert "upsample.branches.x3" in n or "upsample.branches.x4" in n, n
            assert torch.equal(p, before[n])
        else:
            assert torch.isfinite(p.grad).all(), n
            assert not torch.equal(p, before[n]), n
