"""Building blocks shared by the baselines and the search spaces.

Everything here is a plain ``nn.Module`` (or a pure function) over float ``NCHW`` tensors:

* :func:`conv2d`: a convolution with "same" padding, so blocks never change the spatial size;
* :class:`ConvReLU`: convolution followed by ReLU (CARN's ``BasicBlock``, used for 1x1 fusions);
* :class:`MeanShift`: adds or subtracts a fixed per-channel mean, held as a *buffer*: it moves
  with the model (``.to``/``.half``) but is not a learnable parameter;
* :class:`ResidualBlock`, :class:`EfficientResidualBlock`: conv-ReLU-conv residual units (the
  latter is CARN-M's grouped, cheaper unit);
* :class:`CascadingBlock`: CARN's cascading connections (every unit's output is concatenated to
  all earlier features and fused back to ``channels`` by a 1x1 :class:`ConvReLU`);
* :class:`SubPixelUpsampler` / :class:`MultiScaleUpsampler`: conv + ``PixelShuffle`` upsampling
  (optionally grouped), for one scale or for several with only the requested one run;
* :func:`rgb_to_ycbcr` / :func:`ycbcr_to_rgb` and :class:`YChannelSR`: BT.601 colour conversion,
  and the wrapper that lets a 1-channel (Y) network serve the RGB -> RGB model contract;
* search-space primitives: :class:`SeparableConv2d` (depthwise + pointwise, optionally dilated),
  :class:`ChannelAttention` and :class:`RCAB` (RCAN), :class:`Interpolate` (bilinear / nearest /
  area resampling as a module), :class:`TransposedConvUpsampler`, :class:`Zero`.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .imresize import imresize

__all__ = [
    "DIV2K_RGB_MEAN",
    "same_padding",
    "conv2d",
    "ConvReLU",
    "MeanShift",
    "ResidualBlock",
    "EfficientResidualBlock",
    "CascadingBlock",
    "SubPixelUpsampler",
    "MultiScaleUpsampler",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "YChannelSR",
    "SeparableConv2d",
    "ChannelAttention",
    "RCAB",
    "Interpolate",
    "TransposedConvUpsampler",
    "Zero",
    "esa_map_sizes",
    "EnhancedSpatialAttention",
    "DistillationCell",
    "PixelShuffleTail",
]

#: Mean RGB of the DIV2K training images in [0, 1] (the constant CARN/EDSR subtract at the input).
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the spatial size of a stride-1 convolution with an odd kernel."""
    if kernel_size % 2 == 0:
        raise ValueError(f"'same' padding needs an odd kernel size, got {kernel_size}")
    return dilation * (kernel_size - 1) // 2


def conv2d(in_channels: int, out_channels: int, kernel_size: int, *, groups: int = 1,
           dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    """Stride-1 ``nn.Conv2d`` with "same" padding (output has the input's height and width)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=same_padding(kernel_size, dilation),
                     dilation=dilation, groups=groups, bias=bias)


class ConvReLU(nn.Sequential):
    """``conv2d`` followed by ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, groups: int = 1):
        super().__init__(conv2d(in_channels, out_channels, kernel_size, groups=groups), nn.ReLU(inplace=True))


class MeanShift(nn.Module):
    """``x + sign * mean`` per channel, with ``mean`` a fixed buffer (not a parameter).

    ``sign=-1`` subtracts the mean (at a network's input), ``sign=+1`` adds it back (at its output).
    """

    mean: torch.Tensor

    def __init__(self, mean: Sequence[float] = DIV2K_RGB_MEAN, sign: int = -1):
        super().__init__()
        if sign not in (-1, 1):
            raise ValueError(f"MeanShift sign must be -1 or +1, got {sign}")
        self.sign = sign
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.mean if self.sign < 0 else x + self.mean

    def extra_repr(self) -> str:
        return f"sign={self.sign:+d}"


class ResidualBlock(nn.Module):
    """``conv-ReLU-conv`` plus the input; CARN also applies a ReLU after the addition."""

    def __init__(self, channels: int, *, kernel_size: int = 3, groups: int = 1, relu_after_add: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            conv2d(channels, channels, kernel_size, groups=groups),
            nn.ReLU(inplace=True),
            conv2d(channels, channels, kernel_size, groups=groups),
        )
        self.relu_after_add = relu_after_add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x) + x
        return torch.relu(out) if self.relu_after_add else out


