"""Super-resolution data sets and the training patch sampler.

A data set is a read-only sequence of :class:`SRPair` (``len(ds)``, ``ds[i]``, ``ds.names``) with
a ``scale`` attribute. Every pair holds a ``uint8`` HR image mod-cropped to a multiple of
``scale`` and its LR image, ``scale`` times smaller, both ``HxWx3`` or both ``HxW`` (gray images
stay single-channel so metrics see them as stored; :class:`PatchSampler` and
:func:`validation_batches` replicate them to RGB for the model). Sizes in messages are ``WxH``.

Data sets:

* :class:`ImageFolderDataset` - HR images in a folder; LR made like the SR literature does,
  MATLAB bicubic ``imresize(hr, 1/scale)`` rounded to 8 bits. Pairs are cached in memory after
  first use and, with ``cache_dir``, on disk so that other processes reuse them.
* :class:`DIV2KDataset` - the official DIV2K layout ``root/DIV2K_{train,valid}_HR/0001.png`` +
  ``root/DIV2K_{train,valid}_LR_bicubic/X{s}/0001x{s}.png``, or any root holding exactly one
  ``<prefix>_HR`` folder beside ``<prefix>_LR_bicubic/X{s}`` (LR named ``<stem>x{s}`` or
  ``<stem>``). Pairing is checked: a missing LR file is a :class:`DatasetError`, an LR whose size
  times ``scale`` differs from the mod-cropped HR size an :class:`ImageReadError`.
* :func:`builtin_dataset` - eight photos that ship with scikit-image and scikit-learn, so a search
  runs offline with nothing downloaded. Validation: ``chelsea`` and ``flower`` (a cat and a
  close-up, unlike every training photo); training: ``astronaut``, ``coffee``, ``rocket``,
  ``motorcycle_left``, ``motorcycle_right``, ``china``.
* :func:`open_dataset` - picks one of the above from a string (``"builtin"``, ``"builtin:val"``,
  a DIV2K-style root, a folder of images).

``skip_bad=True`` makes a data set read every image when it is built (truncation only shows when
a file is decoded to its end) and skip unreadable files and unpaired DIV2K images with a
:class:`SkippedImageWarning` naming the file; without it those files raise when used. A file
already reported as skipped in this process (by :func:`check_images` through
:meth:`~srnas_nni.config.ExperimentConfig.check_images`, or by another data set) is skipped
without a second warning.

Before a run: :func:`check_images` opens every image a data spec names by its header only (cached,
see :class:`~srnas_nni.evaluation.images.ImageHeaderCache`) and lists the unusable ones with the
reasons the data set, :class:`PatchSampler` and whole-image validation would give later.

Pairs share their arrays with the cache: treat ``hr`` and ``lr`` as read-only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import operator
import re
import warnings
import zipfile
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DatasetError, ImageReadError
from ..runtime import atomic_write_bytes
from .images import ImageHeaderCache, list_images, read_image, to_rgb
from .imresize import imresize

__all__ = [
    "SRPair",
    "SRDataset",
    "SkippedImageWarning",
    "ImageFolderDataset",
    "DIV2KDataset",
    "BuiltinDataset",
    "BUILTIN_TRAIN_NAMES",
    "BUILTIN_VAL_NAMES",
    "builtin_dataset",
    "open_dataset",
    "is_paired_layout",
    "locate_paired_folders",
    "modcrop",
    "bicubic_lr",
    "PatchSampler",
    "ValidationImage",
    "validation_batches",
    "to_float_tensor",
    "ImageCheck",
    "check_images",
    "mark_skip_reported",
]


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


def _warn_skipped(error: Exception | str, path: str | Path, stacklevel: int) -> None:
    """A :class:`SkippedImageWarning` for ``path``, unless :func:`mark_skip_reported` announced it."""
    if _skips_reported and _skip_key(path) in _skips_reported:
        return
    warnings.warn(f"skipping {error}", SkippedImageWarning, stacklevel=stacklevel + 1)


@dataclass(frozen=True, eq=False)
class SRPair:
    """One HR image and its LR version, ``uint8``; ``hr`` is exactly ``scale`` times ``lr``."""

    name: str
    hr: np.ndarray
    lr: np.ndarray
    path: str


# --------------------------------------------------------------------------------------------
# Image helpers


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop height and width down to multiples of ``scale``, keeping the top-left corner (a view)."""
    scale = _checked_scale(scale)
    height, width = image.shape[:2]
    return image[: height - height % scale, : width - width % scale]


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image of a mod-cropped ``uint8`` HR image: MATLAB ``imresize(hr, 1/scale)``, 8 bits."""
    return imresize(np.ascontiguousarray(hr), 1.0 / _checked_scale(scale))


def _checked_scale(scale: Any) -> int:
    if isinstance(scale, bool) or int(scale) != scale or int(scale) < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return int(scale)


def _size_text(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def _pair_from_hr(name: str, path: str | Path, image: np.ndarray, scale: int) -> SRPair:
    """Mod-crop ``image`` and make its bicubic LR; an image smaller than ``scale`` is an error."""
    hr = np.ascontiguousarray(modcrop(image, scale))
    if hr.size == 0:
        raise ImageReadError(path, f"image {_size_text(image)} is smaller than the scale factor {scale}")
    return SRPair(name, hr, bicubic_lr(hr, scale), str(path))


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """File stems, or full file names for stems that occur twice (``a.png`` and ``a.jpg``)."""
    stems = Counter(path.stem for path in paths)
    return [path.stem if stems[path.stem] == 1 else path.name for path in paths]


# --------------------------------------------------------------------------------------------
# Data sets


@dataclass(frozen=True)
class _Source:
    """Where one pair comes from: ``path`` is the HR file (or a builtin photo's origin)."""

    name: str
    path: str
    lr_path: str | None = None


class SRDataset(Sequence):
    """Base of the data sets: a read-only sequence of :class:`SRPair`, loaded on first access.

    Attributes: ``root`` (where the data come from, for messages), ``scale``, ``skip_bad``,
    ``cache`` (keep loaded pairs in memory), ``names`` and ``paths`` (one per pair, in order).
    """

    def __init__(self, root: str, scale: int, sources: list[_Source], *, skip_bad: bool, cache: bool):
        self.root = root
        self.scale = _checked_scale(scale)
        self.skip_bad = bool(skip_bad)
        self.cache = bool(cache)
        self._sources = list(sources)
        self._memory: dict[str, SRPair] = {}
        if not self._sources:
            raise DatasetError(f"{root}: no usable images")
        if self.skip_bad:
            self._drop_unreadable()

    @abstractmethod
    def _load(self, source: _Source) -> SRPair:
        """Read and build one pair; raise :class:`ImageReadError` if it cannot be used."""

    @property
    def names(self) -> list[str]:
        return [source.name for source in self._sources]

    @property
    def paths(self) -> list[str]:
        return [source.path for source in self._sources]

    def __len__(self) -> int:
        return len(self._sources)

    def __getitem__(self, index: int) -> SRPair:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError(f"{type(self).__name__} does not support slicing; index one image at a time")
        index = operator.index(index)
        if index < 0:
            index += len(self._sources)
        if not 0 <= index < len(self._sources):
            raise IndexError(f"image index {index} out of range for {len(self._sources)} images")
        source = self._sources[index]
        pair = self._memory.get(source.path)
        if pair is None:
            pair = self._load(source)
            if self.cache:
                self._memory[source.path] = pair
        return pair

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r}, scale={self.scale}, {len(self)} images)"

    def _drop_unreadable(self) -> None:
        kept = []
        for source in self._sources:
            try:
                pair = self._load(source)
            except ImageReadError as error:
                _warn_skipped(error, error.path, stacklevel=4)
                continue
            if self.cache:
                self._memory[source.path] = pair
            kept.append(source)
        if not kept:
            raise DatasetError(f"{self.root}: none of the {len(self._sources)} images is readable")
        self._sources = kept


