"""The warnings NNI's import gives that say nothing about srnas-nni, silenced for that import only.

* NNI 3.0 predates the torch release we run on. While generating its ``Mutable*`` layer classes
  (``import nni.nas.nn.pytorch``) it inspects every ``torch.nn`` attribute and warns about each new
  class that is not a module (``nn.Buffer``, ``LinearCrossEntropyOptions``): "... is found to be not a
  nn.Module".
* nnictl and NNI's runtime import ``pkg_resources``, whose deprecation warning ("... or pin to
  Setuptools<81") asks for a pin srnas-nni already keeps (``setuptools<81``).

Every other warning stays visible. This module imports nothing heavy: the tuner process uses it too.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

__all__ = ["IGNORED_IMPORT_WARNINGS", "filtered_import_warnings"]

#: ``(message pattern, category)`` of each warning ignored while NNI is imported.
IGNORED_IMPORT_WARNINGS = (
    (r".* is found to be not a nn\.Module", RuntimeWarning),
    (r"pkg_resources is deprecated", UserWarning),
)


@contextlib.contextmanager
def filtered_import_warnings() -> Iterator[None]:
    """Within this block, the warnings of :data:`IGNORED_IMPORT_WARNINGS` are ignored; the filters are
    restored on exit."""
    with warnings.catch_warnings():
        for message, category in IGNORED_IMPORT_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
