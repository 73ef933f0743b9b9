"""Entry point for nnictl experiment files: ``tuner: {className: srnas_nni.nni_tuner.OptunaTuner}``.

The class paths users write in their NNI experiment files are fixed here; the tuners themselves are
:mod:`srnas_nni.nni_adapter.tuner`. Importing this module stays light (Optuna and ``nni.tuner`` only):
NNI's manager gives its tuner process 10 seconds to connect.
"""

from .nni_adapter.tuner import (  # noqa: F401
    OptunaGPTuner, OptunaNSGA2Tuner, OptunaNSGA3Tuner, OptunaRandomTuner, OptunaTPETuner, OptunaTuner,
)

__all__ = ["OptunaTuner", "OptunaNSGA2Tuner", "OptunaNSGA3Tuner", "OptunaTPETuner", "OptunaGPTuner",
           "OptunaRandomTuner"]
