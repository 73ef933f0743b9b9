"""PSNR/SSIM against an independent numpy/scipy transcription of the MATLAB evaluation code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.signal import convolve2d

from srnas_nni.evaluation.metrics import psnr, rgb_to_y, sr_metrics, ssim

# --------------------------------------------------------------------------------------------
# Reference: the MATLAB scripts written out with numpy/scipy, sharing no code with the library.


def ref_y(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., c].astype(np.int64) for c in range(3))
    # Integer numerator divided once: exact, so x.5 values round up (MATLAB) without float noise.
    return np.floor(16.5 + (65481 * r + 128553 * g + 24966 * b) / 255000)


def ref_gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)


def ref_planes(sr: np.ndarray, hr: np.ndarray, crop: int, y_channel: bool):
    """Both images as lists of float64 planes, after the gray rule, Y conversion and cropping."""
    if hr.ndim == 2 and sr.ndim == 3:
        sr = ref_gray(sr)
    if y_channel and sr.ndim == 3 and sr.shape[2] == 3:
        sr, hr = ref_y(sr), ref_y(hr)
    sr, hr = sr.astype(np.float64), hr.astype(np.float64)
    if sr.ndim == 2:
        sr, hr = sr[:, :, None], hr[:, :, None]
    h, w = sr.shape[:2]
    sr, hr = sr[crop : h - crop, crop : w - crop], hr[crop : h - crop, crop : w - crop]
    return [sr[:, :, c] for c in range(sr.shape[2])], [hr[:, :, c] for c in range(hr.shape[2])]


def ref_psnr(sr, hr, crop=0, y_channel=True):
    a, b = ref_planes(sr, hr, crop, y_channel)
    mse = np.mean((np.stack(a) - np.stack(b)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def ref_ssim_plane(img1: np.ndarray, img2: np.ndarray) -> float:
    # ssim_index.m: fspecial('gaussian', 11, 1.5), filter2(..., 'valid'), mean2 of the map.
    ax = np.arange(-5, 6, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    window = np.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
    window /= window.sum()

    def filter2(img):
        return convolve2d(img, np.rot90(window, 2), mode="valid")

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filter2(img1), filter2(img2)
    sigma1_sq = filter2(img1 * img1) - mu1 * mu1
    sigma2_sq = filter2(img2 * img2) - mu2 * mu2
    sigma12 = filter2(img1 * img2) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * sigma12 + c2)) / (
        (mu1 * mu1 + mu2 * mu2 + c1) * (sigma1_sq + sigma2_sq + c2)
    )
    return float(ssim_map.mean())


def ref_ssim(sr, hr, crop=0, y_channel=True):
    a, b = ref_planes(sr, hr, crop, y_channel)
    return float(np.mean([ref_ssim_plane(p, q) for p, q in zip(a, b)]))


def noisy_pair(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 12.0):
    """A smooth-ish HR image and a noisy SR version of it, both uint8."""
    hr = rng.integers(0, 256, shape).astype(np.float64)
    hr = (hr + np.roll(hr, 1, axis=0) + np.roll(hr, 1, axis=1)) / 3
    sr = hr + rng.normal(0, sigma, shape)
    return np.clip(np.round(sr), 0, 255).astype(np.uint8), np.round(hr).astype(np.uint8)


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 HxWxC images -> float32 NCHW tensor in [0, 1]."""
    stacked = np.stack([im if im.ndim == 3 else im[:, :, None] for im in images])
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).float() / 255


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(24, 31), (24, 31, 3), (40, 40, 3), (33, 50, 1)])
@pytest.mark.parametrize("crop", [0, 2, 3, 4])
@pytest.mark.parametrize("y_channel", [True, False])
def test_matches_reference(shape, crop, y_channel):
    rng = np.random.default_rng([*shape, crop, int(y_channel)])
    sr, hr = noisy_pair(rng, shape)
    assert psnr(sr, hr, crop=crop, y_channel=y_channel) == pytest.approx(
        ref_psnr(sr, hr, crop, y_channel), abs=1e-10
    )
    assert ssim(sr, hr, crop=crop, y_channel=y_channel) == pytest.approx(
        ref_ssim(sr, hr, crop, y_channel), abs=1e-8
    )


