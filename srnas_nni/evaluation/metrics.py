"""PSNR and SSIM measured the way SR papers measure them.

Published SR tables (Set5, Set14, B100, Urban100, ...) come from MATLAB evaluation scripts with
the conventions below; numbers measured any other way are not comparable with them. Every function
here applies them:

* Both images are quantised to 8 bit first: float values in [0, 1] become ``round(x * 255)``
  clipped to [0, 255] (halves round up, as MATLAB's ``im2uint8``).
* ``crop`` pixels are removed from every border; papers use ``crop = scale``.
* By default the metrics are taken on the Y channel of BT.601 studio-swing YCbCr,
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``, rounded to 8 bit as MATLAB's
  ``rgb2ycbcr`` does on ``uint8`` images. ``y_channel=False`` measures all channels (RGB).
* Single-channel (grayscale) images are measured as they are. When HR is grayscale but SR has
  three channels, SR is converted with BT.601 full-range luma ``0.299 R + 0.587 G + 0.114 B``,
  rounded to 8 bit exactly as PIL's ``convert("L")`` rounds it (bit for bit).
* PSNR is ``10 log10(255^2 / MSE)`` in float64 (``inf`` for identical images), computed per
  image and then averaged over the batch, as papers average per-image PSNRs.
* SSIM is Wang et al.'s ``ssim_index.m``: 11x11 Gaussian window with sigma 1.5, K1 = 0.01,
  K2 = 0.03, L = 255, 'valid' filtering (no padding), mean of the SSIM map, no automatic
  downsampling; multi-channel images are averaged over channels.

Everything runs as one batched float64 torch computation on the input's device; numpy images are
turned into a batch of one and take the same path.
"""

from __future__ import annotations

import functools
import operator
from typing import Literal, Union

import numpy as np
import torch

__all__ = ["rgb_to_y", "psnr", "ssim", "sr_metrics", "SSIM_WINDOW"]

ImageLike = Union[np.ndarray, torch.Tensor]
Reduction = Literal["mean", "none"]

_PEAK = 255.0
#: Side of the SSIM window: an image must keep this much after the border crop to be scored.
SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03

# Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, scaled by 255000 to integers. Some colours,
# e.g. (0, 204, 68), give exactly x.5, where float evaluation of the formula rounds either way
# depending on the order of operations. Here the numerator is an integer below 2^53 (exact in
# float64) and one correctly rounded division cannot cross an integer, so the rounding is exact
# (halves up, as MATLAB) while NaNs from a diverged model still propagate.
_Y_WEIGHTS = (65481.0, 128553.0, 24966.0)
_Y_DENOMINATOR = 255000.0
_Y_OFFSET = 16 * _Y_DENOMINATOR + _Y_DENOMINATOR / 2  # +0.5 to round half up with a floor
# PIL's convert("L"): 0.299/0.587/0.114 as 16-bit fixed point, rounded; reproducing it bit for bit
# means that an SR image converted here equals the same image converted with PIL.
_GRAY_WEIGHTS = (19595.0, 38470.0, 7471.0)
_GRAY_DENOMINATOR = 65536.0
_GRAY_OFFSET = _GRAY_DENOMINATOR / 2


def _shape(image: ImageLike) -> tuple[int, ...]:
    return tuple(image.shape)


