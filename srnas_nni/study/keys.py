"""Architectures as plain data and as keys.

A sample is ``{label: value}``; NNI's samplers draw numpy scalars and input sets as lists. Two keys,
for two jobs:

* :func:`sample_key` -- a short stable name (12 hex digits) for folders and files of a run. It is part
  of what a run writes, so it must not change between releases.
* :func:`canonical_sample` -- the identity of an architecture for de-duplication and caches: the same
  architecture gives the same string whatever order its input sets were drawn in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import numpy as np

__all__ = ["plain_value", "sample_key", "canonical_sample"]


def plain_value(value: Any) -> Any:
    """numpy scalars (what NNI's samplers draw) -> Python values, so samples survive JSON."""
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def sample_key(sample: Mapping[str, Any]) -> str:
    """A short stable name for an architecture (folder names of a run)."""
    return hashlib.sha1(json.dumps(sample, sort_keys=True, default=str).encode()).hexdigest()[:12]


def canonical_sample(sample: Mapping[str, Any]) -> str:
    """The architecture as a canonical string (input sets sorted), for de-duplication and caches."""
    canonical = {str(label): sorted(plain_value(v), key=repr) if isinstance(v, (list, tuple)) else plain_value(v)
                 for label, v in sample.items()}
    return json.dumps(canonical, sort_keys=True, default=repr)
