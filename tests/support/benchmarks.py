"""The scripts in ``benchmarks/``, loaded from their files (they are no package) to run in-process."""

from __future__ import annotations

import importlib.util

from tests.support.repo import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"


def load_benchmark(name: str):
    """``benchmarks/NAME.py`` as a module named ``bench_NAME``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
