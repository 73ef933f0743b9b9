"""The SR pair, how its LR image is made, and the conventions shared by everything that reads pairs.

:class:`SRPair` is what every data set of :mod:`srnas_nni.evaluation.data` yields: a ``uint8`` HR
image mod-cropped to a multiple of ``scale`` (:func:`modcrop`) and its LR image, ``scale`` times
smaller, both ``HxWx3`` or both ``HxW``. An LR image made on the fly is the SR literature's:
MATLAB bicubic ``imresize(hr, 1/scale)`` rounded to 8 bits (:func:`bicubic_lr`). Sizes in messages
are ``WxH`` (:func:`size_text`).

Shared by the data sets, the patch sampler (:mod:`~srnas_nni.evaluation.patches`) and whole-image
validation (:mod:`~srnas_nni.evaluation.validation`):

* :func:`to_float_tensor`: ``uint8`` images to the float tensors a model takes;
* :class:`SkippedImageWarning` for an image left out under ``skip_bad=True``, given once per file
  and process: :func:`warn_skipped` stays silent for files :func:`mark_skip_reported` lists (a run
  that already announced them in one summary line).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ImageReadError
from ..models.imresize import imresize

__all__ = ["SRPair", "modcrop", "bicubic_lr", "to_float_tensor", "SkippedImageWarning", "mark_skip_reported"]


@dataclass(frozen=True, eq=False)
class SRPair:
    """One HR image and its LR version, ``uint8``; ``hr`` is exactly ``scale`` times ``lr``."""

    name: str
    hr: np.ndarray
    lr: np.ndarray
    path: str


def checked_scale(scale: Any) -> int:
    """``scale`` as an ``int``; ``ValueError`` unless it is a positive integer."""
    if isinstance(scale, bool) or int(scale) != scale or int(scale) < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return int(scale)


def size_text(image: np.ndarray) -> str:
    """An image's size as messages give it, ``WxH``."""
    return f"{image.shape[1]}x{image.shape[0]}"


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop height and width down to multiples of ``scale``, keeping the top-left corner (a view)."""
    scale = checked_scale(scale)
    height, width = image.shape[:2]
    return image[: height - height % scale, : width - width % scale]


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image of a mod-cropped ``uint8`` HR image: MATLAB ``imresize(hr, 1/scale)``, 8 bits."""
    return imresize(np.ascontiguousarray(hr), 1.0 / checked_scale(scale))


def pair_from_hr(name: str, path: str | Path, image: np.ndarray, scale: int) -> SRPair:
    """Mod-crop ``image`` and make its bicubic LR; an image smaller than ``scale`` is an error."""
    hr = np.ascontiguousarray(modcrop(image, scale))
    if hr.size == 0:
        raise ImageReadError(path, f"image {size_text(image)} is smaller than the scale factor {scale}")
    return SRPair(name, hr, bicubic_lr(hr, scale), str(path))


def to_float_tensor(images: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """``uint8`` ``NxHxWxC`` -> float32 ``NxCxHxW`` in [0, 1] on ``device`` (moved as bytes: 4x less)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return tensor.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


class SkippedImageWarning(UserWarning):
    """An image was left out of a data set or sampler built with ``skip_bad=True``."""


# Resolved paths of images whose skipping a run already announced in one summary line.
_skips_reported: set[str] = set()


def _skip_key(path: str | Path) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return str(path)


def mark_skip_reported(paths) -> None:
    """Record that skipping these image files was already reported (a run's one summary line), so
    that data sets and samplers of this process skip them without a warning per file."""
    _skips_reported.update(_skip_key(path) for path in paths)


def warn_skipped(error: Exception | str, path: str | Path, stacklevel: int) -> None:
    """A :class:`SkippedImageWarning` for ``path``, unless :func:`mark_skip_reported` announced it."""
    if _skips_reported and _skip_key(path) in _skips_reported:
        return
    warnings.warn(f"skipping {error}", SkippedImageWarning, stacklevel=stacklevel + 1)