class ImageFolderDataset(SRDataset):
    """HR images in ``root`` (see :func:`~srnas_nni.evaluation.images.list_images`); LR by bicubic.

    ``cache_dir``: also keep each pair in ``cache_dir`` as an uncompressed ``.npz`` keyed by the
    file's resolved path, size, modification time and the scale, so another process (the next
    trial) skips decoding and resizing. An edited file gets a new key; stale entries are never
    read. An unusable cache folder only gives a warning.
    """

    _DISK_FORMAT = "srnas-pair-v1-matlab-bicubic"  # change to invalidate every cached pair

    def __init__(self, root: str | Path, scale: int, *, skip_bad: bool = False, cache: bool = True,
                 cache_dir: str | Path | None = None):
        root = Path(root).expanduser()
        paths = list_images(root)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._disk_cache_failed = False
        sources = [_Source(name, str(path)) for name, path in zip(_unique_names(paths), paths)]
        super().__init__(str(root), scale, sources, skip_bad=skip_bad, cache=cache)

    def _load(self, source: _Source) -> SRPair:
        cache_file = self._disk_cache_file(Path(source.path)) if self.cache_dir is not None else None
        if cache_file is not None:
            cached = _read_cached_pair(cache_file, self.scale)
            if cached is not None:
                return SRPair(source.name, cached[0], cached[1], source.path)
        pair = _pair_from_hr(source.name, source.path, read_image(source.path), self.scale)
        if cache_file is not None and not self._disk_cache_failed:
            try:
                _write_cached_pair(cache_file, pair.hr, pair.lr)
            except OSError as exc:
                self._disk_cache_failed = True  # warn once, keep working from memory
                message = f"{self.cache_dir}: cannot write the image cache ({exc}); continuing without it"
                warnings.warn(" ".join(message.split()), stacklevel=3)
        return pair

    def _disk_cache_file(self, path: Path) -> Path | None:
        assert self.cache_dir is not None
        try:
            stat = path.stat()
            resolved = path.resolve()
        except OSError:
            return None  # read_image will report the problem
        key = f"{self._DISK_FORMAT}|{resolved}|{stat.st_size}|{stat.st_mtime_ns}|x{self.scale}"
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
        return self.cache_dir / f"{path.stem}_x{self.scale}_{digest}.npz"


