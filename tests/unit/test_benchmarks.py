"""The fast parts of the benchmark scripts (``benchmarks/*.py``, loaded from their files): the published
table, units, hypervolume and reference points, calibration, option checks, the fast SSIM path and the
result files (paths relative to the repository). Their tiny runs: ``tests/integration/test_benchmarks.py``."""

from __future__ import annotations

import json

import pytest

from tests.support.repo import REPO_ROOT


def test_published_table_is_parsed(fidelity):
    text = ("intro\n\n| set | x2 | x3 | x4 |\n|---|---|---|---|\n| Set5 | 33.66 / 0.9299 | 30.39 / 0.8682 | - |\n"
            "\n| other | table |\n|---|---|\n| a | 1 / 2 |\n")
    assert fidelity.parse_published_table(text) == {("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682)}


def test_printed_unit(fidelity):
    assert fidelity.printed_unit(57_000) == 1000
    assert fidelity.printed_unit(52_700_000_000) == 1e8
    assert fidelity.printed_unit(1_713_000) == 1000


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


# --------------------------------------------------------------------------------------------
# search_quality.py: hypervolume, reference point, a tiny run


def test_hypervolume_of_one_point_is_its_box(search_quality):
    assert search_quality.hypervolume_2d([(30.0, 2.0)], 20.0, 10.0) == pytest.approx((10 - 2) * (30 - 20))


def test_hypervolume_of_a_staircase(search_quality):
    hv = search_quality.hypervolume_2d
    # cheap and weaker (2 G, 30 dB), dear and better (6 G, 35 dB): two steps of the staircase
    expected = (6 - 2) * (30 - 20) + (10 - 6) * (35 - 20)
    assert hv([(30.0, 2.0), (35.0, 6.0)], 20.0, 10.0) == pytest.approx(expected)
    assert hv([(35.0, 6.0), (30.0, 2.0)], 20.0, 10.0) == pytest.approx(expected)  # order does not matter
    # a dominated point, points beyond the reference and non-finite points add nothing
    noisy = [(30.0, 2.0), (35.0, 6.0), (25.0, 4.0), (19.0, 1.0), (40.0, 12.0), (float("nan"), 1.0),
             (float("-inf"), 3.0)]
    assert hv(noisy, 20.0, 10.0) == pytest.approx(expected)
    assert hv([], 20.0, 10.0) == 0.0
    # a point that dominates both covers their whole area and more
    assert hv([(30.0, 2.0), (35.0, 6.0), (36.0, 1.0)], 20.0, 10.0) == pytest.approx((10 - 1) * (36 - 20))


def test_hypervolume_equal_cost_points_keep_the_best(search_quality):
    assert search_quality.hypervolume_2d([(25.0, 5.0), (28.0, 5.0)], 20.0, 10.0) == pytest.approx(5 * 8)


def test_front_2d(search_quality):
    points = [(35.0, 6.0), (25.0, 4.0), (30.0, 2.0), (34.0, 7.0)]
    assert search_quality.front_2d(points) == [(30.0, 2.0), (35.0, 6.0)]


def test_dearest_multadds_bounds_random_samples(search_quality):
    import numpy as np

    from srnas_nni.spaces import load_space_preset

    space = load_space_preset("dlsr-proxy")
    bound = search_quality.dearest_multadds(space, starts=2)
    rng = np.random.RandomState(1)
    costs = [space.cost(space.random_sample(rng)).multadds for _ in range(30)]
    assert max(costs) <= bound
    # reached by some architecture: coordinate ascent only visits real samples
    assert bound > min(costs)


def test_search_quality_rejects_bad_options(search_quality, capsys):
    for argv, option in ((["--budget", "0"], "--budget"), (["--ref-psnr", "high"], "--ref-psnr"),
                         (["--strategies", "nope"], "--strategies"), (["--seeds", "1", "1"], "--seeds")):
        with pytest.raises(SystemExit):
            search_quality.parse_args(argv)
        assert option in capsys.readouterr().err.strip().splitlines()[-1]


def test_calibration_fits_a_line_through_two_runs(search_quality, monkeypatch):
    calls = []

    def fake_run(args, space, strategy, seed, *, steps, limit):
        calls.append((steps, limit))
        return {"wall_s": 4.0 + 0.5 * steps, "error": None}  # 4 s fixed, 0.5 s per step

    monkeypatch.setattr(search_quality, "run_once", fake_run)
    args = search_quality.parse_args(["--budget", "20", "--calibration-steps", "2", "6"])
    result = search_quality.calibrate(args, "hinas-proxy", "hinas")
    assert calls == [(2, None), (6, None)]  # never interrupted
    assert result["fixed_s"] == pytest.approx(4.0) and result["per_step_s"] == pytest.approx(0.5)
    assert result["steps"] == 32  # (20 - 4) / 0.5
    args.budget = 3.0  # less than the fixed cost: still one step
    assert search_quality.calibrate(args, "hinas-proxy", "hinas")["steps"] == 1


def test_a_calibration_that_misses_the_budget_is_refitted_on_the_first_seed(search_quality, monkeypatch):
    # Short calibration runs see neither the periodic cost (every 25 steps) nor a runaway: the check run does.
    def wall(steps):
        return 4.0 + 0.5 * steps + 6.0 * (steps // 25)

    calls = []

    def fake_run(args, space, strategy, seed, *, steps, limit):
        calls.append(steps)
        interrupted = limit is not None and wall(steps) > limit
        return {"wall_s": limit if interrupted else wall(steps), "interrupted_at_limit": interrupted,
                "error": None, "seed": seed, "steps": steps}

    monkeypatch.setattr(search_quality, "run_once", fake_run)
    args = search_quality.parse_args(["--budget", "60", "--calibration-steps", "2", "6", "--seeds", "3", "4"])
    calibration = search_quality.calibrate(args, "hinas-proxy", "hinas")
    assert calibration["steps"] == 112  # (60 - 4) / 0.5, blind to the checkpoints
    steps, run = search_quality.run_calibrated(args, "hinas-proxy", "hinas", calibration, limit=240.0)
    assert calls[2] == 112 and wall(112) > 1.15 * 60  # 84 s: refitted
    assert abs(run["wall_s"] - 60) <= 0.15 * 60 and run["steps"] == steps == calibration["steps"] < 112
    assert run["seed"] == 3 and calibration["refits"][0]["steps_run"] == 112

    calibration = {"calibration_steps": [2, 6], "calibration_wall_s": [5.0, 7.0], "steps": 4000}  # noise: a runaway
    calls.clear()
    steps, run = search_quality.run_calibrated(args, "hinas-proxy", "hinas", calibration, limit=240.0)
    assert calibration["refits"][0]["rule"] == "interrupted: scaled" and calls[0] == 4000
    assert abs(run["wall_s"] - 60) <= 0.15 * 60 and steps < 4000


def test_warmups_scale_with_the_search(search_quality):
    assert search_quality.strategy_spec("hinas", 50) == {"preset": "hinas", "warmup_steps": 10}
    assert search_quality.strategy_spec("dlsr", 100) == {"preset": "dlsr", "warmup_steps": 2}
    assert search_quality.strategy_spec("sparsestmax_darts", 50) == "sparsestmax_darts"
    assert search_quality.strategy_spec("hinas", None) == "hinas"


def test_search_overhead_rejects_multi_trial_strategies(search_overhead, capsys):
    with pytest.raises(SystemExit):
        search_overhead.parse_args(["--strategies", "random"])
    assert "--strategies" in capsys.readouterr().err.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------
# the fast SSIM filter of srnas_nni.evaluation.metrics against a plain 2-D window


def test_ssim_fast_path_equals_a_2d_window():
    import numpy as np
    import torch
    import torch.nn.functional as F

    from srnas_nni.evaluation.metrics import ssim

    def plain_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        grid = torch.arange(11, dtype=torch.float64) - 5
        window = torch.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2 * 1.5**2))
        window = (window / window.sum()).view(1, 1, 11, 11)
        channels = x.shape[1]

        def filt(image):
            return F.conv2d(image, window.expand(channels, 1, 11, 11), groups=channels)

        mu_x, mu_y = filt(x), filt(y)
        var_x, var_y = filt(x * x) - mu_x**2, filt(y * y) - mu_y**2
        cov = filt(x * y) - mu_x * mu_y
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        return value.mean(dim=(1, 2, 3))

    rng = np.random.default_rng(0)
    for shape in ((3, 1, 23, 31), (2, 3, 16, 40), (1, 1, 11, 11)):
        hr = rng.integers(0, 256, shape)
        sr = np.clip(hr + rng.normal(0, 20, shape), 0, 255).round()
        x, y = torch.from_numpy(sr).double(), torch.from_numpy(hr.astype(np.float64))
        got = ssim(x.to(torch.uint8), y.to(torch.uint8), y_channel=False, reduction="none")
        assert torch.allclose(got, plain_ssim(x, y), rtol=0, atol=1e-10)


def test_result_files_record_paths_relative_to_the_repository(tmp_path):
    from srnas_nni.runtime import write_result_file

    shared = REPO_ROOT.parent / "shared" / "data" / "benchmark"
    payload = {"output": REPO_ROOT / "benchmarks" / "results", "data": str(shared),
               "rows": [{"storage": "sqlite:////abs/study.db", "model": "carn"}], "note": "/ a slash, not a path\n"}
    write_result_file(tmp_path / "result.json", payload, REPO_ROOT)
    written = json.loads((tmp_path / "result.json").read_text())
    assert written["output"] == "benchmarks/results"
    assert written["data"] == "../shared/data/benchmark"
    assert written["rows"] == payload["rows"] and written["note"] == payload["note"]


def test_committed_result_files_hold_no_absolute_path():
    def strings(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)
        elif isinstance(value, str):
            yield value

    for path in sorted((REPO_ROOT / "benchmarks" / "results").rglob("*.json")):
        absolute = [s for s in strings(json.loads(path.read_text())) if s.startswith("/")]
        assert not absolute, (path, absolute[:3])
