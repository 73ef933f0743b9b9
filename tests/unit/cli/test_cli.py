"""The srnas command end to end: JSON outputs, errors, train -> evaluate. The published bicubic table
through ``srnas evaluate``: ``tests/integration/test_published_tables.py``."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
import pytest

from tests.support.cli import run


def test_cost_json(capsys):
    code, out, _ = run(capsys, "cost", "--model", "vdsr", "--scale", "2", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["hr_size"] == [720, 1280]
    assert abs(result["params"] / 665e3 - 1) < 0.01 and abs(result["multadds"] / 612.6e9 - 1) < 0.02


def test_cost_hr_size_option_scales_multadds(capsys):
    _, small, _ = run(capsys, "cost", "--model", "srcnn", "--scale", "2", "--hr-size", "360x640", "--json")
    _, full, _ = run(capsys, "cost", "--model", "srcnn", "--scale", "2", "--json")
    assert json.loads(full)["multadds"] == 4 * json.loads(small)["multadds"]


def test_evaluate_bicubic_on_a_folder(capsys, image_folder):
    code, out, _ = run(capsys, "evaluate", "--model", "bicubic", "--data", str(image_folder), "--scale", "2",
                       "--json")
    assert code == 0
    result = json.loads(out)
    assert {"psnr", "ssim", "psnr_rgb", "scale", "crop", "images"} <= set(result)
    assert [image["name"] for image in result["images"]] == [f"img{i}" for i in range(4)]
    assert result["psnr"] > 25


def test_missing_data_folder_is_one_line_naming_it(capsys, tmp_path):
    missing = tmp_path / "nowhere"
    code, out, err = run(capsys, "evaluate", "--model", "bicubic", "--data", str(missing), "--scale", "2")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("srnas: error:") and str(missing) in err


def test_corrupt_image_fails_or_is_skipped(capsys, image_folder):
    bad = image_folder / "broken.png"
    bad.write_bytes((image_folder / "img0.png").read_bytes()[:60])
    code, _, err = run(capsys, "evaluate", "--model", "bicubic", "--data", str(image_folder), "--scale", "2")
    assert code == 2 and "broken.png" in err and err.count("\n") == 1
    with pytest.warns(UserWarning, match="broken.png"):
        code, out, _ = run(capsys, "evaluate", "--model", "bicubic", "--data", str(image_folder), "--scale", "2",
                           "--skip-bad", "--json")
    assert code == 0 and len(json.loads(out)["images"]) == 4


def test_unknown_model_suggests_the_closest(capsys):
    code, _, err = run(capsys, "cost", "--model", "carnm", "--scale", "2")
    assert code == 2 and "unknown model 'carnm'" in err and "carn_m" in err


def test_train_then_evaluate_the_model_file_then_resume(capsys, image_folder, tmp_path):
    out_dir = tmp_path / "run"
    common = ["--data", str(image_folder), "--val-data", str(image_folder), "--batch-size", "2",
              "--patch-size", "24", "--output-dir", str(out_dir), "--device", "cpu"]
    code, out, err = run(capsys, "train", "--model", "fsrcnn", "--scale", "2", "--steps", "3", *common)
    assert code == 0, err
    summary = json.loads((out_dir / "train.json").read_text())
    assert summary["steps"] == 3 and summary["params"] > 0

    code, out, _ = run(capsys, "evaluate", "--model", str(out_dir / "model.pt"), "--data", str(image_folder),
                       "--json", "--device", "cpu")
    assert code == 0
    assert json.loads(out)["psnr"] == pytest.approx(summary["psnr"], abs=1e-9)
    if torch.cuda.is_available():  # scored in IEEE float32 on CUDA too: TF32 convolutions moved it by ~6e-4 dB
        code, out, _ = run(capsys, "evaluate", "--model", str(out_dir / "model.pt"), "--data", str(image_folder),
                           "--json", "--device", "cuda")
        assert code == 0
        assert json.loads(out)["psnr"] == pytest.approx(summary["psnr"], abs=1e-4)

    code, _, _ = run(capsys, "train", "--model", "fsrcnn", "--scale", "2", "--steps", "5", *common)
    assert code == 0
    assert json.loads((out_dir / "train.json").read_text())["steps"] == 5

    code, _, err = run(capsys, "evaluate", "--model", str(out_dir / "model.pt"), "--scale", "3",
                       "--data", str(image_folder))
    assert code == 2 and "trained for x2" in err


def test_compare_tabulates_every_model(capsys, image_folder, tmp_path):
    code, out, _ = run(capsys, "compare", "--models", "bicubic,fsrcnn", "--scale", "2", "--data", str(image_folder),
                       "--val-data", str(image_folder), "--train-steps", "2", "--batch-size", "2",
                       "--patch-size", "24", "--output-dir", str(tmp_path), "--device", "cpu")
    assert code == 0
    rows = json.loads((tmp_path / "compare.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["bicubic", "fsrcnn"]
    assert rows[0]["params"] == 0 and rows[1]["params"] > 12_000
    assert "| bicubic | 0 |" in out and "| fsrcnn |" in out


def test_console_entry_point_help():
    for command in ([], ["evaluate"], ["cost"], ["train"], ["compare"]):
        done = subprocess.run([sys.executable, "-m", "srnas_nni", *command, "--help"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0 and "usage: srnas" in done.stdout
