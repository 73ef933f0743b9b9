"""Failing fast on data: ``srnas validate``, ``search`` and ``worker`` open every image by its header
before anything runs (cached), name the first unusable file on one line and exit 2, or skip the
unusable files with one warning (``--skip-bad``, ``evaluator.skip_bad``); the one-line message of a
search whose every trial failed (that search itself: ``tests/integration/test_data_checks.py``)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import optuna
import pytest
from PIL import Image

from srnas_nni.cli import main
from srnas_nni.errors import DatasetError, ImageReadError
from srnas_nni.evaluation.data import SkippedImageWarning, check_images
from srnas_nni.evaluation.images import ImageHeaderCache, read_image, read_image_header

from tests.support.experiments import data_check_experiment
from tests.support.images import BAD_KINDS, image_folder_with, png_bytes, smooth_image, write_not_an_image

ROOT = Path(__file__).resolve().parents[3]


# -- files ----------------------------------------------------------------------------------------


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("srnas: error: "), captured.err
    return lines[0]


# -- refused before anything runs -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["data", "val_data"])
@pytest.mark.parametrize("bad", sorted(BAD_KINDS))
def test_validate_names_the_unusable_file_and_exits_2(tmp_path, capsys, key, bad):
    clean = image_folder_with(tmp_path, "clean")
    broken = image_folder_with(tmp_path, "broken", bad)
    folders = {"data": clean, "val_data": clean, key: broken}
    experiment = data_check_experiment(tmp_path, folders["data"], folders["val_data"])
    assert main(["validate", str(experiment)]) == 2
    line = _one_error_line(capsys)
    assert f"evaluator.{key}: {broken / bad}: " in line and BAD_KINDS[bad][1] in line
    assert "more unusable" not in line and "--skip-bad" in line


def test_the_error_counts_the_other_unusable_files(tmp_path, capsys):
    folder = image_folder_with(tmp_path, "images", "notes.png", "cut.png")
    assert main(["validate", str(data_check_experiment(tmp_path, folder, folder))]) == 2
    line = _one_error_line(capsys)
    # The first in listing order (cut before notes) in full, the other counted.
    assert f"{folder / 'cut.png'}: truncated" in line and f"1 more unusable in {folder}" in line
    assert "notes.png" not in line


def test_an_image_too_small_for_the_training_patch_is_named_like_the_sampler_does(tmp_path, capsys):
    folder = image_folder_with(tmp_path, "images")
    Image.fromarray(smooth_image(12, 40, seed=9)).save(folder / "strip.png")
    clean = image_folder_with(tmp_path, "clean")
    assert main(["validate", str(data_check_experiment(tmp_path, folder, clean))]) == 2
    line = _one_error_line(capsys)
    assert f"evaluator.data: {folder / 'strip.png'}: image 40x12 is smaller than the 16x16 training patch" in line


def test_search_stops_before_any_trial_and_writes_nothing(tmp_path, capsys):
    folder = image_folder_with(tmp_path, "images", "notes.png")
    experiment = data_check_experiment(tmp_path, folder, folder)
    assert main(["search", str(experiment), "--no-progress"]) == 2
    line = _one_error_line(capsys)
    assert str(folder / "notes.png") in line
    assert not (tmp_path / "run").exists()  # no run directory: no study, no run.json, no NNI experiment


def test_worker_stops_before_joining_the_study(tmp_path, capsys):
    folder = image_folder_with(tmp_path, "images", "cut.png")
    experiment = data_check_experiment(tmp_path, folder, folder)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    assert main(["worker", str(experiment), "--storage", storage]) == 2
    assert str(folder / "cut.png") in _one_error_line(capsys)
    assert not (tmp_path / "shared.db").exists() and not (tmp_path / "run").exists()


# -- skipped with one warning ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "config"])
def test_skip_bad_warns_once_and_the_search_runs(tmp_path, capsys, how):
    folder = image_folder_with(tmp_path, "images", "notes.png")
    experiment = data_check_experiment(tmp_path, folder, folder, **({"skip_bad": True} if how == "config" else {}))
    flag = ["--skip-bad"] if how == "flag" else []
    with pytest.warns(SkippedImageWarning) as validated:
        assert main(["validate", str(experiment), *flag]) == 0
    assert "images 4 of 5 training, 4 of 5 validation" in capsys.readouterr().out
    with pytest.warns(SkippedImageWarning) as searched:
        assert main(["search", str(experiment), "--no-progress", *flag]) == 0
    for record in (validated, searched):
        # One line for the file (data and val_data are one folder), none per trial or per data set.
        skipped = [w for w in record if issubclass(w.category, SkippedImageWarning)]
        assert len(skipped) == 1, [str(w.message) for w in skipped]
        message = str(skipped[0].message)
        assert "\n" not in message and "evaluator.data: skipping 1 of 5 images" in message
        assert str(folder / "notes.png") in message
    study = optuna.load_study(study_name="exp", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_skip_bad_with_nothing_usable_is_still_an_error(tmp_path, capsys):
    folder = tmp_path / "only_bad"
    folder.mkdir()
    write_not_an_image(folder / "notes.png")
    clean = image_folder_with(tmp_path, "clean")
    assert main(["validate", str(data_check_experiment(tmp_path, folder, clean)), "--skip-bad"]) == 2
    assert f"{folder}: none of the 1 images is usable" in _one_error_line(capsys)


# -- the header check -----------------------------------------------------------------------------


def test_the_header_check_is_cached_per_file_in_memory_and_on_disk(tmp_path, monkeypatch):
    folder = image_folder_with(tmp_path, "images", "notes.png")
    monkeypatch.setattr(ImageHeaderCache, "_memory", {})  # a fresh process
    opened: list[str] = []
    real_open = Image.open

    def counting_open(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    cache_dir = tmp_path / "cache"

    first = check_images(str(folder), 2, patch_size=16, cache_dir=cache_dir)
    assert sorted(opened) == ["img0.png", "img1.png", "img2.png", "img3.png", "notes.png"] and first.opened == 5
    again = check_images(str(folder), 2, patch_size=16, cache_dir=cache_dir)
    assert opened == opened[:5] and again.opened == 0  # nothing reopened, the failure included
    assert [str(p) for p in again.problems] == [str(p) for p in first.problems]

    stat = (folder / "img2.png").stat()
    os.utime(folder / "img2.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # an edited file
    check_images(str(folder), 2, patch_size=16, cache_dir=cache_dir)
    assert opened[5:] == ["img2.png"]

    monkeypatch.setattr(ImageHeaderCache, "_memory", {})  # another process: the disk cache answers
    assert check_images(str(folder), 2, patch_size=16, cache_dir=cache_dir).opened == 0
    assert opened[6:] == []
    # The size rules are applied to the cached header, not cached with it.
    assert len(check_images(str(folder), 2, patch_size=64, cache_dir=cache_dir).problems) == 5


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "PPM", "TIFF", "WEBP"])
def test_a_cut_file_fails_the_header_check_and_an_intact_one_reads_as_decoded(tmp_path, fmt):
    image = smooth_image(40, 56, seed=3)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt)
    data = buffer.getvalue()
    intact, cut = tmp_path / f"intact.{fmt.lower()}", tmp_path / f"cut.{fmt.lower()}"
    intact.write_bytes(data)
    cut.write_bytes(data[: len(data) * 2 // 3])
    header = read_image_header(intact)
    assert (header.height, header.width) == read_image(intact).shape[:2] == (40, 56)
    with pytest.raises(ImageReadError) as caught:
        read_image_header(cut)
    assert str(caught.value).startswith(f"{cut}: ") and "\n" not in str(caught.value)
    with pytest.raises(ImageReadError):
        read_image(cut)  # the header check refuses only what decoding would refuse


def test_files_decoding_accepts_pass_the_header_check(tmp_path):
    png = png_bytes()
    (tmp_path / "no_end.png").write_bytes(png[:-12])  # IEND missing: Pillow decodes it
    buffer = io.BytesIO()
    Image.fromarray(smooth_image(40, 56, seed=3)).save(buffer, "JPEG")
    (tmp_path / "trailing.jpg").write_bytes(buffer.getvalue() + b"appended video" * 50)
    for name in ("no_end.png", "trailing.jpg"):
        header = read_image_header(tmp_path / name)
        assert read_image(tmp_path / name).shape[:2] == (header.height, header.width)


def test_every_data_form_is_checked(tmp_path):
    builtin = check_images("builtin", 2, patch_size=16)
    assert (builtin.root, builtin.total, builtin.problems) == ("builtin:train", 6, ())
    assert check_images("builtin:val", 4, score_crop=4).total == 2
    huge = check_images("builtin:val", 2, patch_size=4096)
    assert len(huge.problems) == 2 and all("training patch" in str(p) for p in huge.problems)

    # A DIV2K-style root: a missing LR file and an LR image of the wrong size, named.
    root = tmp_path / "div2k"
    hr_folder, lr_folder = root / "DIV2K_train_HR", root / "DIV2K_train_LR_bicubic" / "X2"
    hr_folder.mkdir(parents=True)
    lr_folder.mkdir(parents=True)
    for stem in ("0001", "0002", "0003"):
        Image.fromarray(smooth_image(48, 64, seed=1)).save(hr_folder / f"{stem}.png")
    Image.fromarray(smooth_image(24, 32, seed=1)).save(lr_folder / "0001x2.png")
    Image.fromarray(smooth_image(24, 30, seed=1)).save(lr_folder / "0003x2.png")
    paired = check_images(str(root), 2)
    assert paired.total == 3 and paired.usable == 1
    assert [str(p) for p in paired.problems] == [
        f"{lr_folder / '0002x2.png'}: no such file (the x2 LR image of {hr_folder / '0002.png'})",
        f"{lr_folder / '0003x2.png'}: LR size 30x24 times 2 does not match the mod-cropped HR size 64x48 of 0003.png",
    ]

    with pytest.raises(DatasetError, match="not a folder"):
        check_images(str(hr_folder / "0001.png"), 2)  # a single file: what open_dataset refuses
    with pytest.raises(DatasetError, match="no such file or folder"):
        check_images(str(tmp_path / "nowhere"), 2)


def test_the_message_lists_distinct_reasons_briefly():
    from srnas_nni.cli.search import _all_failed

    one = _all_failed(1, {"ImageReadError: a.png: broken": 1})
    assert one == "the only trial failed: ImageReadError: a.png: broken"
    several = _all_failed(5, {"A: x": 2, "B: y": 1, "C: z": 1, "D: w": 1})
    assert several == "all 5 trials failed, for 4 reasons: A: x (2x); B: y (1x); C: z (1x); and 1 other reasons"
