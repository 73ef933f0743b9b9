"""After the search: pick rules, export (traced without baking the input size), retrain, evaluate. The
exported files reloaded in a fresh process: ``tests/integration/test_export.py``."""

from __future__ import annotations

import json

import pytest
import torch

from srnas_nni.errors import SRNASError
from srnas_nni.models.imresize import imresize, traceable_bicubic_upscale
from srnas_nni.results.export import ExportSource, export_model, parse_amount, pick, pick_knee, resolve_export_source
from srnas_nni.models.registry import resolve_model

from tests.support.cli import run
from tests.support.export_runs import space_run


# TorchScript is deprecated in torch >= 2.10 in favour of torch.export, yet it is the self-contained
# format asked for; its load warning is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def entry(trial, psnr, multadds, params=1000):
    return {"trial": trial, "architecture": {}, "psnr": psnr, "ssim": 0.9, "params": params, "multadds": multadds,
            "model_file": None}


# -- pick rules ------------------------------------------------------------------------------------


def test_parse_amount_units():
    assert parse_amount("50G") == 50e9 and parse_amount("300k") == 300e3 and parse_amount("1.5M") == 1.5e6
    assert parse_amount("1234") == 1234
    with pytest.raises(SRNASError, match="'50X'"):
        parse_amount("50X")


def test_best_psnr_and_budgets():
    front = [entry(1, 30.0, 1e9, 100), entry(2, 32.0, 20e9, 5000), entry(3, 33.0, 80e9, 300_000)]
    assert pick(front, "best-psnr")["trial"] == 3
    assert pick(front, "under-multadds=50G")["trial"] == 2
    assert pick(front, "under-multadds=80G")["trial"] == 3  # the budget is inclusive
    assert pick(front, "under-params=1K")["trial"] == 1
    with pytest.raises(SRNASError) as error:
        pick(front, "under-multadds=0.5G")
    message = str(error.value)
    assert "multadds <= 500M" in message and "trial 1" in message and "1G" in message
    with pytest.raises(SRNASError, match="unknown pick rule 'fastest'"):
        pick(front, "fastest")


def test_knee_is_the_bulge_of_the_front():
    # Normalised, the extremes are (cheap=1, psnr=0) and (cheap=0, psnr=1); trial 2 sits far above that line.
    front = [entry(1, 30.0, 1e9), entry(2, 33.5, 3e9), entry(3, 33.8, 20e9), entry(4, 34.0, 100e9)]
    assert pick_knee(front)["trial"] == 2
    assert pick(front, "knee")["trial"] == 2
    # A straight front has no knee: the best PSNR is returned.
    straight = [entry(1, 30.0, 1e9), entry(2, 32.0, 2e9), entry(3, 34.0, 3e9)]
    assert pick_knee(straight)["trial"] == 3
    assert pick_knee(front[:2])["trial"] == 2


# -- export from a search run directory (tests.support.export_runs writes it) -----------------------


