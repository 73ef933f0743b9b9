"""NNI's strategy interface and execution events, as srnas-nni's strategies and run recorder use them.

A multi-trial strategy is an NNI :class:`Strategy`: it submits models to an execution engine and hears
back through engine events (``FinalMetricEvent``, ``TrainingEndEvent``) and model statuses. These are
NNI's names, imported from its private packages in this one place.
"""

from __future__ import annotations

from .loader import nni  # noqa: F401  (the warning filter and the patches first)

from nni.nas import strategy as nni_strategies  # noqa: E402
from nni.nas.execution import FinalMetricEvent, ModelEventType, TrainingEndEvent  # noqa: E402
from nni.nas.space import ModelStatus  # noqa: E402
from nni.nas.strategy import Strategy  # noqa: E402
from nni.nas.strategy.evolution import Individual  # noqa: E402

__all__ = ["nni_strategies", "FinalMetricEvent", "ModelEventType", "TrainingEndEvent", "ModelStatus", "Strategy",
           "Individual"]