@pytest.mark.parametrize("channels", [1, 3])
def test_batched_tensor_equals_per_image_numpy(channels):
    rng = np.random.default_rng(7)
    shape = (29, 36, channels) if channels == 3 else (29, 36)
    pairs = [noisy_pair(rng, shape, sigma) for sigma in (3.0, 10.0, 25.0, 40.0)]
    srs, hrs = [p[0] for p in pairs], [p[1] for p in pairs]
    sr_t, hr_t = to_batch(srs), to_batch(hrs)
    for metric in (psnr, ssim):
        for y_channel in (True, False):
            looped = np.array([metric(s, h, crop=3, y_channel=y_channel) for s, h in zip(srs, hrs)])
            batched = metric(sr_t, hr_t, crop=3, y_channel=y_channel, reduction="none")
            assert isinstance(batched, torch.Tensor) and batched.dtype == torch.float64
            np.testing.assert_allclose(batched.numpy(), looped, rtol=0, atol=1e-12)
            # "mean" averages per-image values, not one value over the pooled pixels.
            assert metric(sr_t, hr_t, crop=3, y_channel=y_channel) == pytest.approx(looped.mean(), abs=1e-12)
    report = sr_metrics(sr_t, hr_t, crop=3)
    assert report["psnr"] == pytest.approx(np.mean([psnr(s, h, crop=3) for s, h in zip(srs, hrs)]), abs=1e-12)
    assert report["ssim"] == pytest.approx(np.mean([ssim(s, h, crop=3) for s, h in zip(srs, hrs)]), abs=1e-12)


def test_numpy_reduction_none_is_one_element_array():
    sr, hr = noisy_pair(np.random.default_rng(1), (20, 20, 3))
    values = psnr(sr, hr, reduction="none")
    assert isinstance(values, np.ndarray) and values.shape == (1,) and values.dtype == np.float64
    assert values[0] == pytest.approx(psnr(sr, hr), abs=0)
    with pytest.raises(ValueError, match="reduction"):
        psnr(sr, hr, reduction="sum")


@pytest.mark.parametrize("shape", [(20, 20), (20, 20, 3)])
def test_identical_images(shape):
    _, hr = noisy_pair(np.random.default_rng(2), shape)
    assert psnr(hr, hr) == math.inf
    assert psnr(hr, hr, y_channel=False) == math.inf
    assert ssim(hr, hr) == pytest.approx(1.0, abs=1e-12)
    batch = to_batch([hr, hr])
    assert torch.isinf(psnr(batch, batch, reduction="none")).all()
    assert ssim(batch, batch) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("shape", [(16, 21), (16, 21, 3)])
def test_offset_by_one_gives_known_psnr(shape):
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 255, shape, dtype=np.uint8)  # at most 254: +1 never clips
    sr = hr + np.uint8(1)
    # MSE is exactly 1 on the gray path and over RGB channels.
    assert psnr(sr, hr, y_channel=False) == pytest.approx(10 * math.log10(255**2), abs=1e-12)
    if len(shape) == 2:
        assert psnr(sr, hr) == pytest.approx(10 * math.log10(255**2), abs=1e-12)


def test_y_of_known_colours():
    colours = {
        (255, 255, 255): 235,
        (0, 0, 0): 16,
        (255, 0, 0): 81,  # 16 + 65.481 = 81.481
        (0, 255, 0): 145,  # 16 + 128.553 = 144.553
        (0, 0, 255): 41,  # 16 + 24.966 = 40.966
        (0, 204, 68): 126,  # exactly 125.5: halves round up, as MATLAB
    }
    image = np.array([list(colours)], dtype=np.uint8)  # 1 x 6 x 3
    expected = np.array([list(colours.values())], dtype=np.float64)
    y = rgb_to_y(image)
    assert y.dtype == np.float64 and y.shape == (1, 6)
    np.testing.assert_array_equal(y, expected)
    y_t = rgb_to_y(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    assert y_t.shape == (1, 1, 1, 6) and y_t.dtype == torch.float64
    np.testing.assert_array_equal(y_t[0, 0].numpy(), expected)


def test_rgb_to_y_matches_reference_on_all_rounding_cases():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rgb_to_y(image), ref_y(image))
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_y(image[:, :, :1])


def test_float_input_is_quantised_by_rounding():
    hr = torch.full((1, 1, 16, 16), 100 / 255)
    below = torch.full_like(hr, (100.5 - 0.25) / 255)  # rounds to 100
    above = torch.full_like(hr, (100.5 + 0.25) / 255)  # rounds to 101
    assert psnr(below, hr) == math.inf
    assert psnr(above, hr) == pytest.approx(10 * math.log10(255**2), abs=1e-12)
    assert ssim(below, hr) == pytest.approx(1.0, abs=1e-12)
    assert ssim(above, hr) < 1.0
    # Out-of-range values are clipped to [0, 255] before measuring.
    assert psnr(torch.full_like(hr, -0.3), torch.zeros_like(hr)) == math.inf
    assert psnr(torch.full_like(hr, 1.4), torch.ones_like(hr)) == math.inf
    # A diverged model's NaNs come out as NaN (on the Y path too), not as a plausible number.
    nan_batch = torch.full((1, 3, 16, 16), math.nan)
    assert math.isnan(psnr(nan_batch, torch.zeros(1, 3, 16, 16)))
    assert math.isnan(ssim(nan_batch, torch.zeros(1, 3, 16, 16)))


