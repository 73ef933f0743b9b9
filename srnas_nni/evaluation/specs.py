"""Data specs: where the images a data spec names are, before any image is read.

A data spec is what ``train_data`` / ``val_data`` take: ``"builtin"``, ``"builtin:train"`` or
``"builtin:val"`` (:func:`is_builtin`), a DIV2K-style root (:func:`is_paired_layout`), or a folder
of HR images (:func:`data_folder`). The data sets (:mod:`srnas_nni.evaluation.data`) and the check
before a run (:mod:`srnas_nni.evaluation.data_checks`) resolve a spec through these functions, so
both see the same images and refuse the same specs.

* Builtin photos ship with scikit-image and scikit-learn (:data:`BUILTIN_TRAIN_NAMES`,
  :data:`BUILTIN_VAL_NAMES`): :func:`builtin_photo` loads one, :func:`builtin_file` finds its file
  without importing the package that ships it, ``BUILTIN_ORIGINS`` names it in messages.
* Paired layouts: ``root/<prefix>_HR`` beside ``root/<prefix>_LR_bicubic/X{s}``, the official DIV2K
  names winning (:func:`locate_paired_folders`); an HR image's LR file is ``<stem>x{s}`` or
  ``<stem>`` (:func:`find_lr_file`). Splits are ``train`` and ``valid`` (``val``, ``validation``
  accepted: :func:`div2k_split`).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .pairs import checked_scale

__all__ = ["BUILTIN_TRAIN_NAMES", "BUILTIN_VAL_NAMES", "is_paired_layout", "locate_paired_folders"]


# -- DIV2K and other paired layouts ----------------------------------------------------------

_SPLIT_ALIASES = {"train": "train", "val": "valid", "valid": "valid", "validation": "valid"}
_DIV2K_HR_FOLDER = re.compile(r"^DIV2K_(train|valid)_HR$")


def div2k_split(split: str) -> str:
    """``"train"`` or ``"valid"``, DIV2K's name of ``split``; :class:`DatasetError` for another name."""
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
    split = div2k_split(split)
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
    lr_folder = lr_root / f"X{checked_scale(scale)}"
    if not lr_folder.is_dir():
        available = sorted(entry.name for entry in lr_root.iterdir() if entry.is_dir())
        raise DatasetError(f"{lr_folder}: no such folder (found: {', '.join(available) or 'nothing'})")
    return hr_folder, lr_folder


def find_lr_file(lr_folder: Path, hr_path: Path, scale: int) -> Path | None:
    """The LR file of ``hr_path`` in ``lr_folder`` (``<stem>x{scale}`` first, then the same name), or None."""
    for candidate in (f"{hr_path.stem}x{scale}{hr_path.suffix}", hr_path.name):
        if (lr_folder / candidate).is_file():
            return lr_folder / candidate
    return None


# -- photos shipped with scikit-image and scikit-learn ---------------------------------------

BUILTIN_TRAIN_NAMES: tuple[str, ...] = (
    "astronaut", "coffee", "rocket", "motorcycle_left", "motorcycle_right", "china",
)
BUILTIN_VAL_NAMES: tuple[str, ...] = ("chelsea", "flower")

# How each builtin photo is loaded, as the "path" of its pair and in messages.
BUILTIN_ORIGINS = {
    "astronaut": "skimage.data.astronaut()",
    "chelsea": "skimage.data.chelsea()",
    "coffee": "skimage.data.coffee()",
    "rocket": "skimage.data.rocket()",
    "motorcycle_left": "skimage.data.stereo_motorcycle()[0]",
    "motorcycle_right": "skimage.data.stereo_motorcycle()[1]",
    "china": "sklearn.datasets.load_sample_image('china.jpg')",
    "flower": "sklearn.datasets.load_sample_image('flower.jpg')",
}

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


def builtin_split(split: str) -> tuple[str, tuple[str, ...]]:
    """``("train" or "val", the photo names)`` of the builtin split ``split`` names."""
    if div2k_split(split) == "train":
        return "train", BUILTIN_TRAIN_NAMES
    return "val", BUILTIN_VAL_NAMES


def builtin_photo(name: str) -> np.ndarray:
    """The builtin photo ``name`` as its package returns it (``uint8`` ``HxWx3``)."""
    # Imported here: scikit-learn takes seconds to import and most runs never need it.
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{name}.jpg"), dtype=np.uint8)
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _disparity = skimage.data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    return getattr(skimage.data, name)()


def builtin_file(name: str) -> Path | None:
    """The file of the builtin photo ``name`` where its package usually keeps it, or None."""
    package, relative = _BUILTIN_FILES[name]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    file = Path(list(spec.submodule_search_locations)[0]) / relative
    return file if file.is_file() else None


# -- specs -----------------------------------------------------------------------------------


def is_builtin(spec: str | Path) -> bool:
    """Whether ``spec`` names the builtin photos (``"builtin"`` or ``"builtin:<split>"``)."""
    return isinstance(spec, str) and (spec == "builtin" or spec.startswith("builtin:"))


def data_folder(spec: str | Path) -> Path:
    """The folder a data spec other than ``builtin`` names; :class:`DatasetError` for a missing path or a file."""
    folder = Path(spec).expanduser()
    if not folder.exists():
        raise DatasetError(f"{folder}: no such file or folder")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder (expected a folder of images, a DIV2K-style root or 'builtin')")
    return folder
