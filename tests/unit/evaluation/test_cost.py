"""Tests of srnas_nni.evaluation.cost: Mult-Adds and parameters by the SR convention.

The counts are checked against two independent counters, ``thop`` (module hooks) and torch's
``FlopCounterMode`` (FLOPs = 2 x MACs), against hand-computed values, and for the differences the
convention implies (transposed convolutions, functional calls).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from srnas_nni.errors import ModelSpecError
from srnas_nni.evaluation.cost import CostReport, count_params, lr_size_for, measure
from srnas_nni.models.registry import build_model

thop = pytest.importorskip("thop")

HR = (32, 48)  # small HR size for the comparisons: x2 -> LR 16x24


def thop_macs(model: nn.Module, lr_size: tuple[int, int], in_channels: int = 3) -> int:
    # thop registers buffers on the modules it profiles: give it a copy.
    x = torch.rand(1, in_channels, *lr_size)
    macs, _ = thop.profile(copy.deepcopy(model), inputs=(x,), verbose=False)
    return int(macs)


def flop_counter_macs(model: nn.Module, lr_size: tuple[int, int], in_channels: int = 3) -> int:
    x = torch.rand(1, in_channels, *lr_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


# --------------------------------------------------------------------------------------------
# Test networks


class PlainConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 5, padding=2), nn.ReLU(),
            nn.Conv2d(16, 12, 3, padding=1),
            nn.PixelShuffle(2),
        )

    def forward(self, x):
        return self.body(x)


class GroupedDepthwiseDilatedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 12, 3, padding=1),
            nn.Conv2d(12, 24, 3, padding=1, groups=3),            # grouped
            nn.Conv2d(24, 24, 3, padding=1, groups=24),           # depthwise
            nn.Conv2d(24, 12, 3, padding=2, dilation=2),          # dilated
            nn.Conv2d(12, 12, (1, 3), padding=(0, 1), groups=4),  # grouped, non-square
            nn.PixelShuffle(2),
        )

    def forward(self, x):
        return self.body(x)


class TransposedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1, groups=2)
        self.tail = nn.ConvTranspose2d(6, 3, 3, stride=1, padding=1)

    def forward(self, x):
        return self.tail(self.up(self.head(x)))


class LinearNet(nn.Module):
    """Per-pixel MLP (linear layers over channels), then sub-pixel upsampling."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 16)
        self.fc2 = nn.Linear(16, 12, bias=False)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        y = self.fc2(torch.relu(self.fc1(x.permute(0, 2, 3, 1))))
        return self.shuffle(y.permute(0, 3, 1, 2))


class FunctionalConvNet(nn.Module):
    """Convolution through ``F.conv2d`` with a weight of its own: no module for hooks to see."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(12, 3, 3, 3) * 0.1)

    def forward(self, x):
        return F.pixel_shuffle(F.conv2d(x, self.weight, padding=1), 2)


class SharedConvNet(nn.Module):
    """One convolution applied twice (recursion, as in CARN-M)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.again = self.shared  # the same module under a second name
        self.tail = nn.Conv2d(8, 12, 1)

    def forward(self, x):
        x = self.head(x)
        x = self.again(torch.relu(self.shared(x)))
        return F.pixel_shuffle(self.tail(x), 2)


class TinyNet(nn.Module):
    """conv3x3 3->8, ReLU, conv1x1 8->3 (same size: x1)."""

    in_channels = 3

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))


# --------------------------------------------------------------------------------------------
# Agreement with thop and FlopCounterMode


@pytest.mark.parametrize("make_model", [PlainConvNet, GroupedDepthwiseDilatedNet, LinearNet],
                         ids=["plain", "grouped-depthwise-dilated", "linear"])
def test_multadds_equal_thop_and_flop_counter(make_model):
    model = make_model()
    report = measure(model, 2, hr_size=HR)
    assert report.lr_size == (16, 24)
    assert report.multadds > 0
    assert report.multadds == thop_macs(model, report.lr_size)
    assert report.multadds == flop_counter_macs(model, report.lr_size)


def test_carn_m_equals_thop_and_flop_counter():
    model = build_model("carn_m", 2)
    report = measure(model, 2, hr_size=HR)
    assert report.multadds == thop_macs(model, report.lr_size)
    assert report.multadds == flop_counter_macs(model, report.lr_size)


