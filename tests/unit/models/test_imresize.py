"""The vectorised torch ``imresize`` against its per-pixel reference and MATLAB's semantics."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from srnas_nni.models.imresize import imresize, imresize_reference, output_size

SCALES = [Fraction(1, 2), Fraction(1, 3), Fraction(1, 4), 2, 3, 4, Fraction(7, 10), Fraction(3, 2)]
SHAPES = [(17, 23), (17, 23, 3)]


def _expected_hw(shape: tuple[int, ...], scale) -> tuple[int, int]:
    return math.ceil(shape[0] * Fraction(scale)), math.ceil(shape[1] * Fraction(scale))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", SCALES, ids=str)
def test_float_matches_reference(shape, scale):
    rng = np.random.default_rng([*shape, int(Fraction(scale) * 100)])
    image = rng.random(shape)
    fast = imresize(image, float(scale))
    slow = imresize_reference(image, float(scale))
    assert fast.dtype == np.float64
    assert fast.shape == slow.shape == _expected_hw(shape, scale) + shape[2:]
    # Same arithmetic, different summation order: agreement to float64 noise.
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES + [(32, 41, 3)])
@pytest.mark.parametrize("scale", SCALES, ids=str)
def test_uint8_matches_reference_exactly(shape, scale):
    rng = np.random.default_rng([*shape, int(Fraction(scale) * 100), 8])
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    fast = imresize(image, float(scale))
    slow = imresize_reference(image, float(scale))
    assert fast.dtype == np.uint8
    # Rounding could in principle split a value within float noise of .5; on these inputs (and
    # on every case tried while writing this test) the two never differ.
    np.testing.assert_array_equal(fast, slow)


def test_output_size_is_immune_to_float_noise():
    assert math.ceil(50 * 1.1) == 56  # 55.00000000000001: a naive ceil is one too many
    assert output_size(50, 1.1) == 55
    assert output_size(255, 1 / 3) == 85
    assert imresize(np.zeros((255, 12), np.uint8), 1 / 3).shape == (85, 4)
    scales = [Fraction(1, 2), Fraction(1, 3), Fraction(1, 4), Fraction(7, 10), Fraction(11, 10), 3, 4]
    for n in range(1, 400):
        for scale in scales:
            assert output_size(n, float(scale)) == math.ceil(n * Fraction(scale)), (n, scale)


def test_output_shape_and_per_dimension_scale():
    rng = np.random.default_rng(1)
    image = rng.random((17, 23, 3))
    by_shape = imresize(image, output_shape=(10, 31))
    assert by_shape.shape == (10, 31, 3)
    np.testing.assert_allclose(by_shape, imresize_reference(image, output_shape=(10, 31)), atol=1e-12)
    per_dim = imresize(image, (0.5, 2.0))
    assert per_dim.shape == (9, 46, 3)
    np.testing.assert_allclose(per_dim, imresize_reference(image, (0.5, 2.0)), atol=1e-12)
    # Each dimension gets its own scale: the same as resizing one dimension at a time.
    np.testing.assert_allclose(per_dim, imresize(imresize(image, (0.5, 1.0)), (1.0, 2.0)), atol=1e-12)
    with pytest.raises(ValueError):
        imresize(image, 0.5, output_shape=(8, 8))
    with pytest.raises(ValueError):
        imresize(image)


@pytest.mark.parametrize("scale", SCALES, ids=str)
def test_constant_image_stays_constant(scale):
    # Weights are normalised, borders mirrored: a constant is reproduced everywhere, edges included.
    flat = np.full((17, 23, 3), 0.37)
    np.testing.assert_allclose(imresize(flat, float(scale)), 0.37, rtol=0, atol=1e-12)
    gray = np.full((17, 23), 200, np.uint8)
    out = imresize(gray, float(scale))
    assert out.dtype == np.uint8
    assert (out == 200).all()


def test_dtypes_are_preserved():
    rng = np.random.default_rng(2)
    u8 = rng.integers(0, 256, (12, 14, 3), dtype=np.uint8)
    assert imresize(u8, 2).dtype == np.uint8
    assert imresize(torch.from_numpy(u8).permute(2, 0, 1), 0.5).dtype == torch.uint8
    assert imresize(u8.astype(np.float32), 2).dtype == np.float32
    assert imresize(torch.rand(1, 3, 12, 14), 2).dtype == torch.float32


def test_uint8_results_are_rounded_and_clipped():
    # A hard step overshoots with the cubic kernel: the float result leaves [0, 255].
    step = np.zeros((16, 16), np.uint8)
    step[:, 8:] = 255
    exact = imresize(step.astype(np.float64), 3)
    assert exact.min() < -1 and exact.max() > 256
    out = imresize(step, 3)
    assert np.abs(out - np.clip(exact, 0, 255)).max() <= 0.5


def test_batched_tensor_equals_per_image():
    rng = np.random.default_rng(3)
    images = [rng.random((17, 23, 3)) for _ in range(3)]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)  # N x C x H x W
    for scale in (0.5, 1 / 3, 3, 0.7):
        out = imresize(batch, scale)
        assert out.shape[:2] == (3, 3)
        for i, image in enumerate(images):
            np.testing.assert_allclose(
                out[i].permute(1, 2, 0).numpy(), imresize(image, scale), rtol=0, atol=1e-14
            )


def test_antialias_only_matters_when_shrinking():
    rng = np.random.default_rng(4)
    image = rng.random((17, 23))
    assert not np.allclose(imresize(image, 0.5, antialias=True), imresize(image, 0.5, antialias=False))
    np.testing.assert_allclose(
        imresize(image, 0.5, antialias=False), imresize_reference(image, 0.5, antialias=False), atol=1e-12
    )
    for scale in (1.5, 2, 3):
        np.testing.assert_array_equal(
            imresize(image, scale, antialias=True), imresize(image, scale, antialias=False)
        )


def _ramp(n: int, m: int) -> np.ndarray:
    return np.tile(np.arange(m, dtype=np.float64), (n, 1))  # column j holds the value j


def test_ramp_downscaled_by_two_averages_pairs():
    # MATLAB puts output pixel j (0-based) at input position 2j + 0.5 when halving. The widened
    # cubic is symmetric about it and its weights sum to 1, so on linear data the result is the
    # ramp's value there: the mean of columns 2j and 2j + 1, wherever no mirroring is involved.
    n = 40
    ramp = _ramp(12, n)
    out = imresize(ramp, 0.5)
    assert out.shape == (6, n // 2)
    pair_means = (ramp[:6, 0::2] + ramp[:6, 1::2]) / 2
    interior = slice(2, n // 2 - 2)  # the 8-pixel-wide kernel stays inside [0, n - 1]
    np.testing.assert_allclose(out[:, interior], pair_means[:, interior], rtol=0, atol=1e-12)
    # Same along rows, and near the borders mirroring makes the values differ.
    np.testing.assert_allclose(imresize(ramp.T, 0.5).T, out, rtol=0, atol=1e-12)
    assert not np.isclose(out[0, 0], 0.5)


@pytest.mark.parametrize("scale", [Fraction(1, 3), Fraction(1, 4), 2, 3, 4])
def test_ramp_is_reproduced_at_matlab_pixel_centres(scale):
    # Output pixel j sits at input position (j + 0.5) / scale - 0.5; cubic resampling reproduces
    # linear functions, so interior outputs equal that position on a 0..n-1 ramp.
    n = 48
    out = imresize(_ramp(4, n), float(scale))
    positions = np.array([float((j + Fraction(1, 2)) / scale - Fraction(1, 2)) for j in range(out.shape[1])])
    reach = 2 / min(float(scale), 1.0)  # kernel half-width in input pixels
    interior = (positions - reach >= 0) & (positions + reach <= n - 1)
    assert interior.sum() > out.shape[1] // 2
    expected = np.broadcast_to(positions[interior], out[:, interior].shape)
    np.testing.assert_allclose(out[:, interior], expected, rtol=0, atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(5)
    floats = torch.from_numpy(rng.random((2, 3, 17, 23)))
    bytes_ = torch.from_numpy(rng.integers(0, 256, (2, 3, 17, 23), dtype=np.uint8))
    for scale in (0.5, 1 / 3, 2, 3, 0.7):
        on_gpu = imresize(floats.cuda(), scale)
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), imresize(floats, scale), rtol=0, atol=1e-12)
        assert torch.equal(imresize(bytes_.cuda(), scale).cpu(), imresize(bytes_, scale))
