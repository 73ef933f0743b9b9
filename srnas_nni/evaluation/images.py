"""Reading image files into ``uint8`` arrays, with every Pillow mode handled on purpose.

:func:`read_image` returns ``HxWx3`` for colour images and ``HxW`` for single-channel ones, always
``uint8``, upright (EXIF orientation applied) and fully decoded (truncated or corrupt files fail
here, not later in training). Every failure is an :class:`~srnas_nni.errors.ImageReadError` whose
one-line message names the file.

How each Pillow mode becomes ``uint8`` (stored values are kept: no ICC colour management, no
gamma, no guessing that an RGB image "is really gray")::

    Pillow mode                          result  conversion
    -----------------------------------  ------  ----------------------------------------------
    L                                    HxW     as stored
    1 (bilevel)                          HxW     0 -> 0, 1 -> 255
    LA, La                               HxW     alpha dropped (La is un-premultiplied first)
    I;16, I;16L, I;16B, I;16N (16-bit)   HxW     round(v / 257): 65535 -> 255, 257*k -> k
    I (32-bit int, e.g. 16-bit PGM)      HxW     round(v / 257) if all 0 <= v <= 65535, else error
    F (32-bit float)                     error   floats have no defined white level (1.0? 255?)
    RGB                                  HxWx3   as stored
    RGBA, RGBX                           HxWx3   alpha/padding dropped, stored colour kept
    RGBa                                 HxWx3   un-premultiplied, then alpha dropped
    P, PA (palette)                      HxWx3   palette colours (via RGBA, so transparency in
                                                 the palette is dropped, not composited);
                                                 gray palettes stay RGB (we do not guess)
    CMYK, YCbCr, LAB, HSV                HxWx3   Pillow's own conversion to RGB
    16-bit RGB / RGBA PNG and TIFF       HxWx3   round(v / 257), alpha dropped (see below)
    16-bit gray+alpha PNG                HxW     round(v / 257), alpha dropped (see below)
    16-bit PPM (maxval > 255)            HxWx3   Pillow rescales to RGB: round(v * 255 / maxval)
    16-bit PGM (maxval > 255)            HxW     Pillow rescales to I in 0..65535; round(v / 257)
    any other mode                       error   "unsupported image mode"

Why 16-bit colour needs care: Pillow has no 16-bit RGB mode; it decodes 16-bit RGB(A) samples
into 8-bit ``RGB``/``RGBA`` by keeping only the high byte (``floor(v / 256)``) and opens 16-bit
gray+alpha PNGs as ``RGBA``. To convert them exactly like 16-bit gray (``round(v / 257)``), the
file is decoded a second time with the byte order swapped in the decoder's raw mode, which yields
the low bytes (Pillow's decoders undo PNG filtering and TIFF compression the same way for both
byte orders). Gray+alpha is decoded a second time as plain 4-byte ``RGBA`` to get both bytes.

Multi-frame files (animated GIF/PNG/WebP, multi-page TIFF): the first frame. GIFs whose palette is
all gray are opened by Pillow as ``L`` and so come back single-channel.

Bad and unusual inputs, and what happens to them (``ImageReadError`` messages are one line,
``<file>: <reason>``; a data set built with ``skip_bad=True`` skips such a file with a
:class:`~srnas_nni.evaluation.pairs.SkippedImageWarning` instead; ``srnas evaluate`` prints
``srnas: error: <message>`` and exits 2, or with ``--skip-bad`` measures the other images)::

    input                                 behaviour
    ------------------------------------  -----------------------------------------------------
    missing path                          ImageReadError "no such file"
    folder (even one named x.png)         ImageReadError "is a folder"; list_images ignores it
    zero-byte file                        ImageReadError "file is empty (0 bytes)"
    not an image (text, random bytes)     ImageReadError "not an image file (or a format ...)"
      with an image extension
    truncated PNG/JPEG (any length)       ImageReadError "cannot decode image data (...)":
                                          decoded to the end here, never later in training
    1x1 (or any) image smaller than the   read fine; the data set refuses it: ImageReadError
      scale factor                        "image 1x1 is smaller than the scale factor 2"
    image smaller than the training       read fine; PatchSampler: ImageReadError "image WxH is
      patch                               smaller than the PxP training patch" (or skipped)
    16-bit PNG/TIFF, gray or colour       uint8 by round(v / 257) (table above)
    CMYK JPEG                             HxWx3 by Pillow's CMYK -> RGB
    RGBA, palette (P, PA)                 HxWx3, alpha/transparency dropped, colours as stored
    animated GIF/PNG/WebP, multi-page     the first frame
    32-bit float (F), I outside 0..65535  ImageReadError (no defined 8-bit range)
    folder with no image files            list_images: DatasetError "<folder>: no image files"
    skip_bad and no file readable         DatasetError "<folder>: none of the N images is readable"

:func:`list_images` lists a folder's images (:data:`IMAGE_EXTENSIONS`) in natural order;
:func:`to_rgb` replicates a gray image into three channels for models that take RGB.

Checking a data set before a run: :func:`read_image_header` opens a file by its header only (no
pixel decoding) and refuses what :func:`read_image` would refuse that the file's structure shows:
everything in the table above up to "not an image", an unsupported mode, and a file that ends
before the data its own structure declares (PNG chunks, the WebP RIFF size, TIFF strips and tiles,
the rows of uncompressed BMP/PPM/PGM, the JPEG end marker). It does not decode: damage inside
compressed data (and a GIF cut short) passes here and fails in :func:`read_image`, still one line
naming the file.
:class:`ImageHeaderCache` remembers the outcome per file (resolved path, size, modification time)
for the process and, given a folder, on disk for other processes.
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageMode, ImageOps, UnidentifiedImageError

from ..errors import DatasetError, ImageReadError

__all__ = ["IMAGE_EXTENSIONS", "read_image", "list_images", "natural_sort_key", "to_rgb", "ImageHeader",
           "read_image_header", "ImageHeaderCache"]

#: Lower-case suffixes (with the dot) that :func:`list_images` treats as images; case-insensitive.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
)

_UINT16_MAX = 65535


# --------------------------------------------------------------------------------------------
# Public API


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` fully into a ``uint8`` array: ``HxWx3`` (colour) or ``HxW`` (gray).

    See the module docstring for how each Pillow mode is converted. Raises
    :class:`ImageReadError` (one line, naming the file) for a missing path, a folder, an empty
    file, a file that is not an image, truncated or corrupt data, or an unsupported mode.
    """
    path = Path(path)
    _check_is_nonempty_file(path)
    with _pillow_errors(path, "cannot decode image data"):
        return _decode(path)


