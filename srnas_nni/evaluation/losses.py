"""Training losses for SR, selectable by name.

* ``l1``: mean absolute error, the default of EDSR/CARN/HNAS/DeCoNAS training.
* ``mse``: mean squared error (SRCNN/VDSR/FSRCNN were published with it).
* ``charbonnier``: sqrt(d^2 + eps^2), a smooth L1 (LapSRN).
* ``hfen``: high-frequency error norm, ``||LoG(sr - hr)|| / ||LoG(hr)||`` with a 15x15
  Laplacian-of-Gaussian (sigma 1.5) on each channel (Ravishankar & Bresler, 2011).
* ``l1+hfen``: ``l1 + 0.2 * hfen``, the search loss of DLSR.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import SRNASError

__all__ = ["LOSSES", "get_loss", "hfen"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _l1(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(sr, hr)


def _mse(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(sr, hr)


def _charbonnier(sr: torch.Tensor, hr: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((sr - hr) ** 2 + eps * eps).mean()


def _log_kernel(size: int = 15, sigma: float = 1.5) -> torch.Tensor:
    half = size // 2
    coords = torch.arange(-half, half + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    r2 = xx**2 + yy**2
    gauss = torch.exp(-r2 / (2 * sigma**2))
    log = (r2 - 2 * sigma**2) / (sigma**4) * gauss / (2 * math.pi * sigma**2)
    return log - log.mean()  # zero DC response: flat regions give no high-frequency error


_LOG_CACHE: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def hfen(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    key = (sr.device, sr.dtype)
    if key not in _LOG_CACHE:
        _LOG_CACHE[key] = _log_kernel().to(device=sr.device, dtype=sr.dtype)[None, None]
    kernel = _LOG_CACHE[key]
    channels = sr.shape[1]
    weight = kernel.expand(channels, 1, *kernel.shape[-2:])
    pad = kernel.shape[-1] // 2
    diff = F.conv2d(F.pad(sr - hr, (pad,) * 4, mode="reflect"), weight, groups=channels)
    ref = F.conv2d(F.pad(hr, (pad,) * 4, mode="reflect"), weight, groups=channels)
    return diff.flatten(1).norm(dim=1).div(ref.flatten(1).norm(dim=1).clamp_min(1e-8)).mean()


def _l1_hfen(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    return _l1(sr, hr) + 0.2 * hfen(sr, hr)


LOSSES: dict[str, LossFn] = {
    "l1": _l1,
    "mse": _mse,
    "charbonnier": _charbonnier,
    "hfen": hfen,
    "l1+hfen": _l1_hfen,
}


def get_loss(name: str) -> LossFn:
    try:
        return LOSSES[name]
    except KeyError:
        raise SRNASError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}") from None
