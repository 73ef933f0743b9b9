"""Super-resolving images of any size, tile by tile, so memory stays bounded.

:func:`upscale_array` runs a model over an LR image in *tiles*: the image is cut into a grid of
``tile x tile`` LR cores; each core is fed to the model with ``overlap`` extra LR pixels of
context on every side (fewer where the image ends), and only the part of the output that belongs
to the core (``scale`` times its size) is kept. No blending is needed: when ``overlap`` is at least
the receptive-field radius of the network (in LR pixels), every kept output pixel saw exactly the
input it sees in whole-image inference, so the tiled result equals the untiled one up to float
rounding. Networks with a global receptive field (channel attention's global average pooling,
the strided pooling of enhanced spatial attention, ...) see less than the whole image in a tile and
their tiled output differs slightly from the whole-image output; raise ``tile`` (or use ``tile=0``:
one pass) when that matters.

Memory: the device holds one window of at most ``(tile + 2 overlap)`` LR pixels per side and the
model's activations for it; the LR input and the 8-bit output stay on the CPU as ``uint8`` arrays.

Output follows the metrics convention of :func:`~srnas_nni.evaluation.validation.super_resolve`:
the model's float output clipped to [0, 1] and rounded to 8 bit (halves up). Images are read with
:func:`~srnas_nni.evaluation.images.read_image` (alpha dropped, 16-bit rounded to 8 bit, EXIF
orientation applied); gray images are fed replicated to RGB and written gray, converted from the
RGB output with PIL's luma (what the metrics measure for a gray image).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import SRNASError
from ..runtime import atomic_write_bytes, ieee_float32
from .images import read_image, to_rgb
from .pairs import to_float_tensor
from .validation import to_uint8_image

__all__ = ["tile_grid", "iter_tiles", "upscale_array", "upscale_file", "save_sr_images", "rgb_to_gray", "write_image",
           "output_image"]


def tile_grid(length: int, tile: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cores covering ``range(length)``: ``ceil(length / tile)`` cores of near-equal
    size, none longer than ``tile`` (one core if ``tile <= 0``).

    Equal split rather than fixed steps, so no core is a sliver (a 1-pixel remainder would be too
    small for networks with strided pooling).
    """
    if tile <= 0 or tile >= length:
        return [(0, length)]
    count = -(-length // tile)
    bounds = [index * length // count for index in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def iter_tiles(model: nn.Module, lr: np.ndarray, scale: int, *, tile: int = 0, overlap: int = 16,
               device: torch.device | str = "cpu") -> Iterator[tuple[slice, slice, torch.Tensor]]:
    """Run ``model`` tile by tile over a ``uint8`` LR image (``HxW`` or ``HxWx3``).

    Yields ``(hr_rows, hr_columns, core)``: the HR region a core covers and the model's float
    ``1x3xhxw`` output for it (on ``device``, not clipped), in row-major order; the cores tile the
    HR image exactly once. ``tile``: LR core side (``0``: the whole image in one pass);
    ``overlap``: LR context pixels added on every side of a core. Call under ``torch.no_grad()``
    with the model in eval mode; a model whose output is not ``scale`` times its input raises
    :class:`SRNASError`.
    """
    if overlap < 0:
        raise SRNASError(f"overlap must be >= 0, got {overlap}")
    rgb = to_rgb(lr)
    if not rgb.flags.writeable:  # torch.from_numpy warns on read-only memory (np.asarray of a PIL image)
        rgb = rgb.copy()
    height, width = rgb.shape[:2]
    for top, bottom in tile_grid(height, tile):
        for left, right in tile_grid(width, tile):
            window_top, window_left = max(0, top - overlap), max(0, left - overlap)
            window_bottom, window_right = min(height, bottom + overlap), min(width, right + overlap)
            window = rgb[window_top:window_bottom, window_left:window_right]
            sr = model(to_float_tensor(window[None], device))
            expected = (scale * window.shape[0], scale * window.shape[1])
            if tuple(sr.shape[-2:]) != expected:
                raise SRNASError(f"model output {sr.shape[-1]}x{sr.shape[-2]} for an LR input {window.shape[1]}x"
                                 f"{window.shape[0]} is not x{scale}")
            core = sr[..., scale * (top - window_top): scale * (bottom - window_top),
                      scale * (left - window_left): scale * (right - window_left)]
            yield slice(scale * top, scale * bottom), slice(scale * left, scale * right), core


def upscale_array(model: nn.Module, lr: np.ndarray, scale: int, *, tile: int = 0, overlap: int = 16,
                  device: torch.device | str = "cpu") -> np.ndarray:
    """Super-resolve one ``uint8`` LR image (``HxW`` or ``HxWx3``) into a ``uint8 (sH)x(sW)x3`` image.

    Tiles as :func:`iter_tiles` (see the module docstring for when the result equals whole-image
    inference); each core is clipped and rounded to 8 bit as ``super_resolve`` does and copied into
    a CPU array, so only one window is on ``device`` at a time. The model's train/eval mode is
    restored afterwards.
    """
    height, width = lr.shape[:2]
    out = np.empty((height * scale, width * scale, 3), dtype=np.uint8)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), ieee_float32():
            for rows, columns, core in iter_tiles(model, lr, scale, tile=tile, overlap=overlap, device=device):
                out[rows, columns] = to_uint8_image(core)
    finally:
        model.train(was_training)
    return out


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """``uint8 HxWx3`` -> ``HxW`` with PIL's luma (0.299 R + 0.587 G + 0.114 B, PIL's rounding)."""
    return np.asarray(Image.fromarray(rgb).convert("L"))


def output_image(sr_rgb: np.ndarray, source: np.ndarray) -> np.ndarray:
    """The image to write for ``source``: gray when the source image was gray, else the RGB output."""
    return rgb_to_gray(sr_rgb) if source.ndim == 2 else sr_rgb


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Encode ``image`` (``uint8``) in the format named by the suffix and write it atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    try:
        Image.fromarray(image).save(buffer, format=Image.registered_extensions().get(path.suffix.lower()))
    except (KeyError, ValueError, OSError) as exc:
        raise SRNASError(f"{path}: cannot encode the image in this format ({exc})") from None
    return atomic_write_bytes(path, buffer.getvalue())


def upscale_file(model: nn.Module, source: str | Path, target: str | Path, scale: int, *, tile: int = 0,
                 overlap: int = 16, device: torch.device | str = "cpu") -> tuple[int, int]:
    """Read ``source``, super-resolve it with :func:`upscale_array`, write ``target``; returns (W, H) written.

    An unreadable ``source`` raises :class:`~srnas_nni.errors.ImageReadError` naming it, before
    anything is written.
    """
    lr = read_image(source)
    image = output_image(upscale_array(model, lr, scale, tile=tile, overlap=overlap, device=device), lr)
    write_image(target, image)
    return image.shape[1], image.shape[0]


def save_sr_images(model: nn.Module, dataset, save_dir: str | Path, *,
                   device: torch.device | str = "cpu") -> list[Path]:
    """Write the SR image of every pair of ``dataset`` as ``save_dir/<name>.png``; returns the paths.

    Whole-image inference (no tiles), so the files are the images ``validate`` measured: 8-bit,
    RGB, or gray (PIL luma of the RGB output) when the data set's image is gray.
    """
    save_dir = Path(save_dir)
    written = []
    for index in range(len(dataset)):
        pair = dataset[index]
        sr = upscale_array(model, pair.lr, int(dataset.scale), tile=0, device=device)
        written.append(write_image(save_dir / f"{pair.name}.png", output_image(sr, pair.hr)))
    return written
