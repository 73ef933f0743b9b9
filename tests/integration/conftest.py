"""End-to-end runs (subprocesses, NNI's manager and nnictl, DDP ranks, workers, whole searches): every
test collected here is marked ``integration``, so ``pytest -m "not integration"`` leaves them out."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