def _as_8bit_batch(image: ImageLike, name: str) -> torch.Tensor:
    """An image or batch as a float64 NCHW tensor of 8-bit values (integers in [0, 255])."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"{name}: numpy images must be uint8, got {image.dtype}")
        if image.ndim not in (2, 3):
            raise ValueError(f"{name}: numpy images must be HxW or HxWxC, got shape {image.shape}")
        # astype copies, so read-only arrays (np.asarray of a PIL image) convert without warnings.
        values = torch.from_numpy(image.astype(np.float64))
        return values[None, None] if image.ndim == 2 else values.permute(2, 0, 1)[None]
    if isinstance(image, torch.Tensor):
        if image.dim() != 4:
            raise ValueError(f"{name}: tensors must be NCHW batches, got shape {_shape(image)}")
        if image.dtype == torch.uint8:
            return image.to(torch.float64)
        if not image.is_floating_point():
            raise TypeError(f"{name}: tensors must be floating point in [0, 1] or uint8, got {image.dtype}")
        # float64 before scaling so that float32 inputs such as k / 255 come back to exactly k.
        scaled = image.detach().to(torch.float64).mul(_PEAK).clamp_(0.0, _PEAK)
        return scaled.add_(0.5).floor_()
    raise TypeError(f"{name}: expected a numpy array or a torch tensor, got {type(image).__name__}")


def _weighted_rounded(batch: torch.Tensor, weights: tuple[float, ...], offset: float,
                      denominator: float) -> torch.Tensor:
    """``floor((sum_c weights[c] * batch[:, c] + offset) / denominator)``, keeping a channel dim."""
    r, g, b = batch[:, 0:1], batch[:, 1:2], batch[:, 2:3]
    return torch.floor((weights[0] * r + weights[1] * g + weights[2] * b + offset) / denominator)


def _y_from_rgb8(batch: torch.Tensor) -> torch.Tensor:
    return _weighted_rounded(batch, _Y_WEIGHTS, _Y_OFFSET, _Y_DENOMINATOR)


def _gray_from_rgb8(batch: torch.Tensor) -> torch.Tensor:
    return _weighted_rounded(batch, _GRAY_WEIGHTS, _GRAY_OFFSET, _GRAY_DENOMINATOR)


def rgb_to_y(image: ImageLike) -> ImageLike:
    """The Y channel (BT.601 studio swing, rounded to 8 bit) of an RGB image or batch.

    Args:
        image: a ``uint8`` numpy array ``HxWx3``, or an ``Nx3xHxW`` torch tensor, floating point in
            [0, 1] (quantised to 8 bit first, as :func:`psnr` does, so both kinds of input give the
            same values) or ``uint8``.

    Returns:
        For a numpy array, a float64 ``HxW`` array; for a tensor, a float64 ``Nx1xHxW`` tensor on
        the same device. Values are integers in [16, 235].
    """
    batch = _as_8bit_batch(image, "image")
    if batch.shape[1] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels (RGB), got shape {_shape(image)}")
    y = _y_from_rgb8(batch)
    return y[0, 0].numpy() if isinstance(image, np.ndarray) else y


def _check_crop(crop: int) -> int:
    crop = operator.index(crop)
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    return crop


def _prepare_pair(sr: ImageLike, hr: ImageLike, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise, apply the gray-HR rule, check shapes and crop borders; returns float64 NCHW."""
    crop = _check_crop(crop)
    x = _as_8bit_batch(sr, "sr")
    y = _as_8bit_batch(hr, "hr").to(x.device)
    if y.shape[1] == 1 and x.shape[1] == 3:
        x = _gray_from_rgb8(x)
    if x.shape != y.shape:
        raise ValueError(f"sr and hr shapes do not match: sr {_shape(sr)}, hr {_shape(hr)}")
    height, width = x.shape[-2:]
    if height <= 2 * crop or width <= 2 * crop:
        raise ValueError(f"crop={crop} removes the whole image: sr {_shape(sr)}, hr {_shape(hr)}")
    if crop:
        x = x[..., crop : height - crop, crop : width - crop]
        y = y[..., crop : height - crop, crop : width - crop]
    return x, y


