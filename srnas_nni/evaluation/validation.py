"""Whole-image validation of an SR model on a data set, as papers report it.

Each LR image goes through the model at full size (no patches), the output is clipped and rounded
to 8 bit, and PSNR/SSIM are measured on the Y channel with ``scale`` pixels cropped from every
border (:mod:`srnas_nni.evaluation.metrics`). The set's score is the mean of the per-image scores.
Gray images are fed to the model replicated to RGB and measured on their single channel.

:func:`validation_batches` yields a data set's images ready for the model (:class:`ValidationImage`);
:func:`validate` scores a model on them; :func:`super_resolve` runs a model on one ``uint8`` image.
An image too small to score (:func:`unscorable_reason`) is an error, or is skipped with a
:class:`~srnas_nni.evaluation.pairs.SkippedImageWarning` when the data set was built with
``skip_bad=True``; :func:`~srnas_nni.evaluation.data_checks.check_images` finds such images before a
run by the same rule.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import DatasetError, ImageReadError
from ..runtime import ieee_float32
from .images import to_rgb
from .metrics import SSIM_WINDOW, sr_metrics
from .pairs import SkippedImageWarning, SRPair, to_float_tensor

__all__ = ["ImageScore", "ValidationImage", "ValidationResult", "super_resolve", "to_uint8_image",
           "unscorable_reason", "validate", "validation_batches"]


@dataclass(frozen=True, eq=False)
class ValidationImage:
    """One whole validation image: feed ``lr`` to the model, score its output against ``hr``.

    ``lr``: float32 ``1x3xhxw`` in [0, 1], RGB (gray images replicated). ``hr``: the data set's
    ``uint8`` HR image as stored, ``HxW`` for gray or ``HxWx3``; an RGB model output for a gray
    image is compared on one channel.
    """

    name: str
    lr: torch.Tensor
    hr: np.ndarray
    path: str

    @property
    def is_gray(self) -> bool:
        return self.hr.ndim == 2


def validation_batches(dataset: Sequence[SRPair],
                       device: torch.device | str = "cpu") -> Iterator[ValidationImage]:
    """The data set's images one at a time, in order, ready for ``model(image.lr)``."""
    for index in range(len(dataset)):
        pair = dataset[index]
        lr = to_float_tensor(to_rgb(pair.lr)[None], device)
        yield ValidationImage(pair.name, lr, pair.hr, pair.path)


def unscorable_reason(width: int, height: int, crop: int) -> str | None:
    """Why a ``width x height`` HR image cannot be scored with a ``crop``-pixel border crop, or None."""
    if min(width, height) - 2 * crop < SSIM_WINDOW:
        return (f"image {width}x{height} is too small to score: SSIM needs {SSIM_WINDOW}x{SSIM_WINDOW} "
                f"pixels after the {crop}-pixel border crop")
    return None


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr: float
    ssim: float
    psnr_rgb: float


@dataclass
class ValidationResult:
    """Mean Y-PSNR/SSIM (and labelled RGB PSNR) over a set, with the per-image scores."""

    psnr: float
    ssim: float
    psnr_rgb: float
    scale: int
    crop: int
    images: list[ImageScore] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "psnr": self.psnr,
            "ssim": self.ssim,
            "psnr_rgb": self.psnr_rgb,
            "scale": self.scale,
            "crop": self.crop,
            "images": [asdict(image) for image in self.images],
        }


def to_uint8_image(batch: torch.Tensor) -> np.ndarray:
    """First image of a float NCHW batch in [0, 1] -> uint8 HxWxC, clipped and rounded (halves up)."""
    return batch[0].clamp(0, 1).mul(255.0).add(0.5).floor().byte().permute(1, 2, 0).cpu().numpy()


def super_resolve(model: nn.Module, lr: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Run ``model`` on one uint8 LR image (HxW or HxWx3); return the uint8 HxWx3 SR image."""
    with torch.no_grad(), ieee_float32():
        return to_uint8_image(model(to_float_tensor(to_rgb(lr)[None], device)))


def validate(model: nn.Module, dataset, *, device: torch.device | str = "cpu", crop: int | None = None,
             progress: bool = False) -> ValidationResult:
    """Score ``model`` on every image of ``dataset`` (a sequence of ``SRPair`` with ``scale``)."""
    scale = int(dataset.scale)
    crop = scale if crop is None else int(crop)
    was_training = model.training
    model.eval()
    scores: list[ImageScore] = []
    images = validation_batches(dataset, device)
    if progress:
        from tqdm.auto import tqdm

        images = tqdm(images, total=len(dataset), desc="validate", leave=False)
    try:
        for image in images:
            height, width = image.hr.shape[:2]
            reason = unscorable_reason(width, height, crop)
            if reason is not None:
                if getattr(dataset, "skip_bad", False):
                    warnings.warn(SkippedImageWarning(f"{image.name}: {reason}; skipped"), stacklevel=2)
                    continue
                raise ImageReadError(image.name, reason)
            with torch.no_grad(), ieee_float32():
                sr = to_uint8_image(model(image.lr))
            if sr.shape[:2] != image.hr.shape[:2]:
                raise ValueError(
                    f"{image.name}: model output {sr.shape[1]}x{sr.shape[0]} does not match the HR image "
                    f"{image.hr.shape[1]}x{image.hr.shape[0]} at x{scale}"
                )
            m = sr_metrics(sr, image.hr, crop)
            scores.append(ImageScore(image.name, float(m["psnr"]), float(m["ssim"]), float(m["psnr_rgb"])))
    finally:
        model.train(was_training)
    if not scores:
        raise DatasetError(f"no image of the {len(dataset)} in the validation set is large enough to score at "
                           f"x{scale} with a {crop}-pixel crop")
    return ValidationResult(
        psnr=float(np.mean([s.psnr for s in scores])),
        ssim=float(np.mean([s.ssim for s in scores])),
        psnr_rgb=float(np.mean([s.psnr_rgb for s in scores])),
        scale=scale,
        crop=crop,
        images=scores,
    )