@contextlib.contextmanager
def _pillow_errors(path: Path, failure: str) -> Iterator[None]:
    """Inside: what Pillow raises becomes one :class:`ImageReadError` naming ``path`` (``failure``: what failed)."""
    try:
        yield
    except (ImageReadError, MemoryError):
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file (or a format Pillow cannot read)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's plugins raise OSError, SyntaxError, ValueError, ...
        raise ImageReadError(path, f"{failure} ({_one_line(exc)})") from exc


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder``, in natural order (``img2`` before ``img10``).

    Only files whose suffix is in :data:`IMAGE_EXTENSIONS` count (any case); hidden files such
    as macOS ``._0001.png`` resource forks are ignored. Raises :class:`DatasetError` naming the
    folder if it is missing, not a folder, or holds no image.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DatasetError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    images = [
        entry for entry in folder.iterdir()
        if entry.suffix.lower() in IMAGE_EXTENSIONS and not entry.name.startswith(".") and entry.is_file()
    ]
    if not images:
        extensions = ", ".join(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))
        raise DatasetError(f"{folder}: no image files ({extensions})")
    return sorted(images, key=lambda entry: natural_sort_key(entry.name))


def natural_sort_key(name: str) -> tuple:
    """Sort key ordering digit runs by value, case-insensitively, ties broken by the exact name."""
    parts = _DIGIT_RUNS.split(name)
    # re.split with a capture group alternates text, digits, text...: same type at each index.
    folded = tuple(int(part) if index % 2 else part.casefold() for index, part in enumerate(parts))
    return folded, name


