"""Smoke tests of benchmarks/fidelity.py and benchmarks/throughput.py on tiny settings (no timing asserted).

Each script is loaded from its file and its ``main(argv)`` run in-process with tiny arguments and
``--output`` in a temporary folder; the tests check the JSON rows and the figures that must hold
whatever the machine (values equal to the library's own, published figures carried through).
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from .conftest import REPO_ROOT, shared_data_root

BENCHMARKS = REPO_ROOT / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fidelity():
    return load("fidelity")


@pytest.fixture(scope="module")
def throughput():
    return load("throughput")


def test_published_table_is_parsed(fidelity):
    text = ("intro\n\n| set | x2 | x3 | x4 |\n|---|---|---|---|\n| Set5 | 33.66 / 0.9299 | 30.39 / 0.8682 | - |\n"
            "\n| other | table |\n|---|---|\n| a | 1 / 2 |\n")
    assert fidelity.parse_published_table(text) == {("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682)}


def test_printed_unit(fidelity):
    assert fidelity.printed_unit(57_000) == 1000
    assert fidelity.printed_unit(52_700_000_000) == 1e8
    assert fidelity.printed_unit(1_713_000) == 1000


def test_fidelity_tiny(fidelity, image_folder, tmp_path):
    from srnas_nni.baselines import PUBLISHED_X2, bicubic
    from srnas_nni.evaluation.data import open_dataset
    from srnas_nni.evaluation.validation import validate
    from srnas_nni.spaces.presets import presets

    data = image_folder.parent  # holds the one set "images"
    (data / "README.md").write_text("| set | x2 | x3 |\n|---|---|---|\n| images | 30.00 / 0.9000 | - |\n")
    out = tmp_path / "results"
    payload = fidelity.main([
        "--data", str(data), "--scales", "2", "3", "--models", "bicubic,fsrcnn", "--steps", "2",
        "--batch-size", "2", "--patch-size", "16", "--train-data", str(image_folder), "--val-sets", "images",
        "--device", "cpu", "--output", str(out),
    ])
    assert json.loads((out / "fidelity.json").read_text())["sections"].keys() == {"metrics", "cost", "trained"}
    assert (out / "fidelity_trained.png").stat().st_size > 0

    metrics = {(r["set"], r["scale"]): r for r in payload["sections"]["metrics"]["rows"]}
    assert set(metrics) == {("images", 2), ("images", 3)}
    want = validate(bicubic(2), open_dataset(image_folder, 2, split="val"))
    assert metrics[("images", 2)]["psnr"] == pytest.approx(want.psnr)
    assert metrics[("images", 2)]["diff_psnr"] == pytest.approx(want.psnr - 30.0)
    assert metrics[("images", 3)]["published_psnr"] is None and metrics[("images", 3)]["agrees"] is None

    cost = {(r["model"], r["scale"]): r for r in payload["sections"]["cost"]["rows"]}
    for name, figures in PUBLISHED_X2.items():
        assert cost[(name, 2)]["params_vs_published"]["published"] == figures.params
        assert cost[(name, 2)]["multadds_vs_published"]["published"] == figures.multadds
    for name, preset in presets().items():
        for scale in preset.published:
            assert (name, scale) in cost
    assert cost[("fsrcnn", 2)]["params_compared"] == 12_464  # weights only, as FSRCNN's 12K counts them
    assert cost[("fsrcnn", 2)]["params"] == 12_809
    assert cost[("srcnn", 2)]["params_vs_published"]["rel_error"] == pytest.approx(57_281 / 57_000 - 1)
    assert cost[("dlsr", 4)]["multadds_vs_published"]["agrees"] is True

    trained = {r["model"]: r for r in payload["sections"]["trained"]["rows"]}
    assert set(trained) == {"bicubic", "fsrcnn"}
    assert trained["bicubic"]["steps"] == 0 and trained["fsrcnn"]["steps"] == 2
    assert trained["bicubic"]["scores"]["images"]["psnr"] == pytest.approx(want.psnr)
    assert math.isfinite(trained["fsrcnn"]["scores"]["images"]["psnr"])


def test_fidelity_leaves_out_heavy_models(fidelity, image_folder, tmp_path):
    payload = fidelity.main([
        "--sections", "trained", "--models", "bicubic,vdsr", "--max-gmacs", "100", "--steps", "1",
        "--batch-size", "1", "--patch-size", "16", "--train-data", str(image_folder),
        "--data", str(image_folder), "--device", "cpu", "--output", str(tmp_path),
    ])
    trained = payload["sections"]["trained"]
    assert [r["model"] for r in trained["rows"]] == ["bicubic"]
    assert trained["settings"]["left_out"] == ["vdsr"]


@pytest.mark.shared_data
def test_fidelity_metrics_on_shared_set5(fidelity, tmp_path):
    data = shared_data_root() / "benchmark"
    if not (data / "Set5").is_dir() or not (shared_data_root() / "README.md").is_file():
        pytest.skip(f"shared benchmark data not found at {data}")
    payload = fidelity.main(["--sections", "metrics", "--data", str(data), "--scales", "2",
                             "--device", "cpu", "--output", str(tmp_path)])
    rows = {(r["set"], r["scale"]): r for r in payload["sections"]["metrics"]["rows"]}
    assert rows[("Set5", 2)]["published_psnr"] == 33.66  # read from the table file
    assert rows[("Set5", 2)]["agrees"] is True


def test_throughput_tiny(throughput, tmp_path):
    payload = throughput.main(["--spaces", "dlsr", "--samples", "3", "--images", "2", "--size", "40",
                               "--repeats", "1", "--device", "cpu", "--output", str(tmp_path)])
    saved = json.loads((tmp_path / "throughput.json").read_text())
    assert (tmp_path / "throughput_metrics.png").stat().st_size > 0
    assert [r["space"] for r in saved["cost"]["rows"]] == ["dlsr"]
    assert saved["cost"]["rows"][0]["samples"] == 3
    rows = payload["metrics"]["rows"]
    assert len(rows) == 4 and all(r["mp_per_s"] > 0 for r in rows)
    for row in rows:  # every implementation computes the same metrics as the straightforward reference
        assert row["max_abs_diff_psnr"] < 1e-3 and row["max_abs_diff_ssim"] < 1e-5
    assert isinstance(saved["metrics"]["target_met"], bool) and isinstance(saved["cost"]["target_met"], bool)


def test_reference_ssim_of_identical_images_is_one(throughput):
    import numpy as np

    image = np.random.default_rng(0).uniform(0, 255, (32, 32))
    assert throughput.ref_ssim_convolve2d(image, image) == pytest.approx(1.0)
    assert throughput.ref_ssim_separable(image, image) == pytest.approx(1.0)
