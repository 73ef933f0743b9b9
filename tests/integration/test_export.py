"""An exported run directory reloads in a fresh Python process that never imports srnas_nni (TorchScript,
then ONNX), with the outputs of the trained model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from srnas_nni.models.registry import resolve_model

from tests.support.cli import run
from tests.support.export_runs import space_run


# TorchScript is deprecated in torch >= 2.10 in favour of torch.export, yet it is the self-contained
# format asked for; its load warning is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


FRESH_PROCESS = """
import sys, numpy as np, torch
torch.set_num_threads(1)  # as the tests (conftest), so that the float summation order is the same
x = torch.from_numpy(np.load(sys.argv[2]))
assert 'srnas_nni' not in sys.modules
if sys.argv[1].endswith('.ts'):
    out = torch.jit.load(sys.argv[1])(x).detach().numpy()
else:
    import onnxruntime
    out = onnxruntime.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider']).run(None, {'lr': x.numpy()})[0]
assert 'srnas_nni' not in sys.modules
np.save(sys.argv[3], out)
"""


def in_fresh_process(tmp_path, model_path, x: torch.Tensor) -> np.ndarray:
    """Run an exported file in a new Python process that never imports srnas_nni."""
    np.save(tmp_path / "x.npy", x.numpy())
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(model_path), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return np.load(tmp_path / "y.npy")


def test_export_run_dir_reloads_in_a_fresh_process(capsys, tmp_path):
    run_dir, front = space_run(tmp_path, "dlsr-proxy", count=3, trained=(2,))
    code, out, err = run(capsys, "export", run_dir)  # best-psnr: trial 2, the one with a model file
    assert code == 0, err
    export_dir = run_dir / "export"
    assert "picked trial 2" in out and "note:" not in out
    spec = json.loads((export_dir / "architecture.json").read_text())
    assert spec["sample"] == front[0]["architecture"] and spec["space"] == "dlsr"
    trained = resolve_model(str(run_dir / "trials" / "2" / "model.pt"))
    assert resolve_model(str(export_dir / "architecture.json")).scale == 2

    x = torch.rand(1, 3, 37, 51, generator=torch.Generator().manual_seed(5))  # neither traced nor checked size
    with torch.no_grad():
        expected = trained.model.eval()(x).numpy()
    assert np.abs(in_fresh_process(tmp_path, export_dir / "model.ts", x) - expected).max() < 1e-6
    pytest.importorskip("onnxruntime")
    import onnx

    onnx.checker.check_model(str(export_dir / "model.onnx"))
    assert np.abs(in_fresh_process(tmp_path, export_dir / "model.onnx", x) - expected).max() < 1e-5
    summary = json.loads((export_dir / "export.json").read_text())
    assert summary["trained_weights"] is True and summary["origin"]["entry"]["trial"] == 2