def to_rgb(image: np.ndarray) -> np.ndarray:
    """``HxW`` or ``HxWx1`` gray -> ``HxWx3`` by replication; ``HxWx3`` is returned as is."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"to_rgb expects an HxW, HxWx1 or HxWx3 image, got shape {image.shape}")


# --------------------------------------------------------------------------------------------
# Header checks (no decoding)


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says: the stored ``width`` and ``height`` (before any EXIF rotation,
    which swaps them but changes no minimum side or multiple of the scale) and Pillow's ``mode``."""

    width: int
    height: int
    mode: str


def read_image_header(path: str | Path) -> ImageHeader:
    """Open ``path`` by its header, without decoding pixels (see the module docstring).

    Raises :class:`ImageReadError` (one line, naming the file, with the same reasons as
    :func:`read_image` where both see the problem) for a missing path, a folder, an empty file, a
    file that is not an image, an unsupported mode, or a file shorter than its structure declares.
    """
    path = Path(path)
    _check_is_nonempty_file(path)
    # Pillow warns about what it meets in a damaged header (TIFF: "Truncated File Read"); the
    # outcome says it on one line, so the warnings would only repeat it.
    with _pillow_errors(path, "cannot read the image header"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as image:
            header = ImageHeader(int(image.width), int(image.height), str(image.mode))
            problem = _structure_problem(path, image, path.stat().st_size)
    if problem is not None:
        raise ImageReadError(path, problem)
    if header.mode == "F":
        raise ImageReadError(path, _FLOAT_MODE_REASON)
    if header.mode not in _CONVERTERS:
        raise ImageReadError(path, f"unsupported image mode {header.mode!r}")
    return header


class ImageHeaderCache:
    """:func:`read_image_header` outcomes (the header or the one-line reason) keyed by a file's
    resolved path, size and modification time in nanoseconds: an edited file is checked again.

    Outcomes are shared by every instance in the process. With ``folder`` they are also kept in
    ``folder/image-headers-v1.json`` (read on first use, written by :meth:`save`, merged with what
    other processes wrote meanwhile) so that the next ``srnas validate`` or another worker reads no
    header twice; an unusable folder only means no disk cache. ``opened`` counts the files this
    instance actually opened (the rest came from a cache).
    """

    _FILE_NAME = "image-headers-v1.json"
    _memory: dict[str, ImageHeader | str] = {}  # process-wide: key -> header or reason

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder).expanduser() if folder is not None else None
        self.opened = 0
        self._disk: dict[str, list | str] | None = None
        self._new: dict[str, list | str] = {}

    def header(self, path: str | Path) -> ImageHeader:
        """The header of ``path``; raises :class:`ImageReadError` (also when the failure was cached)."""
        path = Path(path)
        key = self._key(path)
        if key is None:  # cannot stat: read_image_header names the problem (no such file, ...)
            self.opened += 1
            return read_image_header(path)
        outcome = self._memory.get(key)
        if outcome is None:
            stored = self._disk_entries().get(key)
            if stored is not None:
                outcome = stored if isinstance(stored, str) else ImageHeader(int(stored[0]), int(stored[1]), stored[2])
                self._memory[key] = outcome
        if outcome is None:
            self.opened += 1
            try:
                outcome = read_image_header(path)
            except ImageReadError as error:
                outcome = error.reason
            self._memory[key] = outcome
            if self.folder is not None:
                self._new[key] = outcome if isinstance(outcome, str) else [outcome.width, outcome.height, outcome.mode]
        if isinstance(outcome, str):
            raise ImageReadError(path, outcome)
        return outcome

    def save(self) -> None:
        """Write the outcomes found since the last save to the cache folder (if any); never raises."""
        if self.folder is None or not self._new:
            return
        from ..runtime import atomic_write_bytes

        file = self.folder / self._FILE_NAME
        entries = {**_read_json_entries(file), **self._new}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(file, json.dumps(entries, separators=(",", ":")).encode())
        except OSError:
            return  # a cache only saves time; the checks themselves are done
        self._disk = entries
        self._new = {}

    def _disk_entries(self) -> dict[str, list | str]:
        if self._disk is None:
            self._disk = _read_json_entries(self.folder / self._FILE_NAME) if self.folder is not None else {}
        return self._disk

    @staticmethod
    def _key(path: Path) -> str | None:
        try:
            stat = path.stat()
            resolved = path.resolve()
        except OSError:
            return None
        return f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_json_entries(file: Path) -> dict[str, list | str]:
    """A header cache file's entries, or nothing if it is missing or unreadable (it is only a cache)."""
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {key: value for key, value in entries.items()
            if isinstance(value, str) or (isinstance(value, list) and len(value) == 3)}


