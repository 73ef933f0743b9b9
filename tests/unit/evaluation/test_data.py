"""Data sets (folder, DIV2K, builtin), their caches, and the training patch sampler."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import srnas_nni.evaluation.data as data_module
from srnas_nni.errors import DatasetError, ImageReadError
from srnas_nni.evaluation.data import (
    BUILTIN_TRAIN_NAMES,
    BUILTIN_VAL_NAMES,
    DIV2KDataset,
    ImageFolderDataset,
    PatchSampler,
    SkippedImageWarning,
    SRPair,
    builtin_dataset,
    modcrop,
    open_dataset,
    validation_batches,
)
from srnas_nni.evaluation.images import read_image
from srnas_nni.models.imresize import imresize


def noise(height: int, width: int, channels: int | None = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width) if channels is None else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    """Three HR images: two colour and one gray, none a multiple of 3 in size."""
    root = tmp_path / "hr"
    save(root / "b10.png", noise(50, 37, seed=1))
    save(root / "b2.png", noise(31, 44, seed=2))
    save(root / "gray.png", noise(29, 40, None, seed=3))
    return root


class CountingReader:
    """Stands in for ``read_image`` inside the data module and counts calls."""

    def __init__(self, real):
        self.real = real
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        return self.real(path)


# -- modcrop and folder data sets ------------------------------------------------------------


def test_modcrop_keeps_top_left_multiple_of_scale():
    image = noise(10, 7)
    cropped = modcrop(image, 3)
    assert cropped.shape == (9, 6, 3)
    np.testing.assert_array_equal(cropped, image[:9, :6])
    assert modcrop(noise(8, 8, None), 4).shape == (8, 8)
    with pytest.raises(ValueError):
        modcrop(image, 0)


def test_folder_dataset_lr_is_matlab_bicubic_of_modcropped_hr(folder):
    dataset = ImageFolderDataset(folder, 3)
    assert dataset.names == ["b2", "b10", "gray"]  # natural order
    assert dataset.scale == 3 and len(dataset) == 3
    for pair, source in zip(dataset, [folder / "b2.png", folder / "b10.png", folder / "gray.png"]):
        stored = np.asarray(Image.open(source))
        expected_hr = modcrop(stored, 3)
        np.testing.assert_array_equal(pair.hr, expected_hr)
        np.testing.assert_array_equal(pair.lr, imresize(np.ascontiguousarray(expected_hr), 1 / 3))
        assert pair.lr.dtype == np.uint8 and pair.path == str(source)
        assert pair.hr.shape[:2] == (pair.lr.shape[0] * 3, pair.lr.shape[1] * 3)
    assert dataset[2].hr.ndim == 2 and dataset[2].lr.ndim == 2  # gray stays gray
    assert dataset[-1].name == "gray"
    with pytest.raises(IndexError):
        dataset[3]


def test_memory_cache_reads_each_file_once(folder, monkeypatch):
    reader = CountingReader(data_module.read_image)
    monkeypatch.setattr(data_module, "read_image", reader)
    cached = ImageFolderDataset(folder, 2)
    first = cached[0]
    assert cached[0] is first and reader.calls == 1
    uncached = ImageFolderDataset(folder, 2, cache=False)
    for _ in range(2):
        assert uncached[0].name == "b2"
    assert reader.calls == 3


def test_disk_cache_is_reused_by_a_new_dataset_and_invalidated_by_edits(folder, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    original = ImageFolderDataset(folder, 2, cache_dir=cache_dir)
    pairs = [original[index] for index in range(len(original))]
    assert len(list(cache_dir.glob("*.npz"))) == 3

    def must_not_read(path):
        raise AssertionError(f"{path} was decoded again")

    monkeypatch.setattr(data_module, "read_image", must_not_read)
    fresh = ImageFolderDataset(folder, 2, cache_dir=cache_dir)
    for index, pair in enumerate(pairs):
        np.testing.assert_array_equal(fresh[index].hr, pair.hr)
        np.testing.assert_array_equal(fresh[index].lr, pair.lr)

    # An edited file (new content and time stamp) is decoded again, not served from the cache.
    reader = CountingReader(read_image)
    monkeypatch.setattr(data_module, "read_image", reader)
    edited = folder / "b2.png"
    save(edited, noise(31, 44, seed=99))
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    again = ImageFolderDataset(folder, 2, cache_dir=cache_dir)
    np.testing.assert_array_equal(again[0].hr, modcrop(noise(31, 44, seed=99), 2))
    assert reader.calls == 1

    # A damaged cache file is ignored and rewritten.
    for file in cache_dir.glob("b10_*.npz"):
        file.write_bytes(b"garbage")
    np.testing.assert_array_equal(ImageFolderDataset(folder, 2, cache_dir=cache_dir)[1].lr, pairs[1].lr)
    assert reader.calls == 2


def test_unwritable_cache_dir_warns_once_and_still_works(folder, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should go")
    dataset = ImageFolderDataset(folder, 2, cache_dir=blocker)
    with pytest.warns(UserWarning, match="not_a_folder") as caught:
        pairs = [dataset[index] for index in range(len(dataset))]
    assert len(caught) == 1 and len(pairs) == 3


def test_skip_bad_skips_corrupt_files_with_a_warning(folder):
    (folder / "broken.png").write_text("not an image")
    strict = ImageFolderDataset(folder, 2)
    assert len(strict) == 4
    with pytest.raises(ImageReadError, match="broken.png"):
        [strict[index] for index in range(len(strict))]
    with pytest.warns(SkippedImageWarning, match="broken.png") as caught:
        tolerant = ImageFolderDataset(folder, 2, skip_bad=True)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert tolerant.names == ["b2", "b10", "gray"]


def test_skip_bad_with_nothing_readable_is_a_dataset_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"")
    with pytest.warns(SkippedImageWarning), pytest.raises(DatasetError, match="bad"):
        ImageFolderDataset(tmp_path / "bad", 2, skip_bad=True)


def test_empty_or_missing_folder_is_a_dataset_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        ImageFolderDataset(tmp_path / "empty", 2)
    with pytest.raises(DatasetError, match="missing"):
        open_dataset(str(tmp_path / "missing"), 2)
    save(tmp_path / "single.png", noise(8, 8))
    with pytest.raises(DatasetError, match="single.png"):
        open_dataset(tmp_path / "single.png", 2)


def test_image_smaller_than_the_scale_is_an_error(tmp_path):
    save(tmp_path / "tiny" / "dot.png", noise(1, 5))
    with pytest.raises(ImageReadError, match="dot.png"):
        ImageFolderDataset(tmp_path / "tiny", 2)[0]


def test_open_dataset_expands_user(folder, monkeypatch):
    monkeypatch.setenv("HOME", str(folder.parent))
    dataset = open_dataset("~/hr", 2)
    assert isinstance(dataset, ImageFolderDataset) and len(dataset) == 3


# -- DIV2K-style layouts ---------------------------------------------------------------------


def make_div2k(root: Path, split: str, names: list[str], scale: int = 2, hr_size: int = 24) -> None:
    for index, name in enumerate(names):
        hr = noise(hr_size, hr_size, seed=index)
        save(root / f"DIV2K_{split}_HR" / f"{name}.png", hr)
        save(root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", hr[::scale, ::scale])


def test_div2k_layout_is_detected_and_paired(tmp_path):
    make_div2k(tmp_path, "train", ["0001", "0002"])
    make_div2k(tmp_path, "valid", ["0801"])
    train = open_dataset(tmp_path, 2)
    assert isinstance(train, DIV2KDataset) and train.names == ["0001", "0002"]
    pair = train[1]
    np.testing.assert_array_equal(pair.hr, noise(24, 24, seed=1))
    np.testing.assert_array_equal(pair.lr, noise(24, 24, seed=1)[::2, ::2])  # the stored LR, not re-made
    valid = open_dataset(str(tmp_path), 2, split="val")
    assert valid.names == ["0801"] and valid[0].lr.shape == (12, 12, 3)


def test_generic_paired_layout(tmp_path):
    save(tmp_path / "Set5_HR" / "baby.png", noise(24, 24))
    save(tmp_path / "Set5_LR_bicubic" / "X2" / "baby.png", noise(12, 12))
    dataset = open_dataset(tmp_path, 2, split="val")
    assert isinstance(dataset, DIV2KDataset) and dataset.names == ["baby"]
    assert dataset[0].lr.shape == (12, 12, 3)


def test_missing_lr_file_is_named(tmp_path):
    make_div2k(tmp_path, "train", ["0001", "0002"])
    (tmp_path / "DIV2K_train_LR_bicubic" / "X2" / "0002x2.png").unlink()
    with pytest.raises(DatasetError, match="0002x2.png"):
        DIV2KDataset(tmp_path, 2)
    with pytest.warns(SkippedImageWarning, match="0002x2.png"):
        assert DIV2KDataset(tmp_path, 2, skip_bad=True).names == ["0001"]


def test_lr_size_mismatch_names_the_lr_file_and_both_sizes(tmp_path):
    make_div2k(tmp_path, "train", ["0001"])
    save(tmp_path / "DIV2K_train_LR_bicubic" / "X2" / "0001x2.png", noise(11, 12))
    dataset = DIV2KDataset(tmp_path, 2)
    with pytest.raises(ImageReadError) as caught:
        dataset[0]
    message = str(caught.value)
    assert "0001x2.png" in message and "12x11" in message and "24x24" in message


def test_missing_split_or_scale_folder(tmp_path):
    make_div2k(tmp_path, "train", ["0001"])
    with pytest.raises(DatasetError, match="DIV2K_valid_HR"):
        DIV2KDataset(tmp_path, 2, split="valid")  # never falls back to the training images
    with pytest.raises(DatasetError, match="X3"):
        DIV2KDataset(tmp_path, 3)


# -- builtin photos --------------------------------------------------------------------------


def test_builtin_split_names_and_modcropped_shapes():
    assert len(BUILTIN_TRAIN_NAMES) == 6 and set(BUILTIN_TRAIN_NAMES).isdisjoint(BUILTIN_VAL_NAMES)
    val = open_dataset("builtin:val", 3)
    assert val.names == ["chelsea", "flower"] == list(BUILTIN_VAL_NAMES)
    chelsea = val[0]
    assert chelsea.hr.shape == (300, 450, 3) and chelsea.lr.shape == (100, 150, 3)  # 451 -> 450
    assert val[1].hr.shape == (426, 639, 3)  # 427x640 photo
    assert builtin_dataset("train", 2).names == list(BUILTIN_TRAIN_NAMES)
    assert open_dataset("builtin", 2, split="train").names == list(BUILTIN_TRAIN_NAMES)


# -- patch sampler ---------------------------------------------------------------------------


class FakeDataset:
    """Pairs given directly: the minimum a sampler needs (len, getitem, scale, skip_bad)."""

    def __init__(self, pairs: list[SRPair], scale: int, skip_bad: bool = False):
        self.pairs, self.scale, self.skip_bad = pairs, scale, skip_bad

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> SRPair:
        return self.pairs[index]


def coordinate_pair(name: str, height: int, width: int, scale: int, offset: int = 0) -> SRPair:
    """HR pixels store their own (y, x, image id); the LR pixel (i, j) is the HR pixel (s*i, s*j)."""
    ys, xs = np.mgrid[0:height, 0:width]
    hr = np.stack([ys, xs, np.full_like(ys, offset)], axis=2).astype(np.uint8)
    return SRPair(name, hr, hr[::scale, ::scale].copy(), f"/data/{name}.png")


def symmetries(patch: np.ndarray) -> list[np.ndarray]:
    turns = [np.rot90(patch, k) for k in range(4)]
    return turns + [np.fliplr(turn) for turn in turns]


def locate(hr_patch: np.ndarray, lr_patch: np.ndarray, pair: SRPair, scale: int) -> int:
    """Check the patches are one aligned crop under one shared symmetry; return that symmetry."""
    side = hr_patch.shape[0]
    y0, x0 = int(hr_patch[:, :, 0].min()), int(hr_patch[:, :, 1].min())
    assert y0 % scale == 0 and x0 % scale == 0  # on the LR grid
    hr_crop = pair.hr[y0:y0 + side, x0:x0 + side]
    lr_crop = pair.lr[y0 // scale:(y0 + side) // scale, x0 // scale:(x0 + side) // scale]
    matches = [k for k, candidate in enumerate(symmetries(hr_crop)) if np.array_equal(candidate, hr_patch)]
    assert len(matches) == 1
    np.testing.assert_array_equal(symmetries(lr_crop)[matches[0]], lr_patch)
    return matches[0]


@pytest.mark.parametrize("augment", [False, True])
def test_patches_are_aligned_crops_with_the_same_transform(augment):
    scale, side = 2, 16
    pairs = [coordinate_pair("a", 40, 60, scale, offset=0), coordinate_pair("b", 36, 30, scale, offset=1)]
    sampler = PatchSampler(FakeDataset(pairs, scale), patch_size=side, batch_size=64, augment=augment, seed=3)
    lr, hr = sampler.next_batch()
    assert lr.shape == (64, 3, 8, 8) and hr.shape == (64, 3, 16, 16)
    assert lr.dtype == hr.dtype == torch.float32 and hr.is_contiguous()
    assert 0.0 <= float(hr.min()) and float(hr.max()) <= 1.0
    lr_uint8 = (lr * 255).round().byte().permute(0, 2, 3, 1).numpy()
    hr_uint8 = (hr * 255).round().byte().permute(0, 2, 3, 1).numpy()
    used = {locate(h, l, pairs[int(h[0, 0, 2])], scale) for h, l in zip(hr_uint8, lr_uint8)}
    if augment:
        assert len(used) >= 6  # most of the 8 symmetries occur in 64 draws
    else:
        assert used == {0}
    assert {int(h[0, 0, 2]) for h in hr_uint8} == {0, 1}  # both images get picked


def test_gray_images_are_replicated_to_rgb():
    gray = noise(24, 24, None)
    pair = SRPair("g", gray, gray[::2, ::2].copy(), "/data/g.png")
    lr, hr = PatchSampler(FakeDataset([pair], 2), patch_size=8, batch_size=4).next_batch()
    assert hr.shape == (4, 3, 8, 8)
    for batch in (lr, hr):
        assert torch.equal(batch[:, 0], batch[:, 1]) and torch.equal(batch[:, 0], batch[:, 2])


def test_sampler_is_deterministic_and_resumes_exactly(folder):
    dataset = ImageFolderDataset(folder, 2)

    def make(seed: int) -> PatchSampler:
        return PatchSampler(dataset, patch_size=12, batch_size=5, seed=seed)

    first, twin, other = make(7), make(7), make(8)
    batches = [first.next_batch() for _ in range(3)]
    for lr, hr in batches:
        twin_lr, twin_hr = twin.next_batch()
        assert torch.equal(lr, twin_lr) and torch.equal(hr, twin_hr)
    assert not torch.equal(other.next_batch()[1], batches[0][1])

    interrupted = make(7)
    interrupted.next_batch()
    saved = pickle.loads(pickle.dumps(interrupted.state_dict()))  # as a checkpoint would store it
    resumed = make(123)
    resumed.load_state_dict(saved)
    for lr, hr in batches[1:]:
        resumed_lr, resumed_hr = resumed.next_batch()
        assert torch.equal(lr, resumed_lr) and torch.equal(hr, resumed_hr)
    with pytest.raises(ValueError):
        PatchSampler(FakeDataset(list(dataset)[:1], 2), patch_size=12, batch_size=5).load_state_dict(saved)


def test_too_small_image_is_named_or_skipped():
    small = coordinate_pair("small", 30, 40, 2)
    large = coordinate_pair("large", 64, 64, 2)
    with pytest.raises(ImageReadError) as caught:
        PatchSampler(FakeDataset([large, small], 2), patch_size=48, batch_size=2)
    assert str(caught.value) == "/data/small.png: image 40x30 is smaller than the 48x48 training patch"
    with pytest.warns(SkippedImageWarning, match="small.png"):
        sampler = PatchSampler(FakeDataset([large, small], 2, skip_bad=True), patch_size=48, batch_size=2)
    assert sampler.names == ["large"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImageWarning)
        with pytest.raises(DatasetError, match="48x48"):
            PatchSampler(FakeDataset([small], 2, skip_bad=True), patch_size=48, batch_size=2)


def test_sampler_rejects_bad_settings():
    dataset = FakeDataset([coordinate_pair("a", 24, 24, 2)], 2)
    with pytest.raises(ValueError, match="multiple"):
        PatchSampler(dataset, patch_size=9, batch_size=2)
    with pytest.raises(ValueError, match="scale"):
        PatchSampler(dataset, patch_size=12, batch_size=2, scale=3)


# -- validation ------------------------------------------------------------------------------


def test_validation_batches_give_rgb_lr_tensors_and_stored_hr(folder):
    dataset = ImageFolderDataset(folder, 2)
    images = list(validation_batches(dataset))
    assert [image.name for image in images] == dataset.names
    for image, pair in zip(images, dataset):
        assert image.lr.shape == (1, 3, *pair.lr.shape[:2]) and image.lr.dtype == torch.float32
        assert image.hr is pair.hr and image.is_gray == (pair.hr.ndim == 2)
        rgb_lr = pair.lr if pair.lr.ndim == 3 else np.repeat(pair.lr[:, :, None], 3, axis=2)
        np.testing.assert_array_equal((image.lr[0] * 255).round().byte().permute(1, 2, 0).numpy(), rgb_lr)
