"""Acceptance on ``../shared/data`` (skipped when it is absent): MATLAB bicubic on Set5 and Set14 reproduces
the published bicubic baseline, through the metrics directly and through ``srnas evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srnas_nni.evaluation.metrics import psnr, ssim
from srnas_nni.models.imresize import imresize

from tests.support.cli import run
from tests.support.repo import shared_data_root


# Published bicubic PSNR/SSIM (../shared/data/README.md).
PUBLISHED_BICUBIC = {
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
}


def _benchmark_root() -> Path:
    return shared_data_root() / "benchmark"


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        # Grayscale originals (Set14 bridge.png) stay single channel, as in the published tables.
        return np.array(image if image.mode == "L" else image.convert("RGB"))


@pytest.mark.shared_data
@pytest.mark.parametrize("dataset", ["Set5", "Set14"])
def test_bicubic_baseline_matches_published_table(dataset):
    folder = _benchmark_root() / dataset
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not files:
        pytest.skip(f"{folder} not found or empty (set SRNAS_SHARED_DATA to the shared data folder)")
    images = [_load(f) for f in files]
    for scale in (2, 3, 4):
        psnrs, ssims = [], []
        for image in images:
            h, w = image.shape[:2]
            hr = image[: h - h % scale, : w - w % scale]
            sr = imresize(imresize(hr, 1 / scale), scale)
            assert sr.dtype == np.uint8 and sr.shape == hr.shape
            psnrs.append(psnr(sr, hr, crop=scale))
            ssims.append(ssim(sr, hr, crop=scale))
        want_psnr, want_ssim = PUBLISHED_BICUBIC[(dataset, scale)]
        assert np.mean(psnrs) == pytest.approx(want_psnr, abs=0.03), f"{dataset} x{scale} PSNR"
        assert np.mean(ssims) == pytest.approx(want_ssim, abs=0.002), f"{dataset} x{scale} SSIM"


@pytest.mark.shared_data
@pytest.mark.parametrize("name, scale", sorted(PUBLISHED_BICUBIC))
def test_bicubic_reproduces_the_published_table(capsys, shared_benchmark, name, scale):
    code, out, _ = run(capsys, "evaluate", "--model", "bicubic", "--data", str(shared_benchmark / name),
                       "--scale", str(scale), "--json")
    assert code == 0
    result = json.loads(out)
    psnr, ssim = PUBLISHED_BICUBIC[(name, scale)]
    assert abs(result["psnr"] - psnr) <= 0.03
    assert abs(result["ssim"] - ssim) <= 0.002
    assert result["scale"] == scale and result["crop"] == scale
    assert len(result["images"]) == len(list((shared_benchmark / name).glob("*.png")))
    assert result["psnr"] == pytest.approx(np.mean([image["psnr"] for image in result["images"]]))
