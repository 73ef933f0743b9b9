"""Why a model failed, carried on NNI's model object from where it failed to where it is recorded.

NNI reports a failed model as a status only: its ``TrainingEndEvent`` holds the model and
``ModelStatus.Failed``, and the sequential engine logs the exception and drops it. srnas-nni records
the reason with the failed trial, so whoever sees the failure (the evaluator that raised, the engine
that gave up on a model) notes it on the model with :func:`set_failure_reason`, and the recorder
reads it with :func:`failure_reason`. This module imports no NNI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["set_failure_reason", "failure_reason"]

_ATTRIBUTE = "failure_reason"


def set_failure_reason(model: Any, reason: str) -> None:
    """Note on NNI's model object (an ``ExecutableModelSpace``) why it failed."""
    setattr(model, _ATTRIBUTE, reason)


def failure_reason(model: Any) -> str | None:
    """The reason :func:`set_failure_reason` noted on ``model``, or None."""
    return getattr(model, _ATTRIBUTE, None)
