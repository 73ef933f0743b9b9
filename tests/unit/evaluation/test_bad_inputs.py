"""Odd and broken image inputs through the data sets and ``srnas evaluate``: a clear line, never a traceback.

``test_images.py`` covers :func:`read_image` on each case; here each case sits in a folder beside a
good image and goes through :func:`open_dataset` (with and without ``skip_bad``), a real
:class:`PatchSampler`, and the CLI (``srnas evaluate --model bicubic``: one ``srnas: error:`` line
and exit 2; with ``--skip-bad`` the good images are still measured).
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srnas_nni.cli import main
from srnas_nni.errors import DatasetError, ImageReadError
from srnas_nni.evaluation.data import ImageFolderDataset, PatchSampler, SkippedImageWarning, open_dataset
from srnas_nni.evaluation.images import read_image


def noise(height: int, width: int, channels: int | None = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width) if channels is None else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _encoded(suffix: str, size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise(size, size)).save(buffer, format={".png": "PNG", ".jpg": "JPEG"}[suffix])
    return buffer.getvalue()


# Unusable files: name -> writer. Each must be an ImageReadError naming the file.
BAD_FILES = {
    "truncated.png": lambda path: path.write_bytes(_encoded(".png")[:-200]),
    "truncated.jpg": lambda path: path.write_bytes(_encoded(".jpg")[:-200]),
    "header_only.png": lambda path: path.write_bytes(_encoded(".png")[:20]),
    "header_only.jpg": lambda path: path.write_bytes(_encoded(".jpg")[:200]),
    "zero_bytes.png": lambda path: path.write_bytes(b""),
    "not_an_image.jpg": lambda path: path.write_text("name,psnr\nbaby,33.1\n"),
    "random_bytes.png": lambda path: path.write_bytes(bytes(range(256)) * 4),
    "one_pixel.png": lambda path: Image.fromarray(noise(1, 1)).save(path),  # smaller than the scale
}


def _gif(path: Path) -> None:
    frames = [Image.new("RGB", (40, 32), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)


# Odd but usable files: name -> (writer, shape read_image gives).
ODD_FILES = {
    "rgba.png": (lambda path: Image.fromarray(noise(32, 40, 4), "RGBA").save(path), (32, 40, 3)),
    "palette.png": (lambda path: Image.fromarray(noise(32, 40)).convert("P").save(path), (32, 40, 3)),
    "deep16.png": (lambda path: Image.fromarray(noise(32, 40, None).astype(np.uint16) * 257).save(path), (32, 40)),
    "cmyk.jpg": (lambda path: Image.fromarray(noise(32, 40, 4), "CMYK").save(path, quality=95), (32, 40, 3)),
    "animated.gif": (_gif, (32, 40, 3)),
}


def _folder_with(tmp_path: Path, name: str, writer) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    Image.fromarray(noise(48, 48, seed=1)).save(folder / "good.png")
    writer(folder / name)
    return folder


def _evaluate(folder: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImageWarning)
        status = main(["evaluate", "--model", "bicubic", "--data", str(folder), "--scale", "2", *extra])
    return status, out.getvalue(), err.getvalue()


# -- unusable files -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_named_by_the_dataset_or_skipped(tmp_path, name):
    folder = _folder_with(tmp_path, name, BAD_FILES[name])
    strict = open_dataset(str(folder), 2)
    assert strict.names == ["good", Path(name).stem]  # listed; decoded (and refused) when used
    with pytest.raises(ImageReadError) as caught:
        strict[1]
    assert str(caught.value).startswith(f"{folder / name}: ") and "\n" not in str(caught.value)
    with pytest.warns(SkippedImageWarning, match=name) as record:
        tolerant = open_dataset(str(folder), 2, skip_bad=True)
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert tolerant.names == ["good"] and tolerant[0].hr.shape == (48, 48, 3)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_cli_evaluate_bad_file_one_line_exit_2_or_skipped(tmp_path, name):
    folder = _folder_with(tmp_path, name, BAD_FILES[name])
    status, out, err = _evaluate(folder)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"srnas: error: {folder / name}: "), err
    status, out, err = _evaluate(folder, "--skip-bad")
    assert status == 0, err
    assert "good" in out and Path(name).stem not in out and "1 images" in out


def test_cli_evaluate_folder_without_images_or_nothing_readable(tmp_path):
    empty = tmp_path / "no_images"
    empty.mkdir()
    (empty / "readme.txt").write_text("the images are elsewhere")
    (empty / "sub.png").mkdir()  # a folder with an image suffix is not an image
    for extra in ((), ("--skip-bad",)):
        status, out, err = _evaluate(empty, *extra)
        assert status == 2 and err.count("\n") == 1 and f"{empty}: no image files" in err, err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"")
    (broken / "b.jpg").write_text("text")
    status, out, err = _evaluate(broken, "--skip-bad")
    assert status == 2 and err.count("\n") == 1 and "none of the 2 images is readable" in err, err


def test_library_folder_without_images_and_missing_folder(tmp_path):
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / ".hidden.png").write_bytes(_encoded(".png"))  # hidden files do not count
    with pytest.raises(DatasetError, match="no image files"):
        ImageFolderDataset(tmp_path / "only_text", 2, skip_bad=True)
    with pytest.raises(DatasetError, match="no such file or folder"):
        open_dataset(str(tmp_path / "nowhere"), 2, skip_bad=True)


# -- odd but usable files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ODD_FILES))
def test_odd_file_is_converted_as_documented(tmp_path, name):
    writer, shape = ODD_FILES[name]
    folder = _folder_with(tmp_path, name, writer)
    assert read_image(folder / name).shape == shape
    dataset = open_dataset(str(folder), 2)
    pair = dataset[dataset.names.index(Path(name).stem)]
    assert pair.hr.shape == shape and pair.lr.shape == (16, 20, *shape[2:])
    assert pair.hr.dtype == pair.lr.dtype == np.uint8
    status, out, err = _evaluate(folder)
    assert status == 0, err
    assert Path(name).stem in out and "2 images" in out


def test_1x1_image_reads_but_is_no_sr_pair(tmp_path):
    Image.fromarray(noise(1, 1)).save(tmp_path / "dot.png")
    assert read_image(tmp_path / "dot.png").shape == (1, 1, 3)  # a valid image...
    with pytest.raises(ImageReadError, match=r"dot.png: image 1x1 is smaller than the scale factor 2"):
        ImageFolderDataset(tmp_path, 2)[0]  # ...but no HR/LR pair at x2


def test_image_smaller_than_the_patch_through_a_real_folder(tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    Image.fromarray(noise(64, 64)).save(folder / "large.png")
    Image.fromarray(noise(20, 30)).save(folder / "small.png")
    with pytest.raises(ImageReadError, match=r"small.png: image 30x20 is smaller than the 32x32 training patch"):
        PatchSampler(ImageFolderDataset(folder, 2), patch_size=32, batch_size=2)
    with pytest.warns(SkippedImageWarning, match="small.png"):
        sampler = PatchSampler(ImageFolderDataset(folder, 2, skip_bad=True), patch_size=32, batch_size=2)
    assert sampler.names == ["large"]
    lr, hr = sampler.next_batch()
    assert lr.shape == (2, 3, 16, 16) and hr.shape == (2, 3, 32, 32)


def test_cli_evaluate_image_too_small_for_ssim_is_one_line(tmp_path):
    folder = _folder_with(tmp_path, "tiny.png", lambda path: Image.fromarray(noise(10, 10)).save(path))
    status, _out, err = _evaluate(folder)
    assert status == 2 and err.count("\n") == 1 and "tiny" in err and "too small to score" in err, err


def test_cli_skip_bad_leaves_out_an_image_too_small_to_score(tmp_path):
    folder = _folder_with(tmp_path, "tiny.png", lambda path: Image.fromarray(noise(10, 10)).save(path))
    Image.fromarray(noise(40, 48)).save(folder / "fine.png")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.warns(SkippedImageWarning, match="tiny.*too small to score"):
        status = main(["evaluate", "--model", "bicubic", "--data", str(folder), "--scale", "2", "--skip-bad",
                       "--json"])
    assert status == 0
    assert "tiny" not in [image["name"] for image in json.loads(out.getvalue())["images"]]


def test_cli_prints_our_warnings_as_one_line_and_leaves_others_alone():
    from srnas_nni.cli import _one_line_warnings

    with _one_line_warnings():
        ours = warnings.formatwarning(SkippedImageWarning("a.png: skipped"), SkippedImageWarning, "data.py", 9)
        theirs = warnings.formatwarning(UserWarning("x"), UserWarning, "lib.py", 3)
    assert ours == "srnas: warning: a.png: skipped\n"
    assert theirs.startswith("lib.py:3: UserWarning: x")
    assert warnings.formatwarning(UserWarning("y"), SkippedImageWarning, "f.py", 1).startswith("f.py:1:")