def _select_channels(x: torch.Tensor, y: torch.Tensor, y_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if not y_channel or x.shape[1] == 1:
        return x, y
    if x.shape[1] != 3:
        raise ValueError(f"y_channel=True needs 1 or 3 channels, got {x.shape[1]}; use y_channel=False")
    return _y_from_rgb8(x), _y_from_rgb8(y)


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _reduce(values: torch.Tensor, reduction: str, numpy_inputs: bool):
    if reduction == "mean":
        return float(values.mean())
    return values.cpu().numpy() if numpy_inputs else values


def _psnr_values(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mse = (x - y).square_().mean(dim=(1, 2, 3))
    # mse == 0 gives inf without warnings in torch, which is the right PSNR for identical images.
    return 10.0 * torch.log10(_PEAK**2 / mse)


@functools.lru_cache(maxsize=1)
def _gaussian_taps() -> tuple[float, ...]:
    """The 11 taps of the normalised 1-D Gaussian (sigma 1.5), as float64 values."""
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    window = torch.exp(-offsets.square() / (2.0 * _SSIM_SIGMA**2))
    # fspecial's 2-D Gaussian normalised to sum 1 is the outer product of this normalised 1-D one.
    return tuple((window / window.sum()).tolist())


def _filter_valid(planes: torch.Tensor, taps: tuple[float, ...], dim: int) -> torch.Tensor:
    """'valid' correlation of ``planes`` with the 1-D ``taps`` along ``dim``, as weighted shifted sums.

    Each output is ``sum_k taps[k] * planes[i + k]``: the sum a convolution computes (in another
    order, so equal to float64 rounding), but as ``len(taps)`` multiply-adds over whole slices, which
    on CPU is several times faster than float64 ``conv2d`` (it has no vectorised kernel for doubles).
    """
    length = planes.shape[dim] - len(taps) + 1
    out = planes.narrow(dim, 0, length) * taps[0]
    for offset in range(1, len(taps)):
        out.add_(planes.narrow(dim, offset, length), alpha=taps[offset])
    return out


def _ssim_values(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    height, width = x.shape[-2:]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after cropping, "
            f"got {height}x{width}"
        )
    channels = x.shape[1]
    # All five local statistics of every channel filtered together: the 2-D Gaussian window is
    # the outer product of the 1-D one, so a vertical then a horizontal 1-D pass apply it.
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    taps = _gaussian_taps()
    stats = _filter_valid(_filter_valid(stats, taps, dim=2), taps, dim=3)
    mu_x, mu_y, xx, yy, xy = stats.split(channels, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x, var_y, cov = xx - mu_xx, yy - mu_yy, xy - mu_xy
    c1 = (_SSIM_K1 * _PEAK) ** 2
    c2 = (_SSIM_K2 * _PEAK) ** 2
    ssim_map = ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    # Mean of each channel's map, then over channels: equal sizes make it one mean per image.
    return ssim_map.mean(dim=(1, 2, 3))


def psnr(sr: ImageLike, hr: ImageLike, crop: int = 0, y_channel: bool = True,
         reduction: Reduction = "mean") -> float | torch.Tensor | np.ndarray:
    """Peak signal-to-noise ratio in dB, with the SR literature's conventions (module docstring).

    Args:
        sr: the super-resolved image: a ``uint8`` numpy array ``HxWxC`` or ``HxW`` (one image), or
            an ``NxCxHxW`` torch tensor, floating point in [0, 1] or ``uint8`` (a batch; any device).
        hr: the ground truth, of the same kind of shape; a 1-channel ``hr`` with a 3-channel ``sr``
            measures ``sr`` converted to gray (PIL's luma).
        crop: pixels removed from every border (``scale`` in papers).
        y_channel: measure the Y channel of 3-channel images; ``False`` measures all channels (RGB).
        reduction: ``"mean"`` for a float, the mean of the per-image PSNRs; ``"none"`` for the
            per-image values as a float64 tensor on ``sr``'s device, or a 1-element float64 numpy
            array when both inputs are numpy arrays.

    Raises:
        ValueError: shapes that do not match (the message names both), a crop leaving nothing.
    """
    _check_reduction(reduction)
    x, y = _prepare_pair(sr, hr, crop)
    x, y = _select_channels(x, y, y_channel)
    return _reduce(_psnr_values(x, y), reduction, _numpy_inputs(sr, hr))


def ssim(sr: ImageLike, hr: ImageLike, crop: int = 0, y_channel: bool = True,
         reduction: Reduction = "mean") -> float | torch.Tensor | np.ndarray:
    """Structural similarity as Wang et al.'s MATLAB ``ssim_index`` (module docstring).

    Arguments and return values as :func:`psnr`. Multi-channel images (``y_channel=False``) give
    the mean of the per-channel SSIMs.

    Raises:
        ValueError: as :func:`psnr`, and when the cropped image is smaller than the 11x11 window.
    """
    _check_reduction(reduction)
    x, y = _prepare_pair(sr, hr, crop)
    x, y = _select_channels(x, y, y_channel)
    return _reduce(_ssim_values(x, y), reduction, _numpy_inputs(sr, hr))


def _numpy_inputs(sr: ImageLike, hr: ImageLike) -> bool:
    return isinstance(sr, np.ndarray) and isinstance(hr, np.ndarray)


def sr_metrics(sr: ImageLike, hr: ImageLike, crop: int) -> dict[str, float | int]:
    """The usual SR report for one image or a batch (means over the batch).

    Args:
        crop: border pixels ignored; papers use ``crop = scale``.

    Returns:
        ``{"psnr": Y-PSNR, "ssim": Y-SSIM, "psnr_rgb": PSNR over all channels, "crop": crop}``;
        for 1-channel images ``psnr_rgb`` equals ``psnr``.
    """
    crop = _check_crop(crop)
    x, y = _prepare_pair(sr, hr, crop)
    x_y, y_y = _select_channels(x, y, y_channel=True)
    return {
        "psnr": float(_psnr_values(x_y, y_y).mean()),
        "ssim": float(_ssim_values(x_y, y_y).mean()),
        "psnr_rgb": float(_psnr_values(x, y).mean()),
        "crop": crop,
    }
