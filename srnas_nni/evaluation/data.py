"""Super-resolution data sets: the data a search trains and validates on, opened from a data spec.

A data set is a read-only sequence of :class:`~srnas_nni.evaluation.pairs.SRPair` (``len(ds)``,
``ds[i]``, ``ds.names``) with a ``scale`` attribute. Every pair holds a ``uint8`` HR image
mod-cropped to a multiple of ``scale`` and its LR image, ``scale`` times smaller, both ``HxWx3`` or
both ``HxW`` (gray images stay single-channel so metrics see them as stored; the patch sampler and
:func:`~srnas_nni.evaluation.validation.validation_batches` replicate them to RGB for the model).
Sizes in messages are ``WxH``.

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
  a DIV2K-style root, a folder of images), resolved by :mod:`srnas_nni.evaluation.specs`.

``skip_bad=True`` makes a data set read every image when it is built (truncation only shows when
a file is decoded to its end) and skip unreadable files and unpaired DIV2K images with a
:class:`~srnas_nni.evaluation.pairs.SkippedImageWarning` naming the file; without it those files
raise when used. A file already reported as skipped in this process (by
:func:`~srnas_nni.evaluation.data_checks.check_images` through
:meth:`~srnas_nni.run.config.ExperimentConfig.check_images`, or by another data set) is skipped
without a second warning.

Pairs share their arrays with the cache: treat ``hr`` and ``lr`` as read-only.

The rest of the data layer, each in its own module (all re-exported here, in ``__all__``):
:mod:`~srnas_nni.evaluation.pairs` (``SRPair``, ``modcrop``, ``bicubic_lr``, ``to_float_tensor``,
the skipped-image warning), :mod:`~srnas_nni.evaluation.specs` (builtin photos, DIV2K-style
layouts), :mod:`~srnas_nni.evaluation.patches` (``PatchSampler``, training patches),
:mod:`~srnas_nni.evaluation.validation` (``validation_batches``, whole images) and
:mod:`~srnas_nni.evaluation.data_checks` (``check_images``, before a run).
"""

from __future__ import annotations

import hashlib
import io
import operator
import warnings
import zipfile
from abc import abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ImageReadError
from ..runtime import atomic_write_bytes
from .data_checks import ImageCheck, check_images
from .images import list_images, read_image
from .pairs import (SkippedImageWarning, SRPair, bicubic_lr, checked_scale, mark_skip_reported, modcrop,
                    pair_from_hr, size_text, to_float_tensor, warn_skipped)
from .patches import PatchSampler
from .specs import (BUILTIN_ORIGINS, BUILTIN_TRAIN_NAMES, BUILTIN_VAL_NAMES, builtin_photo, builtin_split,
                    data_folder, div2k_split, find_lr_file, is_builtin, is_paired_layout, locate_paired_folders)
from .validation import ValidationImage, validation_batches

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


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """File stems, or full file names for stems that occur twice (``a.png`` and ``a.jpg``)."""
    stems = Counter(path.stem for path in paths)
    return [path.stem if stems[path.stem] == 1 else path.name for path in paths]


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
        self.scale = checked_scale(scale)
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
                warn_skipped(error, error.path, stacklevel=4)
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
        pair = pair_from_hr(source.name, source.path, read_image(source.path), self.scale)
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


class DIV2KDataset(SRDataset):
    """HR/LR pairs in the DIV2K layout (or a generic ``*_HR`` + ``*_LR_bicubic/X{s}`` root).

    ``split``: ``"train"`` or ``"valid"`` (``"val"`` is accepted too). The LR images are used as
    stored; each is checked against its mod-cropped HR image when loaded.
    """

    def __init__(self, root: str | Path, scale: int, split: str = "train", *, skip_bad: bool = False,
                 cache: bool = True):
        root = Path(root).expanduser()
        scale = checked_scale(scale)
        self.split = div2k_split(split)
        self.hr_folder, self.lr_folder = locate_paired_folders(root, self.split, scale)
        hr_paths = list_images(self.hr_folder)
        sources = []
        for name, hr_path in zip(_unique_names(hr_paths), hr_paths):
            lr_path = find_lr_file(self.lr_folder, hr_path, scale)
            if lr_path is None:
                expected = self.lr_folder / f"{hr_path.stem}x{scale}{hr_path.suffix}"
                message = f"{expected}: no such file (the x{scale} LR image of {hr_path})"
                if not skip_bad:
                    raise DatasetError(message)
                warn_skipped(message, expected, stacklevel=2)
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
                f"LR size {size_text(lr)} times {self.scale} does not match the mod-cropped HR size "
                f"{size_text(hr)} of {hr_name}",
            )
        return SRPair(source.name, hr, lr, source.path)


def _channels_text(image: np.ndarray) -> str:
    return "gray" if image.ndim == 2 else f"{image.shape[2]}-channel"


# -- photos shipped with scikit-image and scikit-learn ---------------------------------------


class BuiltinDataset(SRDataset):
    """The offline photos of one split (see the module docstring); LR by bicubic."""

    def __init__(self, split: str, scale: int, *, cache: bool = True):
        self.split, names = builtin_split(split)
        sources = [_Source(name, BUILTIN_ORIGINS[name]) for name in names]
        super().__init__(f"builtin:{self.split}", scale, sources, skip_bad=False, cache=cache)

    def _load(self, source: _Source) -> SRPair:
        return pair_from_hr(source.name, source.path, builtin_photo(source.name), self.scale)


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
    if is_builtin(spec):
        return builtin_dataset(spec.partition(":")[2] or split, scale)
    root = data_folder(spec)
    if is_paired_layout(root):
        return DIV2KDataset(root, scale, split, skip_bad=skip_bad)
    return ImageFolderDataset(root, scale, skip_bad=skip_bad, cache_dir=cache_dir)
