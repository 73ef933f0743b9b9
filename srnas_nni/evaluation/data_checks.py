"""Checking a data spec before a run: :func:`check_images`.

Opens every image a data spec names (:mod:`srnas_nni.evaluation.specs`) by its header only, without
decoding (cached, see :class:`~srnas_nni.evaluation.images.ImageHeaderCache`), and lists the unusable
ones with the reasons the data set (:mod:`srnas_nni.evaluation.data`), the
:class:`~srnas_nni.evaluation.patches.PatchSampler` and whole-image validation would give later.
:meth:`~srnas_nni.run.config.ExperimentConfig.check_images` runs it for a run's data specs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageReadError
from .images import ImageHeaderCache, list_images
from .pairs import checked_scale
from .specs import (BUILTIN_ORIGINS, builtin_file, builtin_photo, builtin_split, data_folder, find_lr_file,
                    is_builtin, is_paired_layout, locate_paired_folders)
from .validation import unscorable_reason

__all__ = ["ImageCheck", "check_images"]


@dataclass(frozen=True)
class ImageCheck:
    """What :func:`check_images` found for one data spec.

    ``root``: where the images are (for messages: a folder or ``builtin:<split>``); ``total``: the
    images (HR/LR pairs in a DIV2K-style root); ``problems``: one :class:`ImageReadError` per
    unusable image, in listing order, each naming the file at fault; ``opened``: the files whose
    header was read now (the others came from the cache).
    """

    root: str
    total: int
    problems: tuple[ImageReadError, ...]
    opened: int = 0

    @property
    def usable(self) -> int:
        return self.total - len(self.problems)


def check_images(spec: str | Path, scale: int, *, split: str = "train", patch_size: int | None = None,
                 score_crop: int | None = None, cache_dir: str | Path | None = None) -> ImageCheck:
    """Open every image ``spec`` names (the forms of :func:`~srnas_nni.evaluation.data.open_dataset`)
    by its header, without decoding.

    An image is unusable, with the reason its use would give later, when its header cannot be read
    (:func:`~srnas_nni.evaluation.images.read_image_header`), when it is smaller than ``scale``,
    with ``patch_size`` when its mod-cropped size is smaller than that training patch
    (:class:`~srnas_nni.evaluation.patches.PatchSampler`), with ``score_crop`` when it is too small
    to score after cropping that border (whole-image validation), and in a DIV2K-style root when its
    LR file is missing or does not match. The builtin photos are checked in the packages that ship
    them. Raises :class:`~srnas_nni.errors.DatasetError` for what ``open_dataset`` refuses (a missing
    folder, no image files, an ambiguous layout). Each file's header outcome is cached
    (``cache_dir``: also on disk).
    """
    scale = checked_scale(scale)
    cache = ImageHeaderCache(cache_dir)
    sizes = _SizeRules(scale, patch_size, score_crop)
    problems: list[ImageReadError] = []
    if is_builtin(spec):
        dataset_split, names = builtin_split(spec.partition(":")[2] or split)
        root = f"builtin:{dataset_split}"
        for name in names:
            problem = _builtin_problem(name, cache, sizes)
            if problem is not None:
                problems.append(problem)
        return ImageCheck(root, len(names), tuple(problems), cache.opened)
    folder = data_folder(spec)
    if is_paired_layout(folder):
        hr_folder, lr_folder = locate_paired_folders(folder, split, scale)
        hr_paths = list_images(hr_folder)
        for hr_path in hr_paths:
            problem = _paired_problem(hr_path, find_lr_file(lr_folder, hr_path, scale), lr_folder, cache, sizes)
            if problem is not None:
                problems.append(problem)
        total = len(hr_paths)
    else:
        paths = list_images(folder)
        for path in paths:
            try:
                header = cache.header(path)
            except ImageReadError as error:
                problems.append(error)
                continue
            reason = sizes.problem(header.width, header.height)
            if reason is not None:
                problems.append(ImageReadError(path, reason))
        total = len(paths)
    cache.save()
    return ImageCheck(str(folder), total, tuple(problems), cache.opened)


@dataclass(frozen=True)
class _SizeRules:
    """The sizes an image must have (the checks the data set, the sampler and validation make)."""

    scale: int
    patch_size: int | None
    score_crop: int | None

    def problem(self, width: int, height: int) -> str | None:
        scale = self.scale
        hr_width, hr_height = width - width % scale, height - height % scale
        if hr_width == 0 or hr_height == 0:
            return f"image {width}x{height} is smaller than the scale factor {scale}"
        side = min(hr_width, hr_height)
        if self.patch_size is not None and side // scale < self.patch_size // scale:
            side_text = f"{self.patch_size}x{self.patch_size}"
            return f"image {hr_width}x{hr_height} is smaller than the {side_text} training patch"
        if self.score_crop is not None:
            return unscorable_reason(hr_width, hr_height, self.score_crop)
        return None


def _paired_problem(hr_path: Path, lr_path: Path | None, lr_folder: Path, cache: ImageHeaderCache,
                    sizes: _SizeRules) -> ImageReadError | None:
    scale = sizes.scale
    if lr_path is None:
        expected = lr_folder / f"{hr_path.stem}x{scale}{hr_path.suffix}"
        return ImageReadError(expected, f"no such file (the x{scale} LR image of {hr_path})")
    try:
        hr, lr = cache.header(hr_path), cache.header(lr_path)
    except ImageReadError as error:
        return error
    reason = sizes.problem(hr.width, hr.height)
    if reason is not None:
        return ImageReadError(hr_path, reason)
    hr_width, hr_height = hr.width - hr.width % scale, hr.height - hr.height % scale
    if (hr_width, hr_height) != (lr.width * scale, lr.height * scale):
        return ImageReadError(lr_path, f"LR size {lr.width}x{lr.height} times {scale} does not match the "
                                       f"mod-cropped HR size {hr_width}x{hr_height} of {hr_path.name}")
    return None


def _builtin_problem(name: str, cache: ImageHeaderCache, sizes: _SizeRules) -> ImageReadError | None:
    file = builtin_file(name)
    if file is not None:
        try:
            header = cache.header(file)
        except ImageReadError as error:
            return error
        width, height = header.width, header.height
    else:
        # Not where the package usually keeps it (another version, a download cache): load it the
        # way the data set will.
        try:
            photo = builtin_photo(name)
        except Exception as exc:  # noqa: BLE001 - a missing package or file, a failed download, ...
            reason = " ".join(str(exc).split()) or type(exc).__name__
            return ImageReadError(BUILTIN_ORIGINS[name], f"builtin photo {name!r} cannot be loaded ({reason})")
        height, width = photo.shape[:2]
    reason = sizes.problem(width, height)
    return None if reason is None else ImageReadError(BUILTIN_ORIGINS[name], reason)
