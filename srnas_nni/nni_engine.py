"""Entry point: ``python -m srnas_nni.nni_engine [--host H] [--output-dir D] NNICTL_ARGS...``.

``nnictl`` with NNI's manager on loopback and its files under the run (``examples/nni/README.md``); the
command name is part of users' scripts and experiment files, the implementation is
:mod:`srnas_nni.nni_adapter.nnictl`.
"""

from .nni_adapter.nnictl import _nnictl_main as main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
