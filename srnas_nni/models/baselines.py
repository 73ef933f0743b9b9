"""Hand-designed SR networks, built as published, registered in :mod:`srnas_nni.models.registry`.

Importing this module registers ``bicubic``, ``srcnn``, ``fsrcnn``, ``vdsr``, ``carn`` and
``carn_m``. Every model follows the model contract of :mod:`srnas_nni.models.registry` (RGB LR batch in
[0, 1] -> RGB batch ``scale`` times larger; attributes ``scale`` and ``in_channels = 3``).

* ``bicubic``: MATLAB bicubic interpolation; no parameters (registered ``trainable=False``).
* ``srcnn`` (Dong et al., TPAMI 2016, the 9-5-5 network), ``fsrcnn`` (Dong et al., ECCV 2016,
  FSRCNN(56, 12, 4)) and ``vdsr`` (Kim et al., CVPR 2016, 20 layers) work on the Y channel, as
  published, through :class:`~srnas_nni.models.ops.YChannelSR`. SRCNN and VDSR take the bicubic-upsampled
  Y (their convolutions run at HR size); VDSR predicts the residual to that bicubic Y. FSRCNN takes
  the LR Y and upsamples with its final transposed convolution.
* ``carn`` and ``carn_m`` (Ahn et al., ECCV 2018): RGB networks with cascading residual blocks
  and sub-pixel upsampling. With ``multi_scale=True`` (the default and the published form) the
  model holds x2, x3 and x4 upsamplers and runs the one for its scale; ``multi_scale=False`` keeps
  only its own scale's upsampler.

:data:`PUBLISHED_X2` holds the figures the literature quotes for these networks, so tests and
benchmarks can check our implementations (and :func:`srnas_nni.evaluation.cost.measure`) against
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .imresize import imresize
from .registry import register_model
from .ops import (
    CascadingBlock,
    EfficientResidualBlock,
    MeanShift,
    MultiScaleUpsampler,
    ResidualBlock,
    SubPixelUpsampler,
    YChannelSR,
    conv2d,
)

__all__ = [
    "PublishedFigures",
    "PUBLISHED_X2",
    "Bicubic",
    "SRCNNCore",
    "FSRCNNCore",
    "VDSRCore",
    "CARN",
    "bicubic",
    "srcnn",
    "fsrcnn",
    "vdsr",
    "carn",
    "carn_m",
]


@dataclass(frozen=True)
class PublishedFigures:
    """Parameters and Mult-Adds of a network as a paper prints them (x2, 1280x720 output).

    ``params`` and ``multadds`` are the printed figures (rounded as printed, e.g. 57K -> 57_000);
    ``counts`` says which form of the network they describe.
    """

    params: int
    multadds: int
    source: str
    counts: str


#: Figures quoted in CARN's comparison table (Ahn et al., ECCV 2018) for x2, Mult-Adds for a
#: 1280x720 output. Keys are registry names.
PUBLISHED_X2: dict[str, PublishedFigures] = {
    "srcnn": PublishedFigures(
        57_000, 52_700_000_000, "Dong et al., TPAMI 2016; figures from Ahn et al., ECCV 2018",
        "9-5-5 network on the Y channel, weights and biases; convolutions at HR size (bicubic input)",
    ),
    "fsrcnn": PublishedFigures(
        12_000, 6_000_000_000, "Dong et al., ECCV 2016; figures from Ahn et al., ECCV 2018",
        "FSRCNN(56, 12, 4) on the Y channel; params = convolution weights only (12,464; biases and "
        "PReLU slopes excluded); the deconvolution counted as output pixels x in_channels x 9 x 9",
    ),
    "vdsr": PublishedFigures(
        665_000, 612_600_000_000, "Kim et al., CVPR 2016; figures from Ahn et al., ECCV 2018",
        "20 layers, 64 channels, on the Y channel, weights and biases; convolutions at HR size",
    ),
    "carn_m": PublishedFigures(
        412_000, 91_200_000_000, "Ahn et al., ECCV 2018",
        "params: the multi-scale model (x2, x3 and x4 upsamplers); Mult-Adds: the x2 path",
    ),
    "carn": PublishedFigures(
        1_592_000, 222_800_000_000, "Ahn et al., ECCV 2018",
        "params: the multi-scale model (x2, x3 and x4 upsamplers); Mult-Adds: the x2 path",
    ),
}

_SCALES = (2, 3, 4)


def _check_scale(name: str, scale: int, supported=_SCALES) -> int:
    if int(scale) != scale or scale not in supported:
        raise ValueError(f"{name} is defined for scales {list(supported)}, not x{scale}")
    return int(scale)


# --------------------------------------------------------------------------------------------
# Bicubic


class Bicubic(nn.Module):
    """MATLAB-compatible bicubic upsampling of the RGB input (the reference every SR paper beats)."""

    in_channels = 3

    def __init__(self, scale: int):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


# --------------------------------------------------------------------------------------------
# Y-channel networks (cores map a 1-channel image to a 1-channel image)


class SRCNNCore(nn.Sequential):
    """SRCNN 9-5-5: patch extraction 9x9 (1->64), non-linear mapping 5x5 (64->32), reconstruction 5x5 (32->1).

    'Same' padding, so the output has the size of its (bicubic-upsampled) input. 57,281 parameters.
    """

    def __init__(self, channels: tuple[int, int] = (64, 32), kernels: tuple[int, int, int] = (9, 5, 5)):
        n1, n2 = channels
        k1, k2, k3 = kernels
        super().__init__(
            conv2d(1, n1, k1), nn.ReLU(inplace=True),
            conv2d(n1, n2, k2), nn.ReLU(inplace=True),
            conv2d(n2, 1, k3),
        )


class FSRCNNCore(nn.Module):
    """FSRCNN(d, s, m) on the LR Y; the final 9x9 transposed convolution upsamples by ``scale``.

    feature 5x5 (1->d) | shrink 1x1 (d->s) | m x mapping 3x3 (s->s) | expand 1x1 (s->d), each with a
    per-channel PReLU | deconvolution 9x9 (d->1), stride ``scale``. Padding 4 and output padding
    ``scale - 1`` make the output exactly ``scale`` times the input. FSRCNN(56, 12, 4) has 12,464
    convolution weights (the paper's "12K") and 12,809 parameters with biases and PReLU slopes.
    Initialised as the paper says: He initialisation for PReLU on the convolutions, N(0, 0.001) on
    the deconvolution, zero biases.
    """

    def __init__(self, scale: int, d: int = 56, s: int = 12, m: int = 4):
        super().__init__()
        self.scale = int(scale)
        self.feature = nn.Sequential(conv2d(1, d, 5), nn.PReLU(d))
        self.shrink = nn.Sequential(conv2d(d, s, 1), nn.PReLU(s))
        mapping: list[nn.Module] = []
        for _ in range(m):
            mapping += [conv2d(s, s, 3), nn.PReLU(s)]
        self.mapping = nn.Sequential(*mapping)
        self.expand = nn.Sequential(conv2d(s, d, 1), nn.PReLU(d))
        self.deconv = nn.ConvTranspose2d(d, 1, 9, stride=self.scale, padding=4, output_padding=self.scale - 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.25, nonlinearity="leaky_relu")  # PReLU init 0.25
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.deconv.weight, std=0.001)
        nn.init.zeros_(self.deconv.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.expand(self.mapping(self.shrink(self.feature(y)))))


class VDSRCore(nn.Module):
    """VDSR: ``depth`` 3x3 convolutions (1->64, 64->64 ..., 64->1) with ReLU, plus the input.

    Global residual learning as published: the network predicts the difference between the HR Y
    and its (bicubic-upsampled) input. He initialisation as in the paper. 665,921 parameters.
    """

    def __init__(self, depth: int = 20, channels: int = 64):
        super().__init__()
        if depth < 2:
            raise ValueError(f"VDSR needs at least 2 layers, got depth={depth}")
        layers: list[nn.Module] = [conv2d(1, channels, 3), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [conv2d(channels, channels, 3), nn.ReLU(inplace=True)]
        layers.append(conv2d(channels, 1, 3))
        self.body = nn.Sequential(*layers)
        for module in self.body:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.body(y)


# --------------------------------------------------------------------------------------------
# CARN / CARN-M


class CARN(nn.Module):
    """Cascading Residual Network (``mobile=False``) or CARN-M (``mobile=True``), Ahn et al. 2018.

    mean shift (-) -> 3x3 conv (3->64) -> global cascade of 3 blocks -> sub-pixel upsampler ->
    3x3 conv (64->3) -> mean shift (+). A CARN block is a cascade of three residual blocks; a
    CARN-M block applies one efficient (grouped) residual block three times with shared weights,
    and CARN-M's upsampler convolutions are grouped too. The mean shifts are fixed buffers.

    Parameters with all three upsamplers (``multi_scale=True``): CARN 1,591,939, CARN-M 414,787.
    CARN with only its x2 upsampler: 964,163.
    """

    in_channels = 3

    def __init__(self, scale: int, *, mobile: bool = False, multi_scale: bool = True,
                 channels: int = 64, groups: int = 4):
        super().__init__()
        self.scale = _check_scale("CARN-M" if mobile else "CARN", scale)
        self.mobile = bool(mobile)
        self.multi_scale = bool(multi_scale)

        if mobile:
            def make_block() -> nn.Module:
                return CascadingBlock(channels, lambda: EfficientResidualBlock(channels, groups=groups),
                                      share_units=True)
        else:
            def make_block() -> nn.Module:
                return CascadingBlock(channels, lambda: ResidualBlock(channels))

        upsampler_groups = groups if mobile else 1
        self.sub_mean = MeanShift(sign=-1)
        self.entry = conv2d(3, channels, 3)
        self.body = CascadingBlock(channels, make_block)
        if self.multi_scale:
            self.upsample: nn.Module = MultiScaleUpsampler(channels, _SCALES, groups=upsampler_groups)
        else:
            self.upsample = SubPixelUpsampler(channels, self.scale, groups=upsampler_groups)
        self.exit = conv2d(channels, 3, 3)
        self.add_mean = MeanShift(sign=+1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(self.entry(self.sub_mean(x)))
        if self.multi_scale:
            features = self.upsample(features, self.scale)
        else:
            features = self.upsample(features)
        return self.add_mean(self.exit(features))

    def extra_repr(self) -> str:
        return f"scale={self.scale}, mobile={self.mobile}, multi_scale={self.multi_scale}"


# --------------------------------------------------------------------------------------------
# Registered builders


@register_model("bicubic", scales=_SCALES, trainable=False,
                description="MATLAB bicubic interpolation (no parameters)")
def bicubic(scale: int) -> Bicubic:
    return Bicubic(_check_scale("bicubic", scale))


@register_model("srcnn", scales=_SCALES,
                description="SRCNN 9-5-5 (Dong et al., TPAMI 2016) on the bicubic-upsampled Y channel")
def srcnn(scale: int) -> YChannelSR:
    return YChannelSR(SRCNNCore(), _check_scale("srcnn", scale), pre_upsample=True)


@register_model("fsrcnn", scales=_SCALES,
                description="FSRCNN(56, 12, 4) (Dong et al., ECCV 2016) on the LR Y channel")
def fsrcnn(scale: int, *, d: int = 56, s: int = 12, m: int = 4) -> YChannelSR:
    scale = _check_scale("fsrcnn", scale)
    return YChannelSR(FSRCNNCore(scale, d=d, s=s, m=m), scale, pre_upsample=False)


@register_model("vdsr", scales=_SCALES,
                description="VDSR, 20 layers (Kim et al., CVPR 2016), residual to the bicubic Y channel")
def vdsr(scale: int, *, depth: int = 20, channels: int = 64) -> YChannelSR:
    return YChannelSR(VDSRCore(depth, channels), _check_scale("vdsr", scale), pre_upsample=True)


@register_model("carn", scales=_SCALES,
                description="CARN (Ahn et al., ECCV 2018), multi-scale upsamplers by default")
def carn(scale: int, *, multi_scale: bool = True) -> CARN:
    return CARN(scale, mobile=False, multi_scale=multi_scale)


@register_model("carn_m", scales=_SCALES,
                description="CARN-M (Ahn et al., ECCV 2018): grouped, recursive CARN; multi-scale by default")
def carn_m(scale: int, *, multi_scale: bool = True, groups: int = 4) -> CARN:
    return CARN(scale, mobile=True, multi_scale=multi_scale, groups=groups)
