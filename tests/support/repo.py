"""Where the repository and the optional ``../shared/data`` folder are, for tests at any depth."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_root() -> Path:
    """``$SRNAS_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("SRNAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