def test_transposed_convolution_counted_per_output_like_thop():
    model = TransposedNet()
    report = measure(model, 2, hr_size=HR)
    h, w = report.lr_size
    head = h * w * 8 * (3 * 9)
    up = (2 * h) * (2 * w) * 6 * (8 // 2) * 16  # output elements x Cin/groups x k*k
    tail = (2 * h) * (2 * w) * 3 * 6 * 9
    assert report.multadds == head + up + tail
    assert report.multadds == thop_macs(model, report.lr_size)
    # FlopCounterMode counts the scatter form (input elements x Cout/groups x k*k): not our convention.
    up_scatter = h * w * 8 * (6 // 2) * 16
    tail_scatter = (2 * h) * (2 * w) * 6 * 3 * 9
    assert flop_counter_macs(model, report.lr_size) == head + up_scatter + tail_scatter
    assert report.multadds > flop_counter_macs(model, report.lr_size)


def test_functional_calls_are_counted_unlike_thop():
    model = FunctionalConvNet()
    report = measure(model, 2, hr_size=HR)
    h, w = report.lr_size
    assert report.multadds == h * w * 12 * 3 * 9
    assert report.multadds == flop_counter_macs(model, report.lr_size)
    assert thop_macs(model, report.lr_size) == 0  # hooks see no Conv2d module
    assert report.params == 12 * 3 * 9


def test_shared_module_params_counted_once_multadds_per_call():
    model = SharedConvNet()
    report = measure(model, 2, hr_size=HR)
    unique = {id(p): p.numel() for p in model.parameters()}
    assert report.params == sum(unique.values()) == (3 * 8 * 9 + 8) + (8 * 8 * 9 + 8) + (8 * 12 + 12)
    h, w = report.lr_size
    assert report.multadds == h * w * (8 * 27 + 2 * 8 * 72 + 12 * 8)
    assert report.multadds == thop_macs(model, report.lr_size)


def test_tied_tensors_across_modules_counted_once_and_kept_tied():
    model = SharedConvNet()
    model.tail_twin = nn.Conv2d(8, 12, 1)
    model.tail_twin.weight = model.tail.weight  # weight tying between two distinct modules
    report = measure(model, 2, hr_size=HR)
    assert report.device == "meta"
    assert report.params == count_params(model) == 916 + 12  # only the twin's own bias is new
    assert model.tail_twin.weight is model.tail.weight
    assert isinstance(model.shared.weight, nn.Parameter) and model.again.weight is model.shared.weight
    assert all(not p.is_meta for p in model.parameters())


def test_hand_computed_tiny_net():
    report = measure(TinyNet(), 1, hr_size=(4, 6))
    assert report.lr_size == (4, 6)
    assert report.params == (3 * 8 * 9 + 8) + (8 * 3 + 3) == 251
    assert report.multadds == 4 * 6 * (8 * 27) + 4 * 6 * (3 * 8) == 5760
    assert report.uncounted == {"relu": 1}


def test_frozen_parameters_and_buffers_are_not_params():
    model = TinyNet()
    model.conv2.bias.requires_grad_(False)
    model.register_buffer("mean", torch.zeros(1, 3, 1, 1))
    assert count_params(model) == 251 - 3
    assert measure(model, 1, hr_size=(4, 6)).params == 248


def test_uncounted_lists_pixel_shuffle_and_activations_not_views():
    report = measure(PlainConvNet(), 2, hr_size=HR)
    assert report.uncounted["pixel_shuffle"] == 1
    assert report.uncounted["relu"] == 2
    assert not {"view", "permute", "empty", "detach", "_to_copy"} & set(report.uncounted)
    interpolated = measure(build_model("vdsr", 2), 2, hr_size=HR)
    assert interpolated.uncounted["index_select"] > 0  # MATLAB bicubic is a gather + weighted sum
    assert interpolated.uncounted["add"] >= 1  # VDSR's global residual


# --------------------------------------------------------------------------------------------
# Convention, report and model safety


def test_lr_sizes_of_the_convention():
    assert lr_size_for((720, 1280), 2) == (360, 640)
    assert lr_size_for((720, 1280), 3) == (240, 427)
    assert lr_size_for((720, 1280), 4) == (180, 320)
    report = measure(build_model("carn_m", 3), 3)
    assert report.hr_size == (720, 1280)
    assert report.lr_size == (240, 427)


def test_report_is_frozen_and_json_ready():
    report = measure(PlainConvNet(), 2, hr_size=HR)
    assert isinstance(report, CostReport)
    with pytest.raises(AttributeError):
        report.params = 0  # type: ignore[misc]
    data = json.loads(json.dumps(report.as_dict()))
    assert data["params"] == report.params and data["multadds"] == report.multadds
    assert data["hr_size"] == [32, 48] and data["lr_size"] == [16, 24]
    assert data["uncounted"]["pixel_shuffle"] == 1
    assert data["device"] == "meta"
    assert isinstance(report.params, int) and isinstance(report.multadds, int)


def test_measure_leaves_model_untouched():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Dropout(0.5),
                          nn.Conv2d(8, 12, 3, padding=1), nn.PixelShuffle(2))
    model.train()
    model[2].eval()  # mixed flags must come back as they were
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params_before = [id(p) for p in model.parameters()]
    measure(model, 2, hr_size=HR)
    assert model.training and model[1].training and not model[2].training
    assert [id(p) for p in model.parameters()] == params_before
    after = model.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key].device == value.device
        assert torch.equal(after[key], value), key  # BatchNorm statistics included
    assert all(p.device.type == "cpu" and not p.is_meta for p in model.parameters())


def test_model_that_cannot_run_on_meta_falls_back_to_cpu():
    class DataDependent(TinyNet):
        def forward(self, x):
            if x.abs().sum().item() >= 0:  # .item() has no meaning on meta
                return super().forward(x)
            return x

    report = measure(DataDependent(), 1, hr_size=(4, 6))
    assert report.device == "cpu"
    assert report.multadds == 5760 and report.params == 251


def test_failing_forward_names_the_model_and_input_shape():
    class OneChannelNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(ModelSpecError, match=r"OneChannelNet.*\(1, 3, 16, 24\)"):
        measure(OneChannelNet(), 2, hr_size=HR)
    assert measure(OneChannelNet(), 2, hr_size=HR, in_channels=1).multadds == 16 * 24 * 4 * 9


def test_scale_must_match_the_model():
    with pytest.raises(ValueError, match="x2"):
        measure(build_model("carn_m", 2), 3)
    with pytest.raises(ValueError):
        measure(TinyNet(), 0)
