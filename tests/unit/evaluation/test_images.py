"""read_image: every Pillow mode gives the documented uint8 array; every bad file one clear error."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srnas_nni.errors import DatasetError, ImageReadError
from srnas_nni.evaluation.images import IMAGE_EXTENSIONS, list_images, read_image, to_rgb


def noise(height: int, width: int, channels: int | None = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width) if channels is None else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def round_16_to_8(values: np.ndarray) -> np.ndarray:
    return np.rint(values.astype(np.float64) / 257.0).astype(np.uint8)


def assert_read_error(path: Path) -> ImageReadError:
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    message = str(caught.value)
    assert path.name in message and "\n" not in message
    return caught.value


# -- a minimal 16-bit PNG writer (Pillow cannot write 16-bit colour PNGs) ---------------------

_ADAM7 = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]


def _filtered_rows(samples: np.ndarray, bytes_per_pixel: int) -> bytes:
    """PNG scanlines cycling through all five filter types (so the decoder has to undo each)."""
    rows = samples.reshape(samples.shape[0], -1).astype(">u2").view(np.uint8).astype(np.int32)
    out = bytearray()
    previous = np.zeros(rows.shape[1], dtype=np.int32)
    for index, raw in enumerate(rows):
        left = np.concatenate([np.zeros(bytes_per_pixel, np.int32), raw[:-bytes_per_pixel]])
        up_left = np.concatenate([np.zeros(bytes_per_pixel, np.int32), previous[:-bytes_per_pixel]])
        kind = index % 5
        if kind == 0:
            predicted = np.zeros_like(raw)
        elif kind == 1:
            predicted = left
        elif kind == 2:
            predicted = previous
        elif kind == 3:
            predicted = (left + previous) // 2
        else:
            base = left + previous - up_left
            pa, pb, pc = abs(base - left), abs(base - previous), abs(base - up_left)
            predicted = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, previous, up_left))
        out += bytes([kind]) + ((raw - predicted) % 256).astype(np.uint8).tobytes()
        previous = raw
    return bytes(out)


def write_png16(path: Path, samples: np.ndarray, color_type: int, interlaced: bool = False) -> None:
    """``samples``: uint16 HxW (gray), HxWx2 (gray+alpha), HxWx3 (RGB) or HxWx4 (RGBA)."""
    height, width = samples.shape[:2]
    bytes_per_pixel = 2 * (1 if samples.ndim == 2 else samples.shape[2])
    if interlaced:
        passes = (samples[y0::dy, x0::dx] for y0, x0, dy, dx in _ADAM7)
        data = b"".join(_filtered_rows(p, bytes_per_pixel) for p in passes if p.size)
    else:
        data = _filtered_rows(samples, bytes_per_pixel)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, int(interlaced))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(data))
                     + chunk(b"IEND", b""))


def samples16(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    values = np.random.default_rng(seed).integers(0, 65536, size=shape).astype(np.uint16)
    values.flat[:4] = [0, 65535, 257 * 10 + 128, 257 * 10 + 129]  # edges and both sides of a half
    return values


# -- conversions -------------------------------------------------------------------------------


def test_gray_stays_single_channel(tmp_path):
    gray = noise(9, 13, None)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    out = read_image(tmp_path / "gray.png")
    assert out.dtype == np.uint8 and out.shape == (9, 13)
    np.testing.assert_array_equal(out, gray)


def test_rgb_as_stored_and_gray_looking_rgb_stays_rgb(tmp_path):
    rgb = noise(7, 5)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), rgb)
    looks_gray = np.repeat(noise(7, 5, None)[:, :, None], 3, axis=2)
    Image.fromarray(looks_gray).save(tmp_path / "looks_gray.png")
    assert read_image(tmp_path / "looks_gray.png").shape == (7, 5, 3)


def test_rgba_drops_alpha_keeping_stored_colour(tmp_path):
    rgba = noise(6, 8, 4)
    rgba[0, 0, 3] = 0  # fully transparent pixel keeps its colour (not composited)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgba[:, :, :3])


def test_gray_alpha_drops_alpha(tmp_path):
    la = noise(6, 8, 2)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), la[:, :, 0])


def test_palette_gives_palette_colours_even_with_transparency(tmp_path):
    palette_image = Image.fromarray(noise(10, 12)).quantize(colors=16)
    palette_image.info["transparency"] = 0
    palette_image.save(tmp_path / "palette.png", transparency=0)
    expected = np.asarray(palette_image.convert("RGB"))
    with Image.open(tmp_path / "palette.png") as reopened:
        assert reopened.mode == "P"
    np.testing.assert_array_equal(read_image(tmp_path / "palette.png"), expected)


def test_bilevel_becomes_0_or_255_gray(tmp_path):
    bits = noise(5, 9, None) > 127
    Image.fromarray(bits).save(tmp_path / "bits.png")
    out = read_image(tmp_path / "bits.png")
    assert out.shape == (5, 9) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.where(bits, 255, 0))


def test_16bit_gray_png_rounds_value_over_257(tmp_path):
    values = np.array([[65535, 0, 257 * 3, 257 * 200], [257 * 7 + 128, 257 * 7 + 129, 1, 128]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as reopened:
        assert reopened.mode.startswith("I")
    out = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(out, [[255, 0, 3, 200], [7, 8, 0, 0]])


@pytest.mark.parametrize("interlaced", [False, True])
@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_keeps_both_bytes(tmp_path, channels, interlaced):
    # Pillow alone keeps only the high byte (floor(v / 256)); read_image rounds v / 257 exactly.
    values = samples16((11, 13, channels))
    write_png16(tmp_path / "deep.png", values, color_type=2 if channels == 3 else 6, interlaced=interlaced)
    out = read_image(tmp_path / "deep.png")
    assert out.shape == (11, 13, 3)
    np.testing.assert_array_equal(out, round_16_to_8(values[:, :, :3]))


def test_16bit_gray_alpha_png_is_single_channel(tmp_path):
    values = samples16((9, 7, 2))
    write_png16(tmp_path / "deep_la.png", values, color_type=4)
    out = read_image(tmp_path / "deep_la.png")
    np.testing.assert_array_equal(out, round_16_to_8(values[:, :, 0]))


def test_16bit_rgb_tiff_keeps_both_bytes(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    values = samples16((20, 18, 3))
    tifffile.imwrite(tmp_path / "deep.tif", values, photometric="rgb", compression="zlib", rowsperstrip=4)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.tif"), round_16_to_8(values))


def test_cmyk_jpeg_becomes_rgb_like_pillow(tmp_path):
    Image.fromarray(noise(16, 16, 4), "CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as reopened:
        assert reopened.mode == "CMYK"
        expected = np.asarray(reopened.convert("RGB"))
    out = read_image(tmp_path / "cmyk.jpg")
    assert out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out, expected)


def test_exif_orientation_is_applied(tmp_path):
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(wide).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "rotated.jpg")
    assert out.shape == (40, 20, 3)
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # the white half is now on top


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 6), colour) for colour in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(tmp_path / "anim.gif") as reopened:
        assert reopened.n_frames == 3
    out = read_image(tmp_path / "anim.gif")
    assert out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])


def test_float_image_is_rejected(tmp_path):
    Image.fromarray(np.full((4, 4), 0.5, np.float32), "F").save(tmp_path / "float.tif")
    error = assert_read_error(tmp_path / "float.tif")
    assert "'F'" in str(error)


def test_32bit_integer_within_16_bits_is_scaled_and_outside_rejected(tmp_path):
    Image.fromarray(np.array([[65535, 257]], np.int32), "I").save(tmp_path / "int.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "int.tif"), [[255, 1]])
    Image.fromarray(np.array([[70000, 0]], np.int32), "I").save(tmp_path / "too_deep.tif")
    assert "70000" in str(assert_read_error(tmp_path / "too_deep.tif"))


# -- errors ------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    assert "no such file" in str(assert_read_error(tmp_path / "missing.png"))


def test_directory(tmp_path):
    (tmp_path / "folder.png").mkdir()
    assert "folder" in str(assert_read_error(tmp_path / "folder.png"))


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty" in str(assert_read_error(tmp_path / "empty.png"))


def test_text_file_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image\n")
    assert "not an image" in str(assert_read_error(tmp_path / "notes.png"))


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files(tmp_path, suffix, keep):
    whole = tmp_path / f"whole{suffix}"
    Image.fromarray(noise(64, 64)).save(whole)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * keep)])
    read_image(whole)  # the intact file is fine
    assert_read_error(cut)


# -- listing and to_rgb ------------------------------------------------------------------------


def test_list_images_natural_order_and_filtering(tmp_path):
    for name in ["img10.png", "img2.PNG", "img1.jpg", "Img3.tif", "notes.txt", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    names = [path.name for path in list_images(tmp_path)]
    assert names == ["img1.jpg", "img2.PNG", "Img3.tif", "img10.png"]
    expected = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
    assert IMAGE_EXTENSIONS == expected


def test_list_images_errors_name_the_folder(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        list_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="empty"):
        list_images(tmp_path / "empty")


def test_to_rgb():
    gray = noise(3, 4, None)
    rgb = to_rgb(gray)
    assert rgb.shape == (3, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], gray)
    colour = noise(3, 4)
    assert to_rgb(colour) is colour
    with pytest.raises(ValueError):
        to_rgb(noise(3, 4, 4))


@pytest.mark.parametrize("mode", ["L", "RGB", "P"])
def test_result_is_an_ordinary_writable_array(tmp_path, mode):
    Image.fromarray(noise(4, 6)).convert(mode).save(tmp_path / "image.png")
    out = read_image(tmp_path / "image.png")
    assert out.flags.writeable and out.flags.c_contiguous