def _structure_problem(path: Path, image: Image.Image, file_size: int) -> str | None:
    """Why the file is shorter than its structure says (so decoding must fail), or None."""
    if image.format == "PNG":
        return _png_problem(path, file_size)
    if image.format == "JPEG":
        return _jpeg_problem(path, file_size)
    if image.format == "WEBP":
        return _riff_problem(path, file_size)
    if image.format == "TIFF":
        return _tiff_problem(image, file_size)
    return _raw_tiles_problem(image, file_size)


_PNG_IMAGE_DATA = (b"IDAT", b"fdAT")


def _png_problem(path: Path, file_size: int) -> str | None:
    # Walk the chunk headers (8 bytes each, seeking over the data), unbuffered so that only the
    # headers are read. The file is certainly unusable when it ends before the image data or
    # inside an image-data chunk. Once the image data was whole, a cut later chunk (IEND, text)
    # is left to decoding, which accepts it; so is a cut between chunks, which only decoding can
    # tell from complete data.
    position = 8  # after the signature, which Image.open has checked
    seen_image_data = False
    with open(path, "rb", buffering=0) as file:
        while position < file_size:
            file.seek(position)
            head = file.read(8)
            if len(head) < 8:
                if seen_image_data:
                    return None
                return f"truncated: the file ends inside a PNG chunk header at byte {position} of {file_size}"
            length, kind = struct.unpack(">I4s", head)
            is_image_data = kind in _PNG_IMAGE_DATA
            end = position + 12 + length  # header, data, CRC
            if end > file_size:
                if seen_image_data and not is_image_data:
                    return None
                name = kind.decode("latin-1") if kind.isalpha() else repr(kind)
                return (f"truncated or corrupt: PNG chunk {name} at byte {position} needs {end} bytes, "
                        f"the file has {file_size}")
            if kind == b"IEND":
                return None
            seen_image_data = seen_image_data or is_image_data
            position = end
    return None


def _jpeg_problem(path: Path, file_size: int) -> str | None:
    # A JPEG ends with the end-of-image marker FFD9, which Pillow requires. Almost every file ends
    # with it exactly (one 2-byte read); otherwise (trailing bytes such as an appended video, or a
    # cut) the whole file is read: complete when FFD9 follows the start of the first scan. Entropy-
    # coded data cannot contain FFD9 (0xFF is stuffed), so a cut file has none after it.
    with open(path, "rb") as file:
        file.seek(max(0, file_size - 2))
        if file.read(2) == b"\xff\xd9":
            return None
        file.seek(0)
        data = file.read()
    scan = _first_jpeg_scan(data)
    if scan is None or data.find(b"\xff\xd9", scan) != -1:
        return None  # a structure this walk does not follow is left to decoding
    return f"truncated: no end-of-image marker after the image data ({file_size} bytes)"


def _first_jpeg_scan(data: bytes) -> int | None:
    """Offset of the first start-of-scan marker (FFDA), walking the marker segments before it (an
    EXIF thumbnail inside APP1 is skipped with its segment), or None."""
    position = 2  # after the start-of-image marker
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
        elif marker == 0xDA:
            return position
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            position += 2
        else:
            position += 2 + int.from_bytes(data[position + 2: position + 4], "big")
    return None


def _riff_problem(path: Path, file_size: int) -> str | None:
    with open(path, "rb") as file:
        head = file.read(8)
    if len(head) < 8 or head[:4] != b"RIFF":
        return None
    needed = 8 + struct.unpack("<I", head[4:])[0]
    if file_size < needed:
        return f"truncated: the WebP file declares {needed} bytes, it has {file_size}"
    return None