def _read_cached_pair(file: Path, scale: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(hr, lr)`` from a cache file, or None if it is missing, unreadable or inconsistent."""
    try:
        with np.load(file, allow_pickle=False) as archive:
            hr, lr = archive["hr"], archive["lr"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    consistent = (
        hr.dtype == np.uint8 and lr.dtype == np.uint8 and hr.ndim == lr.ndim
        and hr.shape[2:] == lr.shape[2:] and hr.shape[:2] == (lr.shape[0] * scale, lr.shape[1] * scale)
    )
    return (hr, lr) if consistent else None


def _write_cached_pair(file: Path, hr: np.ndarray, lr: np.ndarray) -> None:
    # Atomic: a concurrent reader sees either no file or a complete one.
    buffer = io.BytesIO()
    np.savez(buffer, hr=hr, lr=lr)
    atomic_write_bytes(file, buffer.getvalue())


# -- DIV2K and other paired layouts ----------------------------------------------------------

_SPLIT_ALIASES = {"train": "train", "val": "valid", "valid": "valid", "validation": "valid"}
_DIV2K_HR_FOLDER = re.compile(r"^DIV2K_(train|valid)_HR$")


def _div2k_split(split: str) -> str:
    try:
        return _SPLIT_ALIASES[split]
    except (KeyError, TypeError):
        raise DatasetError(f"unknown split {split!r}: use 'train' or 'val'") from None


def _hr_folders(root: Path) -> list[Path]:
    return sorted(entry for entry in root.iterdir() if entry.is_dir() and entry.name.endswith("_HR"))


def _lr_root_of(hr_folder: Path) -> Path:
    return hr_folder.with_name(hr_folder.name[: -len("_HR")] + "_LR_bicubic")


def is_paired_layout(root: str | Path) -> bool:
    """Whether ``root`` holds a ``<prefix>_HR`` folder beside a ``<prefix>_LR_bicubic`` folder."""
    root = Path(root)
    return root.is_dir() and any(_lr_root_of(folder).is_dir() for folder in _hr_folders(root))


def locate_paired_folders(root: str | Path, split: str, scale: int) -> tuple[Path, Path]:
    """``(HR folder, LR folder)`` of a DIV2K-style ``root`` for ``split`` and ``scale``.

    The official names (``DIV2K_{split}_HR``) win; a root with other DIV2K folders but not this
    split's is an error (rather than validating on training images); otherwise the root must
    hold exactly one ``*_HR`` folder.
    """
    root = Path(root)
    split = _div2k_split(split)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    official = root / f"DIV2K_{split}_HR"
    hr_folders = _hr_folders(root)
    if official.is_dir():
        hr_folder = official
    elif any(_DIV2K_HR_FOLDER.match(folder.name) for folder in hr_folders):
        raise DatasetError(f"{official}: no such folder (the DIV2K '{split}' split)")
    elif len(hr_folders) == 1:
        hr_folder = hr_folders[0]
    elif not hr_folders:
        raise DatasetError(f"{root}: no *_HR folder (expected {official.name} or exactly one <name>_HR)")
    else:
        listed = ", ".join(folder.name for folder in hr_folders)
        raise DatasetError(f"{root}: several *_HR folders ({listed}); point to a root with only one")
    lr_root = _lr_root_of(hr_folder)
    if not lr_root.is_dir():
        raise DatasetError(f"{lr_root}: no such folder (the bicubic LR images of {hr_folder.name})")
    lr_folder = lr_root / f"X{_checked_scale(scale)}"
    if not lr_folder.is_dir():
        available = sorted(entry.name for entry in lr_root.iterdir() if entry.is_dir())
        raise DatasetError(f"{lr_folder}: no such folder (found: {', '.join(available) or 'nothing'})")
    return hr_folder, lr_folder


class DIV2KDataset(SRDataset):
    """HR/LR pairs in the DIV2K layout (or a generic ``*_HR`` + ``*_LR_bicubic/X{s}`` root).

    ``split``: ``"train"`` or ``"valid"`` (``"val"`` is accepted too). The LR images are used as
    stored; each is checked against its mod-cropped HR image when loaded.
    """

    def __init__(self, root: str | Path, scale: int, split: str = "train", *, skip_bad: bool = False,
                 cache: bool = True):
        root = Path(root).expanduser()
        scale = _checked_scale(scale)
        self.split = _div2k_split(split)
        self.hr_folder, self.lr_folder = locate_paired_folders(root, self.split, scale)
        hr_paths = list_images(self.hr_folder)
        sources = []
        for name, hr_path in zip(_unique_names(hr_paths), hr_paths):
            lr_path = _find_lr_file(self.lr_folder, hr_path, scale)
            if lr_path is None:
                expected = self.lr_folder / f"{hr_path.stem}x{scale}{hr_path.suffix}"
                message = f"{expected}: no such file (the x{scale} LR image of {hr_path})"
                if not skip_bad:
                    raise DatasetError(message)
                _warn_skipped(message, expected, stacklevel=2)
                continue
            sources.append(_Source(name, str(hr_path), str(lr_path)))
        super().__init__(str(root), scale, sources, skip_bad=skip_bad, cache=cache)

    def _load(self, source: _Source) -> SRPair:
        assert source.lr_path is not None
        hr = np.ascontiguousarray(modcrop(read_image(source.path), self.scale))
        lr = read_image(source.lr_path)
        hr_name = Path(source.path).name
        if lr.ndim != hr.ndim:
            raise ImageReadError(
                source.lr_path,
                f"LR image is {_channels_text(lr)} but its HR image {hr_name} is {_channels_text(hr)}",
            )
        if hr.shape[:2] != (lr.shape[0] * self.scale, lr.shape[1] * self.scale):
            raise ImageReadError(
                source.lr_path,
                f"LR size {_size_text(lr)} times {self.scale} does not match the mod-cropped HR size "
                f"{_size_text(hr)} of {hr_name}",
            )
        return SRPair(source.name, hr, lr, source.path)


def _channels_text(image: np.ndarray) -> str:
    return "gray" if image.ndim == 2 else f"{image.shape[2]}-channel"


def _find_lr_file(lr_folder: Path, hr_path: Path, scale: int) -> Path | None:
    for candidate in (f"{hr_path.stem}x{scale}{hr_path.suffix}", hr_path.name):
        if (lr_folder / candidate).is_file():
            return lr_folder / candidate
    return None


# -- photos shipped with scikit-image and scikit-learn ---------------------------------------

BUILTIN_TRAIN_NAMES: tuple[str, ...] = (
    "astronaut", "coffee", "rocket", "motorcycle_left", "motorcycle_right", "china",
)
BUILTIN_VAL_NAMES: tuple[str, ...] = ("chelsea", "flower")

_BUILTIN_ORIGINS = {
    "astronaut": "skimage.data.astronaut()",
    "chelsea": "skimage.data.chelsea()",
    "coffee": "skimage.data.coffee()",
    "rocket": "skimage.data.rocket()",
    "motorcycle_left": "skimage.data.stereo_motorcycle()[0]",
    "motorcycle_right": "skimage.data.stereo_motorcycle()[1]",
    "china": "sklearn.datasets.load_sample_image('china.jpg')",
    "flower": "sklearn.datasets.load_sample_image('flower.jpg')",
}


def _builtin_photo(name: str) -> np.ndarray:
    # Imported here: scikit-learn takes seconds to import and most runs never need it.
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{name}.jpg"), dtype=np.uint8)
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _disparity = skimage.data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    return getattr(skimage.data, name)()


class BuiltinDataset(SRDataset):
    """The offline photos of one split (see the module docstring); LR by bicubic."""

    def __init__(self, split: str, scale: int, *, cache: bool = True):
        key = _div2k_split(split)
        self.split = "train" if key == "train" else "val"
        names = BUILTIN_TRAIN_NAMES if self.split == "train" else BUILTIN_VAL_NAMES
        sources = [_Source(name, _BUILTIN_ORIGINS[name]) for name in names]
        super().__init__(f"builtin:{self.split}", scale, sources, skip_bad=False, cache=cache)

    def _load(self, source: _Source) -> SRPair:
        return _pair_from_hr(source.name, source.path, _builtin_photo(source.name), self.scale)


def builtin_dataset(split: str, scale: int) -> BuiltinDataset:
    """The builtin training (``"train"``: six photos) or validation (``"val"``: two) set."""
    return BuiltinDataset(split, scale)


def open_dataset(spec: str | Path, scale: int, *, split: str = "train", skip_bad: bool = False,
                 cache_dir: str | Path | None = None) -> SRDataset:
    """The data set that ``spec`` names.

    ``spec``: ``"builtin"`` (the ``split`` of the builtin photos), ``"builtin:train"`` or
    ``"builtin:val"``, a DIV2K-style root (it holds ``*_HR`` and ``*_LR_bicubic`` folders; uses
    ``split``), or a folder of HR images (``split`` is ignored; ``cache_dir`` is used). A folder
    literally called ``builtin`` is reached as ``./builtin``.
    """
    if _is_builtin(spec):
        return builtin_dataset(spec.partition(":")[2] or split, scale)
    root = _data_folder(spec)
    if is_paired_layout(root):
        return DIV2KDataset(root, scale, split, skip_bad=skip_bad)
    return ImageFolderDataset(root, scale, skip_bad=skip_bad, cache_dir=cache_dir)


def _is_builtin(spec: str | Path) -> bool:
    return isinstance(spec, str) and (spec == "builtin" or spec.startswith("builtin:"))


def _data_folder(spec: str | Path) -> Path:
    """The folder a data spec other than ``builtin`` names; :class:`DatasetError` for a missing path or a file."""
    folder = Path(spec).expanduser()
    if not folder.exists():
        raise DatasetError(f"{folder}: no such file or folder")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder (expected a folder of images, a DIV2K-style root or 'builtin')")
    return folder


# -- checking a data spec before a run ---------------------------------------------------------


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
    """Open every image ``spec`` names (the forms of :func:`open_dataset`) by its header, without decoding.

    An image is unusable, with the reason its use would give later, when its header cannot be read
    (:func:`~srnas_nni.evaluation.images.read_image_header`), when it is smaller than ``scale``,
    with ``patch_size`` when its mod-cropped size is smaller than that training patch
    (:class:`PatchSampler`), with ``score_crop`` when it is too small to score after cropping that
    border (whole-image validation), and in a DIV2K-style root when its LR file is missing or does
    not match. The builtin photos are checked in the packages that ship them. Raises
    :class:`DatasetError` for what :func:`open_dataset` refuses (a missing folder, no image files,
    an ambiguous layout). Each file's header outcome is cached (``cache_dir``: also on disk).
    """
    scale = _checked_scale(scale)
    cache = ImageHeaderCache(cache_dir)
    sizes = _SizeRules(scale, patch_size, score_crop)
    problems: list[ImageReadError] = []
    if _is_builtin(spec):
        dataset_split = "train" if _div2k_split(spec.partition(":")[2] or split) == "train" else "val"
        names = BUILTIN_TRAIN_NAMES if dataset_split == "train" else BUILTIN_VAL_NAMES
        root = f"builtin:{dataset_split}"
        for name in names:
            problem = _builtin_problem(name, cache, sizes)
            if problem is not None:
                problems.append(problem)
        return ImageCheck(root, len(names), tuple(problems), cache.opened)
    folder = _data_folder(spec)
    if is_paired_layout(folder):
        hr_folder, lr_folder = locate_paired_folders(folder, split, scale)
        hr_paths = list_images(hr_folder)
        for hr_path in hr_paths:
            problem = _paired_problem(hr_path, _find_lr_file(lr_folder, hr_path, scale), lr_folder, cache, sizes)
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
            from .validation import SSIM_WINDOW  # here: validation imports this module

            if side - 2 * self.score_crop < SSIM_WINDOW:
                return (f"image {hr_width}x{hr_height} is too small to score: SSIM needs {SSIM_WINDOW}x{SSIM_WINDOW} "
                        f"pixels after the {self.score_crop}-pixel border crop")
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


# Where each builtin photo ships: (package, file inside it). Found without importing the package
# (scikit-learn takes seconds to import).
_BUILTIN_FILES = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
}


def _builtin_file(name: str) -> Path | None:
    package, relative = _BUILTIN_FILES[name]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    file = Path(list(spec.submodule_search_locations)[0]) / relative
    return file if file.is_file() else None


def _builtin_problem(name: str, cache: ImageHeaderCache, sizes: _SizeRules) -> ImageReadError | None:
    file = _builtin_file(name)
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
            photo = _builtin_photo(name)
        except Exception as exc:  # noqa: BLE001 - a missing package or file, a failed download, ...
            reason = " ".join(str(exc).split()) or type(exc).__name__
            return ImageReadError(_BUILTIN_ORIGINS[name], f"builtin photo {name!r} cannot be loaded ({reason})")
        height, width = photo.shape[:2]
    reason = sizes.problem(width, height)
    return None if reason is None else ImageReadError(_BUILTIN_ORIGINS[name], reason)


# --------------------------------------------------------------------------------------------
# Training patches


class PatchSampler:
    """Random aligned LR/HR training patches from a data set, as float tensors.

    Each batch draws ``batch_size`` images uniformly at random (with replacement), a random LR
    patch position ``(y, x)`` of side ``patch_size // scale`` and the HR patch at
    ``(scale * y, scale * x)`` of side ``patch_size``, then (``augment``) one of the 8 flips and
    90-degree rotations, the same for LR and HR. All images are held in memory (the data set's
    own arrays when it caches) so a batch is numpy slicing only.

    Deterministic given ``seed``; :meth:`state_dict` / :meth:`load_state_dict` save and restore
    the random state so a resumed training run draws the same batches as an uninterrupted one.
    An image smaller than the patch is an :class:`ImageReadError` naming it, or is skipped with
    a :class:`SkippedImageWarning` if the data set was built with ``skip_bad=True``.
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
        self.scale = _checked_scale(scale)
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
                    pair.path, f"HR image {_size_text(hr)} is not x{self.scale} its LR image {_size_text(lr)}"
                )
            if min(lr.shape[:2]) < self.lr_patch_size:
                error = ImageReadError(
                    pair.path, f"image {_size_text(hr)} is smaller than the {side}x{side} training patch"
                )
                if not skip_small:
                    raise error
                _warn_skipped(error, pair.path, stacklevel=3)
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


def to_float_tensor(images: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """``uint8`` ``NxHxWxC`` -> float32 ``NxCxHxW`` in [0, 1] on ``device`` (moved as bytes: 4x less)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return tensor.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


# --------------------------------------------------------------------------------------------
# Validation


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
