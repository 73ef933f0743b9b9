"""Random aligned LR/HR training patches from a data set: :class:`PatchSampler`.

The multi-trial trainer (:mod:`srnas_nni.evaluation.trainer`) and the one-shot Lightning loaders
(:mod:`srnas_nni.evaluation.lightning`) draw their batches here, from any sequence of
:class:`~srnas_nni.evaluation.pairs.SRPair` (a data set of :mod:`srnas_nni.evaluation.data`).
A batch is ``uint8`` numpy slicing of images held in memory, then one conversion to float tensors
(:func:`~srnas_nni.evaluation.pairs.to_float_tensor`); gray images are replicated to RGB.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import DatasetError, ImageReadError
from .pairs import SRPair, checked_scale, size_text, to_float_tensor, warn_skipped

__all__ = ["PatchSampler"]


class PatchSampler:
    """Random aligned LR/HR training patches from a data set, as float tensors.

    Each batch draws ``batch_size`` images uniformly at random (with replacement), a random LR
    patch position ``(y, x)`` of side ``patch_size // scale`` and the HR patch at
    ``(scale * y, scale * x)`` of side ``patch_size``, then (``augment``) one of the 8 flips and
    90-degree rotations, the same for LR and HR. All images are held in memory (the data set's
    own arrays when it caches) so a batch is numpy slicing only.

    Deterministic given ``seed``; :meth:`state_dict` / :meth:`load_state_dict` save and restore
    the random state so a resumed training run draws the same batches as an uninterrupted one.
    An image smaller than the patch is an :class:`~srnas_nni.errors.ImageReadError` naming it, or is
    skipped with a :class:`~srnas_nni.evaluation.pairs.SkippedImageWarning` if the data set was built
    with ``skip_bad=True``.
    """

    def __init__(self, dataset: Sequence[SRPair], *, patch_size: int, batch_size: int,
                 scale: int | None = None, augment: bool = True, seed: int = 0):
        dataset_scale = getattr(dataset, "scale", None)
        if scale is None:
            if dataset_scale is None:
                raise ValueError("PatchSampler needs scale= for a data set without a scale attribute")
            scale = dataset_scale
        elif dataset_scale is not None and int(dataset_scale) != int(scale):
            raise ValueError(f"scale {scale} differs from the data set's scale {dataset_scale}")
        self.scale = checked_scale(scale)
        if int(patch_size) != patch_size or patch_size < self.scale or patch_size % self.scale:
            raise ValueError(
                f"patch_size must be a positive multiple of the scale {self.scale}, got {patch_size}"
            )
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.patch_size = int(patch_size)
        self.lr_patch_size = self.patch_size // self.scale
        self.batch_size = int(batch_size)
        self.augment = bool(augment)
        self.seed = seed
        self.root = str(getattr(dataset, "root", type(dataset).__name__))
        self._hr: list[np.ndarray] = []
        self._lr: list[np.ndarray] = []
        self.names: list[str] = []
        self._collect(dataset, skip_small=bool(getattr(dataset, "skip_bad", False)))
        self._lr_sizes = np.array([lr.shape[:2] for lr in self._lr], dtype=np.int64)
        self._rng = np.random.default_rng(seed)
        self.batches_drawn = 0

    def _collect(self, dataset: Sequence[SRPair], *, skip_small: bool) -> None:
        side = self.patch_size
        for index in range(len(dataset)):
            pair = dataset[index]
            hr, lr = pair.hr, pair.lr
            if hr.shape[:2] != (lr.shape[0] * self.scale, lr.shape[1] * self.scale) or hr.ndim != lr.ndim:
                raise ImageReadError(
                    pair.path, f"HR image {size_text(hr)} is not x{self.scale} its LR image {size_text(lr)}"
                )
            if min(lr.shape[:2]) < self.lr_patch_size:
                error = ImageReadError(
                    pair.path, f"image {size_text(hr)} is smaller than the {side}x{side} training patch"
                )
                if not skip_small:
                    raise error
                warn_skipped(error, pair.path, stacklevel=3)
                continue
            self._hr.append(hr)
            self._lr.append(lr)
            self.names.append(pair.name)
        if not self._hr:
            raise DatasetError(
                f"{self.root}: no image is at least as large as the {side}x{side} training patch"
            )

    def __len__(self) -> int:
        """Number of images patches are drawn from."""
        return len(self._hr)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield self.next_batch()

    def next_batch(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(lr, hr)``: float32 ``NCHW`` RGB tensors in [0, 1] on ``device``."""
        lr, hr = self.next_batch_uint8()
        return to_float_tensor(lr, device), to_float_tensor(hr, device)

    def next_batch_uint8(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lr, hr)`` as ``uint8`` ``NxHxWx3`` arrays (what :meth:`next_batch` converts)."""
        rng, count, scale = self._rng, self.batch_size, self.scale
        lr_side, hr_side = self.lr_patch_size, self.patch_size
        picks = rng.integers(0, len(self._hr), size=count)
        ys = rng.integers(0, self._lr_sizes[picks, 0] - lr_side + 1)
        xs = rng.integers(0, self._lr_sizes[picks, 1] - lr_side + 1)
        transforms = rng.integers(0, 8, size=count) if self.augment else np.zeros(count, dtype=np.int64)
        lr_batch = np.empty((count, lr_side, lr_side, 3), dtype=np.uint8)
        hr_batch = np.empty((count, hr_side, hr_side, 3), dtype=np.uint8)
        for slot, (pick, y, x, transform) in enumerate(zip(picks, ys, xs, transforms)):
            lr_patch = self._lr[pick][y: y + lr_side, x: x + lr_side]
            hr_patch = self._hr[pick][y * scale: (y + lr_side) * scale, x * scale: (x + lr_side) * scale]
            lr_batch[slot] = _rgb_view(_dihedral(lr_patch, int(transform)))
            hr_batch[slot] = _rgb_view(_dihedral(hr_patch, int(transform)))
        self.batches_drawn += 1
        return lr_batch, hr_batch

    def state_dict(self) -> dict[str, Any]:
        """The random state and the settings it belongs to (plain Python values)."""
        return {
            "rng": self._rng.bit_generator.state,
            "batches_drawn": self.batches_drawn,
            "num_images": len(self._hr),
            "patch_size": self.patch_size,
            "batch_size": self.batch_size,
            "scale": self.scale,
            "augment": self.augment,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the batch sequence saved by :meth:`state_dict` (same data set required)."""
        if int(state["num_images"]) != len(self._hr):
            raise ValueError(
                f"sampler state was saved for {state['num_images']} images, this sampler has {len(self._hr)}"
            )
        self._rng.bit_generator.state = state["rng"]
        self.batches_drawn = int(state.get("batches_drawn", 0))


def _dihedral(patch: np.ndarray, transform: int) -> np.ndarray:
    """One of the 8 symmetries of the square: ``transform % 4`` quarter turns, then a flip if >= 4."""
    turned = np.rot90(patch, transform % 4, axes=(0, 1))
    return turned[:, ::-1] if transform >= 4 else turned


def _rgb_view(patch: np.ndarray) -> np.ndarray:
    # Gray patches broadcast into the 3 channels of the batch (the same as to_rgb, without a copy).
    return patch[:, :, None] if patch.ndim == 2 else patch
