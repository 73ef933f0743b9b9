"""Fixtures of both tiers: small synthetic images, the optional ../shared/data folder, a tiny SR model,
the benchmark scripts. Helpers that are no fixtures live in ``tests/support``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.support.benchmarks import load_benchmark
from tests.support.images import smooth_image
from tests.support.models import TinySR
from tests.support.repo import shared_data_root


@pytest.fixture(autouse=True, scope="session")
def _nni_writes_nothing_into_home(tmp_path_factory):
    """NNI's experiment index goes to a temporary folder, never ~/nni-experiments."""
    from srnas_nni.nni_adapter.loader import experiment_directory

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


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Four 48x64 RGB PNGs."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(48, 64, seed=i)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture
def tiny_model() -> TinySR:
    torch.manual_seed(0)
    return TinySR()


# -- the benchmark scripts (benchmarks/*.py), loaded once per test module ----------------------------


@pytest.fixture(scope="module")
def fidelity():
    return load_benchmark("fidelity")


@pytest.fixture(scope="module")
def throughput():
    return load_benchmark("throughput")


@pytest.fixture(scope="module")
def search_quality():
    return load_benchmark("search_quality")


@pytest.fixture(scope="module")
def search_overhead():
    return load_benchmark("search_overhead")