def test_gray_hr_with_rgb_sr_uses_pil_luma():
    rng = np.random.default_rng(5)
    sr_rgb, hr_rgb = noisy_pair(rng, (30, 30, 3))
    hr_gray = ref_gray(hr_rgb).astype(np.uint8)
    # An RGB SR of a gray HR made with PIL is measured exactly like its PIL gray version.
    assert psnr(hr_rgb, hr_gray) == math.inf
    assert psnr(sr_rgb, hr_gray, crop=2) == pytest.approx(ref_psnr(sr_rgb, hr_gray, 2), abs=1e-10)
    assert ssim(sr_rgb, hr_gray, crop=2) == pytest.approx(ref_ssim(sr_rgb, hr_gray, 2), abs=1e-8)
    # psnr_rgb equals psnr for 1-channel references.
    report = sr_metrics(sr_rgb, hr_gray, crop=2)
    assert report["psnr_rgb"] == report["psnr"]
    # Tensors: 1-channel HR batch with a 3-channel SR batch.
    batch = psnr(to_batch([sr_rgb]), to_batch([hr_gray]), crop=2)
    assert batch == pytest.approx(psnr(sr_rgb, hr_gray, crop=2), abs=1e-12)


def test_shape_mismatch_names_both_shapes():
    a = np.zeros((20, 20, 3), np.uint8)
    b = np.zeros((20, 21, 3), np.uint8)
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=r"\(20, 20, 3\).*\(20, 21, 3\)"):
            metric(a, b)
    # The gray rule goes one way only: a gray SR cannot be compared with an RGB HR.
    with pytest.raises(ValueError, match=r"\(20, 20\).*\(20, 20, 3\)"):
        psnr(a[:, :, 0], a)
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\).*\(3, 3, 8, 8\)"):
        psnr(torch.zeros(2, 3, 8, 8), torch.zeros(3, 3, 8, 8))


def test_crop_and_window_limits():
    a = np.zeros((16, 30, 3), np.uint8)
    with pytest.raises(ValueError, match=r"crop=8.*\(16, 30, 3\)"):
        psnr(a, a, crop=8)
    assert psnr(a, a, crop=7) == math.inf  # a 2x16 strip remains
    with pytest.raises(ValueError, match="11x11"):
        ssim(a, a, crop=3)  # 10x24 left
    with pytest.raises(ValueError, match="crop"):
        psnr(a, a, crop=-1)


def test_y_channel_flag_is_honoured():
    rng = np.random.default_rng(6)
    hr = rng.integers(30, 220, (24, 24, 3)).astype(np.int64)
    sr = hr.copy()
    sr[:, :, 0] += 20  # only red changes: Y moves by about 20 * 65.481 / 255
    sr, hr = sr.astype(np.uint8), hr.astype(np.uint8)
    y_value, rgb_value = psnr(sr, hr), psnr(sr, hr, y_channel=False)
    assert y_value == pytest.approx(ref_psnr(sr, hr, 0, True), abs=1e-10)
    assert rgb_value == pytest.approx(10 * math.log10(255**2 / (20**2 / 3)), abs=1e-10)
    assert abs(y_value - rgb_value) > 1.0
    report = sr_metrics(sr, hr, crop=2)
    assert report == {
        "psnr": psnr(sr, hr, crop=2),
        "ssim": ssim(sr, hr, crop=2),
        "psnr_rgb": psnr(sr, hr, crop=2, y_channel=False),
        "crop": 2,
    }


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(8)
    pairs = [noisy_pair(rng, (40, 44, 3)) for _ in range(3)]
    sr, hr = to_batch([p[0] for p in pairs]), to_batch([p[1] for p in pairs])
    for metric in (psnr, ssim):
        on_gpu = metric(sr.cuda(), hr.cuda(), crop=4, reduction="none")
        assert on_gpu.device.type == "cuda"
        np.testing.assert_allclose(
            on_gpu.cpu().numpy(), metric(sr, hr, crop=4, reduction="none").numpy(), rtol=0, atol=1e-10
        )