class EfficientResidualBlock(nn.Module):
    """CARN-M's residual unit: grouped 3x3, ReLU, grouped 3x3, ReLU, 1x1 (mixes the groups); + input; ReLU."""

    def __init__(self, channels: int, *, groups: int = 4):
        super().__init__()
        self.body = nn.Sequential(
            conv2d(channels, channels, 3, groups=groups),
            nn.ReLU(inplace=True),
            conv2d(channels, channels, 3, groups=groups),
            nn.ReLU(inplace=True),
            conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


class CascadingBlock(nn.Module):
    """Units chained with cascading connections (CARN, Ahn et al. 2018).

    With ``x`` the input, ``u_i`` the units and ``f_i`` 1x1 fusions::

        o_1 = f_1(cat[x, u_1(x)])
        o_2 = f_2(cat[x, u_1(x), u_2(o_1)])
        o_3 = f_3(cat[x, u_1(x), u_2(o_1), u_3(o_2)])   -> output

    ``share_units=True`` builds one unit and applies it ``depth`` times (CARN-M's recursion: the
    weights are shared, the fusions are not). The same class makes CARN's global cascade, whose
    units are themselves cascading blocks.
    """

    def __init__(self, channels: int, make_unit: Callable[[], nn.Module], *, depth: int = 3,
                 share_units: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"CascadingBlock depth must be >= 1, got {depth}")
        self.depth = depth
        self.share_units = share_units
        self.units = nn.ModuleList([make_unit()] if share_units else [make_unit() for _ in range(depth)])
        self.fusions = nn.ModuleList(ConvReLU(channels * (i + 2), channels, 1) for i in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, out = x, x
        for i, fuse in enumerate(self.fusions):
            unit = self.units[0 if self.share_units else i]
            features = torch.cat([features, unit(out)], dim=1)
            out = fuse(features)
        return out


def _pixel_shuffle_factors(scale: int) -> list[int]:
    """Scale as a product of the sub-pixel steps we build: 2, 2, ... for powers of two, or one 3."""
    if scale == 3:
        return [3]
    if scale >= 1 and scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    raise ValueError(f"sub-pixel upsampling supports x3 and powers of two, not x{scale}")


class SubPixelUpsampler(nn.Sequential):
    """Upsample ``channels`` feature maps by ``scale`` with sub-pixel convolution (Shi et al. 2016).

    Per factor ``r`` (x4 = two steps of 2): ``conv(channels -> r*r*channels)`` [+ ReLU] then
    ``PixelShuffle(r)``. The channel count is unchanged; ``groups`` makes the convolutions grouped
    (CARN-M). x1 is the identity.
    """

    def __init__(self, channels: int, scale: int, *, groups: int = 1, kernel_size: int = 3,
                 activation: bool = True):
        layers: list[nn.Module] = []
        for factor in _pixel_shuffle_factors(scale):
            layers.append(conv2d(channels, channels * factor * factor, kernel_size, groups=groups))
            if activation:
                layers.append(nn.ReLU(inplace=True))
            layers.append(nn.PixelShuffle(factor))
        super().__init__(*layers)
        self.scale = scale


class MultiScaleUpsampler(nn.Module):
    """One :class:`SubPixelUpsampler` per scale; ``forward(x, scale)`` runs only that scale's.

    This is how CARN was published: one network trained for x2/x3/x4 at once, whose parameter
    count includes all upsamplers although an image passes through one.
    """

    def __init__(self, channels: int, scales: Sequence[int] = (2, 3, 4), *, groups: int = 1,
                 activation: bool = True):
        super().__init__()
        self.branches = nn.ModuleDict(
            {f"x{s}": SubPixelUpsampler(channels, s, groups=groups, activation=activation) for s in scales}
        )

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(int(key[1:]) for key in self.branches)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        key = f"x{scale}"
        if key not in self.branches:
            raise ValueError(f"this upsampler has scales {list(self.scales)}, not x{scale}")
        return self.branches[key](x)


# ITU-R BT.601 "studio swing" on [0, 1] floats: Y in [16, 235]/255, Cb and Cr in [16, 240]/255.
# It is MATLAB's rgb2ycbcr, which SR papers use to run and to evaluate on the Y channel.
_YCBCR_OFFSET = (16.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0)
_RGB_TO_YCBCR_255 = np.array([
    [65.481, 128.553, 24.966],
    [-37.797, -74.203, 112.0],
    [112.0, -93.786, -18.214],
])
_RGB_TO_YCBCR = (_RGB_TO_YCBCR_255 / 255.0).tolist()
# The exact inverse, computed once in double precision, so RGB -> YCbCr -> RGB round-trips.
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR_255 / 255.0).tolist()


def _mix_channels(x: torch.Tensor, matrix: list[list[float]], before: Sequence[float],
                  after: Sequence[float]) -> torch.Tensor:
    """``after + matrix @ (x - before)`` over the channel axis (dim -3), as elementwise arithmetic.

    Elementwise rather than a 1x1 convolution on purpose: colour conversion is not a layer of the
    network and must not show up in its Mult-Adds.
    """
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"colour conversion needs 3 channels at dim -3, got shape {tuple(x.shape)}")
    channels = [c - b for c, b in zip(x.unbind(dim=-3), before)]
    rows = [after[i] + matrix[i][0] * channels[0] + matrix[i][1] * channels[1] + matrix[i][2] * channels[2]
            for i in range(3)]
    return torch.stack(rows, dim=-3)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 studio-swing YCbCr of an RGB tensor in [0, 1] (``...x3xHxW``), also in [0, 1] units."""
    return _mix_channels(rgb, _RGB_TO_YCBCR, (0.0, 0.0, 0.0), _YCBCR_OFFSET)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clipped)."""
    return _mix_channels(ycbcr, _YCBCR_TO_RGB, _YCBCR_OFFSET, (0.0, 0.0, 0.0))


