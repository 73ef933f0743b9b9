"""Shared fixtures: small synthetic images, the optional ../shared/data folder, a tiny SR model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """``$SRNAS_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("SRNAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _nni_writes_nothing_into_home(tmp_path_factory):
    """NNI's experiment index goes to a temporary folder, never ~/nni-experiments."""
    from srnas_nni.nni_compat import experiment_directory

    experiment_directory(tmp_path_factory.mktemp("nni-home"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests run tiny tensors, where extra threads only contend (CI shares 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_benchmark() -> Path:
    root = shared_data_root() / "benchmark"
    if not (root / "Set5").is_dir():
        pytest.skip(f"shared benchmark data not found at {root}")
    return root


def smooth_image(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    """A band-limited random image: natural-ish content an SR model can learn quickly."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(max(2, height // 8), max(2, width // 8), channels))
    image = Image.fromarray(coarse.astype(np.uint8).squeeze() if channels == 1 else coarse.astype(np.uint8))
    return np.asarray(image.resize((width, height), Image.BICUBIC))


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Four 48x64 RGB PNGs."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(48, 64, seed=i)).save(folder / f"img{i}.png")
    return folder


class TinySR(nn.Module):
    """conv-relu-conv + pixel shuffle: a few hundred parameters, trains in seconds."""

    def __init__(self, scale: int = 2, width: int = 8):
        super().__init__()
        self.scale = scale
        self.in_channels = 3
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3 * scale * scale, 3, padding=1)
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")
        return up + self.shuffle(self.body(x))


@pytest.fixture
def tiny_model() -> TinySR:
    torch.manual_seed(0)
    return TinySR()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def signal_when_ready(process, ready, signum, *, wait: float = 180, timeout: float = 120) -> str:
    """Send ``signum`` to ``process`` once ``ready()`` is true; return its output once it has ended.

    Fails if ``process`` ends first or ``ready()`` stays false for ``wait`` seconds; the process is
    killed if it is still running when this returns or fails.
    """
    import time

    try:
        deadline = time.time() + wait
        while not ready():
            assert process.poll() is None, f"the process ended first: {process.communicate()[0]}"
            assert time.time() < deadline, f"not ready within {wait} s"
            time.sleep(0.05)
        process.send_signal(signum)
        output, errors = process.communicate(timeout=timeout)
        return (output or "") + (errors or "")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


#: NNI's bundled node binary (its manager runs on it).
NNI_NODE_BINARY = Path(__import__("nni_node").__path__[0]) / "node"


def nni_node_problem() -> str | None:
    """Why NNI's manager cannot start on this machine, or None."""
    import subprocess

    if not NNI_NODE_BINARY.is_file():
        return f"NNI's node binary is missing ({NNI_NODE_BINARY})"
    try:
        subprocess.run([str(NNI_NODE_BINARY), "--version"], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"NNI's node binary does not run: {exc}"
    return None
