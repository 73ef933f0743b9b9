"""MATLAB-compatible bicubic ``imresize``.

SR benchmarks (Set5, DIV2K's ``LR_bicubic``...) were made with MATLAB's ``imresize(img, 1/s,
'bicubic')``: cubic kernel with a = -0.5, a kernel widened by ``1/s`` when shrinking
(antialiasing), symmetric border handling, rows resized before columns. ``torch``'s and PIL's
bicubic differ from it, and LR made with them gives PSNRs that are not comparable with papers.

Two implementations of the same algorithm:

* :func:`imresize`, vectorised in torch (CPU or CUDA, batched NCHW tensors or numpy images);
* :func:`imresize_reference`, a literal per-pixel numpy transliteration used by the tests.

Output dtype follows MATLAB: ``uint8`` in gives ``uint8`` out (rounded and clipped), floating point
in gives the same floating type out, neither rounded nor clipped.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch

__all__ = ["imresize", "imresize_reference", "output_size", "traceable_bicubic_upscale"]

_CUBIC_SUPPORT = 4.0


def output_size(size: int, scale: float) -> int:
    """MATLAB's ``ceil(size * scale)``, immune to float noise such as ``255 * (1 / 3)``."""
    return int(math.ceil(round(size * scale, 9)))


def _cubic(x: np.ndarray) -> np.ndarray:
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    near = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return near + far


@lru_cache(maxsize=256)
def _contributions(in_len: int, out_len: int, scale: float, antialias: bool):
    """Per output index: source indices (0-based, mirrored into range) and their weights."""
    shrink_aa = scale < 1 and antialias
    kernel_width = _CUBIC_SUPPORT / scale if shrink_aa else _CUBIC_SUPPORT
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # output pixel centre in input coordinates (1-based)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if shrink_aa else _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    used = np.any(weights != 0, axis=0)
    return indices[:, used].copy(), weights[:, used].copy()


def _target_sizes(in_hw: Sequence[int], scale, output_shape) -> tuple[tuple[int, int], tuple[float, float]]:
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize needs exactly one of scale or output_shape")
    if output_shape is not None:
        out_hw = (int(output_shape[0]), int(output_shape[1]))
        scales = (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])
    else:
        if isinstance(scale, (tuple, list)):
            scales = (float(scale[0]), float(scale[1]))
        else:
            scales = (float(scale), float(scale))
        if min(scales) <= 0:
            raise ValueError(f"imresize scale must be positive, got {scale}")
        out_hw = (output_size(in_hw[0], scales[0]), output_size(in_hw[1], scales[1]))
    if min(out_hw) < 1:
        raise ValueError(f"imresize output size {out_hw} is empty for input {tuple(in_hw)}")
    return out_hw, scales


def _dimension_order(scales: tuple[float, float]) -> list[int]:
    # MATLAB resizes the dimension with the smallest scale first; rows first on ties.
    return sorted((0, 1), key=lambda d: (scales[d], d))


def _resize_dim(x: torch.Tensor, dim: int, in_len: int, out_len: int, scale: float, antialias: bool):
    indices, weights = _contributions(in_len, out_len, scale, antialias)
    idx = torch.from_numpy(indices).to(x.device)
    w = torch.from_numpy(weights).to(device=x.device, dtype=x.dtype)
    taps = idx.shape[1]
    gathered = x.index_select(dim, idx.reshape(-1))
    shape = list(x.shape)
    shape[dim : dim + 1] = [out_len, taps]
    gathered = gathered.reshape(shape)
    w_shape = [1] * len(shape)
    w_shape[dim], w_shape[dim + 1] = out_len, taps
    return (gathered * w.reshape(w_shape)).sum(dim=dim + 1)