@pytest.mark.parametrize("preset", ["hinas-proxy", "hnas-proxy", "trilevel-proxy", "deconas-proxy"])
def test_every_space_traces_without_baking_the_size(tmp_path, preset):
    run_dir, _ = space_run(tmp_path, preset, count=1, trained=())
    source = resolve_export_source(run_dir, "best-psnr")
    assert not source.trained
    result = export_model(source, tmp_path / "out", onnx=False)
    traced = torch.jit.load(str(result.files["torchscript"]))
    x = torch.rand(1, 3, 29, 43, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert float((traced(x) - source.model(x)).abs().max()) < 1e-5
    assert not (tmp_path / "out" / "model.onnx").exists()


@pytest.mark.parametrize("name", ["carn_m", "vdsr"])
def test_baselines_export_from_a_spec_file(capsys, tmp_path, name):
    spec_file = tmp_path / f"{name}.json"
    spec_file.write_text(json.dumps({"model": name, "scale": 3}))
    code, out, err = run(capsys, "export", spec_file, "--output-dir", tmp_path / "out", "--no-onnx")
    assert code == 0, err
    assert "note: no trained weights" in out
    traced = torch.jit.load(str(tmp_path / "out" / "model.ts"))
    torch.manual_seed(0)  # the export seeds fresh weights with --seed 0
    model = resolve_model(str(spec_file)).model.eval()
    x = torch.rand(1, 3, 30, 26, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert float((traced(x) - model(x)).abs().max()) < 1e-5
    assert tuple(traced(x).shape) == (1, 3, 90, 78)


def test_traceable_bicubic_equals_imresize():
    x = torch.rand(2, 3, 9, 14, dtype=torch.float64)
    for scale in (2, 3, 4):
        assert float((traceable_bicubic_upscale(x, scale) - imresize(x, scale)).abs().max()) < 1e-12


def test_export_errors_are_one_line(capsys, tmp_path):
    run_dir, _ = space_run(tmp_path, "dlsr-proxy", count=2, trained=())
    code, _, err = run(capsys, "export", run_dir, "--pick", "under-multadds=1K")
    assert code == 2 and err.count("\n") == 1 and "multadds <= 1K" in err and "the cheapest is trial" in err
    pareto = json.loads((run_dir / "pareto.json").read_text())
    del pareto["front"][0]["psnr"]
    (run_dir / "pareto.json").write_text(json.dumps(pareto))
    code, _, err = run(capsys, "export", run_dir)
    assert code == 2 and err.count("\n") == 1 and "pareto.json: front[0]: 'psnr'" in err
    code, _, err = run(capsys, "export", tmp_path)
    assert code == 2 and "no pareto.json" in err

    run_dir, front = space_run(tmp_path / "mixed", "dlsr-proxy", count=2, trained=(1,))
    pareto = json.loads((run_dir / "pareto.json").read_text())
    pareto["front"][0]["architecture"] = front[1]["architecture"]  # the model file no longer fits its entry
    (run_dir / "pareto.json").write_text(json.dumps(pareto))
    code, _, err = run(capsys, "export", run_dir)
    assert code == 2 and err.count("\n") == 1 and "model.pt: its architecture differs from trial 1" in err


def test_export_untrained_then_retrain_resume_evaluate_upscale(capsys, tmp_path, image_folder):
    run_dir, _ = space_run(tmp_path, "dlsr-proxy", count=2, trained=())
    code, out, err = run(capsys, "export", run_dir, "--pick", "knee", "--no-onnx")
    assert code == 0, err
    assert "note: no trained weights" in out
    architecture = run_dir / "export" / "architecture.json"
    common = ["--data", image_folder, "--val-data", image_folder, "--batch-size", "2", "--patch-size", "32",
              "--output-dir", tmp_path / "retrain", "--device", "cpu"]
    code, out, err = run(capsys, "retrain", architecture, "--steps", "2", *common)
    assert code == 0, err
    assert (tmp_path / "retrain" / "checkpoints").is_dir()
    code, _, err = run(capsys, "retrain", run_dir / "export", "--steps", "3", *common)  # the folder works too
    assert code == 0, err
    summary = json.loads((tmp_path / "retrain" / "train.json").read_text())
    assert summary["steps"] == 3 and summary["spec"] == json.loads(architecture.read_text())

    model_file = tmp_path / "retrain" / "model.pt"
    code, out, err = run(capsys, "evaluate", "--model", model_file, "--data", image_folder, "--json")
    assert code == 0, err
    assert json.loads(out)["psnr"] == pytest.approx(summary["psnr"], abs=1e-9)
    code, out, err = run(capsys, "upscale", model_file, image_folder / "img0.png", "-o", tmp_path / "up.png",
                         "--device", "cpu")
    assert code == 0, err
    assert "(128x96)" in out

    code, out, err = run(capsys, "export", model_file, "--output-dir", tmp_path / "from-model", "--no-onnx")
    assert code == 0, err
    assert "note:" not in out
    traced = torch.jit.load(str(tmp_path / "from-model" / "model.ts"))
    trained = resolve_model(str(model_file)).model.eval()
    x = torch.rand(1, 3, 33, 41)
    with torch.no_grad():
        assert float((traced(x) - trained(x)).abs().max()) < 1e-5


def test_export_model_keeps_the_architecture_when_tracing_fails(tmp_path):
    class SizeDependent(torch.nn.Module):
        scale = 2

        def forward(self, x):
            return torch.nn.functional.interpolate(x, size=(int(x.shape[2]) * 2, 64 * 2))

    source = ExportSource(SizeDependent(), {"model": "bicubic", "scale": 2}, 2, False)
    with pytest.raises(SRNASError, match="does not generalise"):
        export_model(source, tmp_path / "out", onnx=False)
    assert json.loads((tmp_path / "out" / "architecture.json").read_text()) == {"model": "bicubic", "scale": 2}
    assert not (tmp_path / "out" / "model.ts").exists()
