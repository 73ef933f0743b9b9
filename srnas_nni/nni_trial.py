"""Entry point: ``python -m srnas_nni.nni_trial trial.yaml`` is the ``trialCommand`` of an nnictl experiment.

The command is part of users' NNI experiment files; the implementation is :mod:`srnas_nni.run.nnictl_trial`.
"""

import sys

from .run.nnictl_trial import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