def _resize_tensor(x: torch.Tensor, scale, output_shape, antialias: bool) -> torch.Tensor:
    """Resize the last two dimensions of a floating tensor."""
    h_dim, w_dim = x.dim() - 2, x.dim() - 1
    out_hw, scales = _target_sizes(x.shape[-2:], scale, output_shape)
    for d in _dimension_order(scales):
        dim = h_dim if d == 0 else w_dim
        x = _resize_dim(x, dim, x.shape[dim], out_hw[d], scales[d], antialias)
    return x


def imresize(image, scale: float | tuple[float, float] | None = None, *,
             output_shape: tuple[int, int] | None = None, antialias: bool = True):
    """Resize like MATLAB's ``imresize(image, scale, 'bicubic')``.

    Args:
        image: a numpy array ``HxW`` or ``HxWxC`` (channels last, as images are stored), or a
            torch tensor whose last two dimensions are ``H, W`` (``HxW``, ``CxHxW``, ``NxCxHxW``).
        scale: the factor (``0.5`` shrinks by 2, ``3`` enlarges by 3), or one per dimension.
        output_shape: ``(H, W)`` of the result, instead of ``scale``.
        antialias: widen the kernel when shrinking, as MATLAB does by default.

    Returns:
        An array or tensor of the same kind and dtype. ``uint8`` results are rounded and clipped
        to [0, 255]; floating results are neither.
    """
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise ValueError(f"imresize expects an HxW or HxWxC array, got shape {image.shape}")
        # A copy when needed: torch refuses to share read-only memory (np.asarray of a PIL image).
        array = image if image.flags.writeable and image.flags.c_contiguous else np.array(image, order="C")
        planar = torch.from_numpy(array)
        planar = planar.permute(2, 0, 1) if image.ndim == 3 else planar
        result = imresize(planar, scale, output_shape=output_shape, antialias=antialias)
        result = result.permute(1, 2, 0) if image.ndim == 3 else result
        return result.contiguous().numpy()
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"imresize expects a numpy array or a torch tensor, got {type(image).__name__}")
    if image.dim() < 2:
        raise ValueError(f"imresize expects at least 2 dimensions, got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        # 8-bit images are resized in double precision and rounded once at the end, halves away
        # from zero as MATLAB rounds. (MATLAB's uint8 path also rounds between the row and column
        # passes; one rounding is the protocol of the published bicubic tables and matches them
        # better, e.g. Set5 x2 33.649 dB vs 33.640 dB against the published 33.66 dB.)
        out = _resize_tensor(image.to(torch.float64), scale, output_shape, antialias)
        return out.clamp_(0, 255).add_(0.5).floor_().to(torch.uint8)
    if not image.is_floating_point():
        raise TypeError(f"imresize supports uint8 and floating tensors, got {image.dtype}")
    factor = _integer_factor(scale)
    if factor is not None and output_shape is None and _tracing():
        # A trace (TorchScript, ONNX) would record the sizes the weights below are built from.
        return traceable_bicubic_upscale(image, factor)
    return _resize_tensor(image, scale, output_shape, antialias)


# --------------------------------------------------------------------------------------------
# Reference implementation: MATLAB's algorithm written out pixel by pixel (slow, tests only).


def _reference_contributions(in_len: int, out_len: int, scale: float, antialias: bool):
    kernel_width = 4.0 / scale if (scale < 1 and antialias) else 4.0
    rows = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - kernel_width / 2)
        taps = []
        for j in range(int(math.ceil(kernel_width)) + 2):
            index = left + j
            d = u - index
            if scale < 1 and antialias:
                w = scale * float(_cubic(np.array(d * scale)))
            else:
                w = float(_cubic(np.array(d)))
            # symmetric padding: ..., 2, 1 | 1, 2, ..., n | n, n-1, ...
            k = (index - 1) % (2 * in_len)
            source = k if k < in_len else 2 * in_len - 1 - k
            taps.append((source, w))
        total = sum(w for _, w in taps)
        rows.append([(s, w / total) for s, w in taps])
    return rows