class YChannelSR(nn.Module):
    """Run a 1-channel SR network on the luma of an RGB image.

    SRCNN, FSRCNN and VDSR were published on the Y channel of YCbCr, with the chroma upsampled by
    bicubic interpolation. This wrapper keeps that form and the RGB -> RGB model contract:
    RGB -> YCbCr; ``core`` maps Y to the HR Y; Cb and Cr are upsampled with MATLAB bicubic
    (:func:`~srnas_nni.models.imresize.imresize`); YCbCr -> RGB.

    ``pre_upsample=True`` gives the core the bicubic-upsampled Y (SRCNN, VDSR: their convolutions
    run at HR size and their output has the input's size); ``False`` gives it the LR Y (FSRCNN:
    the core upsamples by itself).
    """

    in_channels = 3

    def __init__(self, core: nn.Module, scale: int, *, pre_upsample: bool):
        super().__init__()
        self.core = core
        self.scale = int(scale)
        self.pre_upsample = bool(pre_upsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ycbcr = rgb_to_ycbcr(x)
        luma, chroma = ycbcr[:, :1], ycbcr[:, 1:]
        core_input = imresize(luma, self.scale) if self.pre_upsample else luma
        luma_hr = self.core(core_input)
        chroma_hr = imresize(chroma, self.scale)
        return ycbcr_to_rgb(torch.cat([luma_hr, chroma_hr], dim=1))

    def extra_repr(self) -> str:
        return f"scale={self.scale}, pre_upsample={self.pre_upsample}"


# --------------------------------------------------------------------------------------------
# Search-space primitives


class SeparableConv2d(nn.Sequential):
    """Depthwise ``kernel_size`` convolution (optionally dilated) then a pointwise 1x1.

    Papers differ in what they wrap around it (ReLU before, two stacked as in DARTS, ...): spaces
    compose those variants from this unit so parameter counts stay exact.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, dilation: int = 1,
                 bias: bool = True):
        super().__init__(
            conv2d(in_channels, in_channels, kernel_size, groups=in_channels, dilation=dilation, bias=bias),
            conv2d(in_channels, out_channels, 1, bias=bias),
        )


class ChannelAttention(nn.Module):
    """RCAN's channel attention: global average pool, 1x1 down by ``reduction``, ReLU, 1x1 up, sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class RCAB(nn.Module):
    """Residual channel-attention block (RCAN): conv-ReLU-conv, channel attention, plus the input."""

    def __init__(self, channels: int, kernel_size: int = 3, reduction: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            conv2d(channels, channels, kernel_size), nn.ReLU(inplace=True),
            conv2d(channels, channels, kernel_size), ChannelAttention(channels, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Interpolate(nn.Module):
    """``F.interpolate`` by a fixed factor as a module (``bilinear``, ``nearest``, ``area``, ``bicubic``).

    Interpolation is not counted as Mult-Adds by convention.
    """

    def __init__(self, scale_factor: int, mode: str = "bilinear"):
        super().__init__()
        if mode not in ("bilinear", "nearest", "area", "bicubic"):
            raise ValueError(f"unknown interpolation mode {mode!r}")
        self.scale_factor = int(scale_factor)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale_factor == 1:
            return x
        if self.mode == "area":
            # 'area' is adaptive average pooling; enlarging with it repeats pixels like nearest.
            size = (x.shape[-2] * self.scale_factor, x.shape[-1] * self.scale_factor)
            return torch.nn.functional.interpolate(x, size=size, mode="area")
        align = False if self.mode in ("bilinear", "bicubic") else None
        return torch.nn.functional.interpolate(x, scale_factor=self.scale_factor, mode=self.mode,
                                               align_corners=align)

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}, mode={self.mode!r}"


class TransposedConvUpsampler(nn.ConvTranspose2d):
    """A stride-``factor`` transposed convolution whose output is exactly ``factor`` x the input."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, kernel_size: int | None = None):
        kernel_size = kernel_size or (2 * factor if factor > 1 else 3)
        padding = (kernel_size - factor + 1) // 2
        output_padding = factor - kernel_size + 2 * padding
        super().__init__(in_channels, out_channels, kernel_size, stride=factor, padding=padding,
                         output_padding=output_padding)


class Zero(nn.Module):
    """The 'none' operation of DARTS-style cells: zeros of the input's shape (or ``channels``)."""

    def __init__(self, channels: int | None = None):
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels is None or self.channels == x.shape[1]:
            return torch.zeros_like(x)
        return x.new_zeros((x.shape[0], self.channels, *x.shape[2:]))


# --------------------------------------------------------------------------------------------
# Information distillation (RFDN, DLSR)


def esa_map_sizes(side: int) -> tuple[int, int]:
    """Side of the strided-conv map and of the pooled map in ESA for an input side ``side``.

    Shared by :class:`EnhancedSpatialAttention` (which pads/shrinks to stay valid on tiny inputs) and
    the cost model, so the two cannot disagree.
    """
    strided = (max(side, 3) - 3) // 2 + 1  # 3x3, stride 2, no padding (input padded to >= 3)
    pool = min(7, strided)
    pooled = (strided - pool) // 3 + 1  # max-pool 7x7 (or the whole map), stride 3
    return strided, pooled


class EnhancedSpatialAttention(nn.Module):
    """ESA (RFANet/RFDN): a cheap, large-receptive-field spatial mask on ``channels`` features.

    ``c = 1x1(x)`` to ``channels / 4``; a strided 3x3 (no padding) and a 7x7/3 max-pool shrink it;
    ``3x3 + ReLU``, ``3x3 + ReLU``, ``3x3`` on the small map; bilinear back to the input size; plus
    ``1x1(c)``; ``1x1`` back to ``channels``; sigmoid; ``x * mask``.
    """

    def __init__(self, channels: int):
        super().__init__()
        reduced = channels // 4
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.skip = nn.Conv2d(reduced, reduced, 1)
        self.strided = nn.Conv2d(reduced, reduced, 3, stride=2)
        self.after_pool = nn.Conv2d(reduced, reduced, 3, padding=1)
        self.body = nn.Conv2d(reduced, reduced, 3, padding=1)
        self.body_out = nn.Conv2d(reduced, reduced, 3, padding=1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        reduced = self.reduce(x)
        small = reduced
        if height < 3 or width < 3:  # only tiny inputs: the strided 3x3 needs 3 pixels
            small = F.pad(small, (0, max(0, 3 - width), 0, max(0, 3 - height)))
        small = self.strided(small)
        pool = (min(7, small.shape[-2]), min(7, small.shape[-1]))
        small = F.max_pool2d(small, kernel_size=pool, stride=3)
        small = F.relu(self.after_pool(small))
        small = F.relu(self.body(small))
        small = self.body_out(small)
        small = F.interpolate(small, (height, width), mode="bilinear", align_corners=False)
        mask = torch.sigmoid(self.expand(small + self.skip(reduced)))
        return x * mask


class DistillationCell(nn.Module):
    """RFDN's residual feature distillation block, with pluggable refine ops (DLSR's searched cell).

    Per stage, a 1x1 keeps a "distilled" half and ``refine_op(x) + x`` (LeakyReLU) refines the rest;
    a last 3x3, the concatenation of the distilled halves, a 1x1 fusion and ESA. ``refine_ops`` give
    the stages (``LayerChoice`` in a search space, plain modules once frozen; RFDN uses 3x3 convs).
    """

    def __init__(self, channels: int, refine_ops: Sequence[nn.Module], negative_slope: float = 0.05):
        super().__init__()
        stages = len(refine_ops)
        if stages < 1:
            raise ValueError("a distillation cell needs at least one refine op")
        distilled = channels // 2
        self.distill = nn.ModuleList(nn.Conv2d(channels, distilled, 1) for _ in range(stages))
        self.refine = nn.ModuleList(refine_ops)
        self.last = conv2d(channels, distilled, 3)
        self.fuse = nn.Conv2d(distilled * (stages + 1), channels, 1)
        self.attention = EnhancedSpatialAttention(channels)
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slope = self.negative_slope
        halves = []
        features = x
        for distill, refine in zip(self.distill, self.refine):
            halves.append(F.leaky_relu(distill(features), slope))
            features = F.leaky_relu(refine(features) + features, slope)
        halves.append(F.leaky_relu(self.last(features), slope))
        return self.attention(self.fuse(torch.cat(halves, dim=1)))


class PixelShuffleTail(nn.Sequential):
    """RFDN's upsampler: ``conv 3x3 (channels -> out * scale^2)`` then one ``PixelShuffle(scale)``."""

    def __init__(self, channels: int, scale: int, out_channels: int = 3):
        super().__init__(conv2d(channels, out_channels * scale * scale, 3), nn.PixelShuffle(scale))
