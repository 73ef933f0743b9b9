"""Tiny runs of the benchmark scripts (fidelity, search_quality, search_overhead, supernet_step; no timing
asserted).

Each script is loaded from its file and its ``main(argv)`` run in-process with tiny arguments and
``--output`` in a temporary folder; the tests check the JSON rows and the figures that must hold
whatever the machine (values equal to the library's own, published figures carried through).
"""

from __future__ import annotations

import json
import math

import pytest

from tests.support.benchmarks import load_benchmark
from tests.support.repo import shared_data_root


def test_fidelity_tiny(fidelity, image_folder, tmp_path):
    from srnas_nni.models.baselines import PUBLISHED_X2, bicubic
    from srnas_nni.evaluation.data import open_dataset
    from srnas_nni.evaluation.validation import validate
    from srnas_nni.spaces.published import presets

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


def test_search_quality_tiny(search_quality, image_folder, tmp_path):
    out = tmp_path / "results"
    payload = search_quality.main([
        "--spaces", "hinas-proxy", "--strategies", "random", "sparsestmax_darts", "--seeds", "0", "--budget", "4",
        "--train-steps", "2", "--batch-size", "1", "--patch-size", "16", "--one-shot-steps", "2",
        "--data", str(image_folder), "--val-data", str(image_folder), "--ref-psnr", "0", "--device", "cpu",
        "--output", str(out),
    ])
    saved = json.loads((out / "search_quality.json").read_text())
    assert (out / "search_quality_hinas-proxy.png").stat().st_size > 0
    reference = saved["references"]["hinas-proxy"]
    assert reference["ref_psnr"] == 0.0 and math.isfinite(reference["bicubic_psnr"])
    assert reference["ref_multadds"] > 0
    runs = {r["strategy"]: r for r in saved["runs"]}
    assert set(runs) == {"random", "sparsestmax_darts"}
    for run in runs.values():
        assert run["error"] is None, run["error"]
        assert math.isfinite(run["wall_s"]) and run["wall_s"] > 0
        assert run["front"], "every run records at least one trained architecture"
        assert run["hypervolume"] == pytest.approx(search_quality.hypervolume_2d(
            [(e["psnr"], e["multadds"] / 1e9) for e in run["front"]], 0.0, reference["ref_multadds"] / 1e9))
        assert run["hypervolume"] > 0  # every PSNR is above 0 dB and every cost below the dearest architecture
    assert runs["random"]["steps"] is None and runs["random"]["complete_trials"] >= 1
    assert runs["sparsestmax_darts"]["steps"] == 2 and saved["calibrations"] == []
    assert all(e["source"] == "derived" for e in runs["sparsestmax_darts"]["front"])
    rows = {r["strategy"]: r for r in payload["rows"]}
    assert rows["random"]["ratio_to_random"] == pytest.approx(1.0) and rows["random"]["target_met"] is None
    ratio = rows["sparsestmax_darts"]["hv_mean"] / rows["random"]["hv_mean"]
    assert rows["sparsestmax_darts"]["ratio_to_random"] == pytest.approx(ratio)
    assert rows["sparsestmax_darts"]["target_met"] is (ratio >= 1.1)


# --------------------------------------------------------------------------------------------
# search_overhead.py


def test_search_overhead_tiny(search_overhead, image_folder, tmp_path):
    payload = search_overhead.main(["--spaces", "hinas-proxy", "--strategies", "sparsestmax_darts", "--steps", "2",
                                    "--batch-size", "1", "--patch-size", "16", "--data", str(image_folder),
                                    "--device", "cpu", "--output", str(tmp_path)])
    saved = json.loads((tmp_path / "search_overhead.json").read_text())
    assert saved["rows"] == payload["rows"]
    (row,) = saved["rows"]
    assert row["space"] == "hinas-proxy" and row["strategy"] == "sparsestmax_darts"
    assert row["search_batches"] == row["derived_batches"] == 2
    for key in ("search_s", "derived_s", "ratio", "step_ratio"):
        assert math.isfinite(row[key]) and row[key] > 0
    assert row["ratio"] == pytest.approx(row["search_s"] / row["derived_s"])
    assert row["target_met"] is (row["ratio"] <= 2.0)
    assert row["derived_params"] < row["supernet_params"]  # the derived net is one path of the supernet


# --------------------------------------------------------------------------------------------
# supernet_step.py: the parameter-sharing hierarchical RL row beside NNI DARTS, and the plot


def test_supernet_step_hierarchical_rl_row(tmp_path):
    supernet_step = load_benchmark("supernet_step")
    payload = supernet_step.main(["--spaces", "hinas-proxy", "--configs", "hierarchical_rl sharing", "--steps", "2",
                                  "--warmup", "1", "--batch", "1", "--patch", "8", "--device", "cpu",
                                  "--output", str(tmp_path)])
    saved = json.loads((tmp_path / "supernet_step.json").read_text())
    assert (tmp_path / "supernet_step.png").stat().st_size > 0
    rows = {r["config"]: r for r in saved["rows"]}
    assert list(rows) == ["nni_darts", "hierarchical_rl sharing"]
    darts, rl = rows["nni_darts"], rows["hierarchical_rl sharing"]
    assert rl["strategy"] == "hierarchical_rl" and rl["options"]["parameter_sharing"] is True
    assert rl["steps_measured"] == 2 and all(t > 0 for t in rl["step_times_s"])
    assert rl["time_ratio"] == pytest.approx(rl["step_mean_s"] / darts["step_mean_s"])
    assert darts["time_ratio"] == pytest.approx(1.0)
    assert math.isfinite(rl["peak_mib"]) and payload["rows"][1]["config"] == "hierarchical_rl sharing"
