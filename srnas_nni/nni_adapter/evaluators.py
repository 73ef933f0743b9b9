"""NNI's evaluator types, as srnas-nni's evaluation layer builds on them.

:class:`~srnas_nni.evaluation.evaluator.SREvaluator` is an NNI ``FunctionalEvaluator`` and the one-shot
strategies train through NNI's Lightning evaluator (``nni_pl``); both come from here.
"""

from __future__ import annotations

from .loader import nni  # noqa: F401  (the warning filter and the patches first)

import nni.nas.evaluator.pytorch as nni_pl  # noqa: E402
from nni.nas.evaluator import FunctionalEvaluator  # noqa: E402

__all__ = ["FunctionalEvaluator", "nni_pl"]