def imresize_reference(image: np.ndarray, scale: float | None = None, *,
                       output_shape: tuple[int, int] | None = None, antialias: bool = True) -> np.ndarray:
    """Pixel-by-pixel numpy version of :func:`imresize` for ``HxW``/``HxWxC`` arrays."""
    squeeze = image.ndim == 2
    data = image[:, :, None] if squeeze else image
    out_hw, scales = _target_sizes(data.shape[:2], scale, output_shape)
    work = data.astype(np.float64)
    for d in _dimension_order(scales):
        in_len = work.shape[d]
        rows = _reference_contributions(in_len, out_hw[d], scales[d], antialias)
        moved = np.moveaxis(work, d, 0)
        out = np.zeros((out_hw[d],) + moved.shape[1:], dtype=np.float64)
        for o, taps in enumerate(rows):
            for source, w in taps:
                out[o] += w * moved[source]
        work = np.moveaxis(out, 0, d)
    if image.dtype == np.uint8:
        work = np.floor(np.clip(work, 0, 255) + 0.5).astype(np.uint8)
    else:
        work = work.astype(image.dtype)
    return work[:, :, 0] if squeeze else work


# --------------------------------------------------------------------------------------------
# Integer upscaling as fixed per-phase filters: the same numbers, with no size computed in Python,
# so that a traced or exported network (global bicubic residual) works at any input size.


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def _integer_factor(scale) -> int | None:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        return None
    return int(scale) if float(scale).is_integer() and scale >= 1 else None


@lru_cache(maxsize=8)
def _phase_taps(scale: int) -> tuple[int, int, tuple[tuple[int, tuple[float, ...]], ...]]:
    """MATLAB bicubic upscaling by an integer ``scale`` as ``scale`` fixed filters (one per output phase).

    Output pixel ``o = scale * k + p`` (0-based) reads input pixels ``k + first_p + t``; returns
    (pad before, pad after, ((first_p, weights_p), ...)) with zero-weight taps trimmed.
    """
    phases = []
    for phase in range(scale):
        centre = (phase + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate at k = 0
        left = math.floor(centre - 2.0)
        positions = left + np.arange(6)
        weights = _cubic(centre - positions)
        weights = weights / weights.sum()
        used = np.nonzero(weights)[0]
        first, last = used[0], used[-1]
        phases.append((int(positions[first]) - 1, tuple(float(w) for w in weights[first:last + 1])))
    pad_before = max(0, -min(first for first, _ in phases))
    pad_after = max(0, max(first + len(weights) - 1 for first, weights in phases))
    return pad_before, pad_after, tuple(phases)


def _symmetric_pad(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    parts = []
    if before:
        parts.append(x.narrow(dim, 0, before).flip(dim))
    parts.append(x)
    if after:
        parts.append(x.flip(dim).narrow(dim, 0, after))
    return torch.cat(parts, dim)


def _upscale_dim(x: torch.Tensor, dim: int, scale: int) -> torch.Tensor:
    pad_before, pad_after, phases = _phase_taps(scale)
    padded = _symmetric_pad(x, dim, pad_before, pad_after)
    outputs = []
    for first, weights in phases:
        total = None
        for offset, weight in enumerate(weights):
            start = pad_before + first + offset
            stop = start - (pad_before + pad_after)  # <= 0: counted from the end, independent of the size
            index = [slice(None)] * padded.dim()
            index[dim] = slice(start, stop if stop < 0 else None)
            term = padded[tuple(index)] * weight
            total = term if total is None else total + term
        outputs.append(total)
    return torch.stack(outputs, dim + 1).flatten(dim, dim + 1)


def traceable_bicubic_upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` for an integer ``scale >= 1`` on a float ``...xHxW`` tensor.

    Equal to :func:`~srnas_nni.models.imresize.imresize` (to float rounding) for inputs of at
    least 2 pixels per side, written with slices of constant bounds so a trace records no size.
    """
    height_dim, width_dim = x.dim() - 2, x.dim() - 1
    return _upscale_dim(_upscale_dim(x, height_dim, scale), width_dim, scale)