def _tiff_problem(image: Image.Image, file_size: int) -> str | None:
    tags = getattr(image, "tag_v2", None)
    if tags is None:
        return None
    for offsets_tag, counts_tag, what in ((273, 279, "strip"), (324, 325, "tile")):
        offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
        if not offsets or not counts:
            continue
        offsets = offsets if isinstance(offsets, tuple) else (offsets,)
        counts = counts if isinstance(counts, tuple) else (counts,)
        end = max(int(offset) + int(count) for offset, count in zip(offsets, counts))
        if end > file_size:
            return f"truncated: its image data ({what}s) end at byte {end}, the file has {file_size}"
    return None


def _raw_tiles_problem(image: Image.Image, file_size: int) -> str | None:
    # Uncompressed rows (BMP, PPM/PGM, ...): the bytes they need follow from the header alone.
    for tile in image.tile:
        codec, extents, offset, args = tile[0], tile[1], tile[2], tile[3]
        if codec != "raw":
            continue
        rawmode, stride = (args, 0) if isinstance(args, str) else (args[0], args[1] if len(args) > 1 else 0)
        rows = extents[3] - extents[1]
        row_bytes = abs(int(stride)) or _packed_row_bytes(rawmode, extents[2] - extents[0])
        if row_bytes is None:
            continue
        end = int(offset) + row_bytes * rows
        if end > file_size:
            return f"truncated: its {rows} rows of pixels end at byte {end}, the file has {file_size}"
    return None


def _packed_row_bytes(rawmode: str, width: int) -> int | None:
    """Bytes of one row of ``width`` pixels in ``rawmode`` when it is a whole-byte Pillow mode, else None."""
    try:
        description = ImageMode.getmode(rawmode)
    except KeyError:
        return None
    kind, size = description.typestr[1], description.typestr[2:]
    if kind == "b" or not size.isdigit():  # bit-packed (mode 1) or unknown: no check
        return None
    return width * len(description.bands) * int(size)


# --------------------------------------------------------------------------------------------
# Decoding

_DIGIT_RUNS = re.compile(r"(\d+)", re.ASCII)


def _check_is_nonempty_file(path: Path) -> None:
    # Checked before Pillow so the message says what is wrong rather than "cannot identify".
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot access file ({_one_line(exc)})") from None
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    if stat.st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")


