"""Images the tests write: smooth random pictures an SR model can learn, and files that are no images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def smooth_image(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    """A band-limited random image: natural-ish content an SR model can learn quickly."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(max(2, height // 8), max(2, width // 8), channels))
    image = Image.fromarray(coarse.astype(np.uint8).squeeze() if channels == 1 else coarse.astype(np.uint8))
    return np.asarray(image.resize((width, height), Image.BICUBIC))


def png_bytes(seed: int = 7, height: int = 48, width: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(smooth_image(height, width, seed=seed)).save(buffer, "PNG")
    return buffer.getvalue()


def write_not_an_image(path: Path) -> None:
    path.write_text("meeting notes, not a picture\n")


def write_truncated_png(path: Path) -> None:
    data = png_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_corrupt_png(path: Path) -> None:
    """Whole chunks, but image data no decoder accepts: only decoding (a trial) can tell."""
    data = bytearray(png_bytes())
    start = data.find(b"IDAT") + 4
    data[start: start + 2] = b"\x00\x00"  # the zlib header of the image data
    path.write_bytes(bytes(data))


BAD_KINDS = {"notes.png": (write_not_an_image, "not an image file"), "cut.png": (write_truncated_png, "truncated")}


def image_folder_with(root: Path, name: str, *bad: str) -> Path:
    """Four good 48x64 PNGs and the ``bad`` files (names from BAD_KINDS, or corrupt.png)."""
    folder = root / name
    folder.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(48, 64, seed=i)).save(folder / f"img{i}.png")
    for file_name in bad:
        writer = write_corrupt_png if file_name == "corrupt.png" else BAD_KINDS[file_name][0]
        writer(folder / file_name)
    return folder