def _decode(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        # The tiles (decoder instructions) are gone after load(); keep them for a second pass.
        tiles = list(image.tile)
        second_pass = _second_pass_rawmode(image.mode, tiles)
        image.load()  # decode everything now: truncated data fail here
        upright = ImageOps.exif_transpose(image)
    if second_pass is not None:
        return _sixteen_bit_colour(path, upright, tiles, second_pass)
    converter = _CONVERTERS.get(upright.mode)
    if converter is None:
        raise ImageReadError(path, f"unsupported image mode {upright.mode!r}")
    return _writable(converter(path, upright))


def _writable(array: np.ndarray) -> np.ndarray:
    # np.asarray(PIL image) is a read-only view of Pillow's bytes; callers (torch.from_numpy,
    # in-place edits) expect an ordinary array, so copy only when needed.
    if array.flags.writeable and array.flags.c_contiguous:
        return array
    return np.array(array, order="C")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# -- mode conversions (see the table in the module docstring) --------------------------------


def _as_stored(path: Path, image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def _bilevel(path: Path, image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"))


def _gray_drop_alpha(path: Path, image: Image.Image) -> np.ndarray:
    # "La" (premultiplied) -> "LA" un-premultiplies; then channel 0 is the stored gray.
    return np.asarray(image.convert("LA"))[:, :, 0]


def _colour_drop_alpha(path: Path, image: Image.Image) -> np.ndarray:
    # Via RGBA: palette transparency stays out of the colours (no Pillow transparency warning),
    # premultiplied RGBa is un-premultiplied, RGBX padding is ignored.
    return np.asarray(image.convert("RGBA"))[:, :, :3]


def _pillow_rgb(path: Path, image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _sixteen_bit_gray(path: Path, image: Image.Image) -> np.ndarray:
    return _round_16_to_8(np.asarray(image))


def _int32_gray(path: Path, image: Image.Image) -> np.ndarray:
    values = np.asarray(image)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > _UINT16_MAX:
        raise ImageReadError(
            path,
            f"32-bit integer image with values {low}..{high} outside 0..{_UINT16_MAX} "
            "has no defined 8-bit range",
        )
    return _round_16_to_8(values)


_FLOAT_MODE_REASON = "unsupported image mode 'F' (32-bit float has no defined white level; save it as 8 or 16-bit)"


def _float_image(path: Path, image: Image.Image) -> np.ndarray:
    raise ImageReadError(path, _FLOAT_MODE_REASON)


_CONVERTERS: dict[str, Callable[[Path, Image.Image], np.ndarray]] = {
    "L": _as_stored,
    "1": _bilevel,
    "LA": _gray_drop_alpha,
    "La": _gray_drop_alpha,
    "I;16": _sixteen_bit_gray,
    "I;16L": _sixteen_bit_gray,
    "I;16B": _sixteen_bit_gray,
    "I;16N": _sixteen_bit_gray,
    "I": _int32_gray,
    "F": _float_image,
    "RGB": _as_stored,
    "RGBA": _colour_drop_alpha,
    "RGBX": _colour_drop_alpha,
    "RGBa": _colour_drop_alpha,
    "P": _colour_drop_alpha,
    "PA": _colour_drop_alpha,
    "CMYK": _pillow_rgb,
    "YCbCr": _pillow_rgb,
    "LAB": _pillow_rgb,
    "HSV": _pillow_rgb,
}


def _round_16_to_8(values: np.ndarray) -> np.ndarray:
    # round(v / 257) in integers; 257 is odd so there are no ties. 65535 -> 255, 257*k -> k.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


# -- 16-bit colour: a second decode for the bytes Pillow throws away --------------------------

_OPPOSITE_BYTE_ORDER = {"B": "L", "L": "B", "N": "B" if sys.byteorder == "little" else "L"}
_GRAY_ALPHA_16 = "LA;16B"  # 16-bit gray+alpha PNG, opened by Pillow as 8-bit RGBA


def _tile_rawmode(tile) -> str | None:
    args = tile[3]
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _second_pass_rawmode(mode: str, tiles: list) -> dict[str, str] | None:
    """``{first-pass rawmode: second-pass rawmode}`` if Pillow narrows 16-bit colour, else None."""
    rawmodes = {_tile_rawmode(tile) for tile in tiles}
    if not rawmodes or None in rawmodes:
        return None
    mapping: dict[str, str] = {}
    for rawmode in rawmodes:
        if mode == "RGBA" and rawmode == _GRAY_ALPHA_16:
            mapping[rawmode] = "RGBA"  # same 4 bytes per pixel, read without unpacking
        elif mode in ("RGB", "RGBA") and rawmode[:-1] == f"{mode};16" and rawmode[-1] in _OPPOSITE_BYTE_ORDER:
            mapping[rawmode] = rawmode[:-1] + _OPPOSITE_BYTE_ORDER[rawmode[-1]]
        else:
            return None
    return mapping


def _with_rawmode(tile, rawmode: str):
    args = tile[3]
    new_args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
    if hasattr(tile, "_replace"):  # Pillow >= 11 uses a NamedTuple
        return tile._replace(args=new_args)
    return (tile[0], tile[1], tile[2], new_args)


def _sixteen_bit_colour(path: Path, high: Image.Image, tiles: list,
                        second_pass: dict[str, str]) -> np.ndarray:
    with Image.open(path) as image:
        image.tile = [_with_rawmode(tile, second_pass[_tile_rawmode(tile)]) for tile in tiles]
        image.load()
        other = np.asarray(ImageOps.exif_transpose(image)).astype(np.uint16)
    if _GRAY_ALPHA_16 in second_pass:
        # Raw bytes per pixel: gray high, gray low, alpha high, alpha low.
        return _round_16_to_8((other[:, :, 0] << 8) | other[:, :, 1])
    samples = (np.asarray(high).astype(np.uint16) << 8) | other
    return _writable(_round_16_to_8(samples)[:, :, :3])
