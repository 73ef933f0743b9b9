"""Exceptions users see as a one-line message.

Every error caused by user input (a file, a key, a value) is an :class:`SRNASError`; its message
names the thing at fault and fits on one line. The CLI prints it as ``srnas: error: <message>``
and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class SRNASError(Exception):
    """Base class of all errors caused by user input."""


class ConfigError(SRNASError):
    """A problem in an experiment file: ``<file>: <key.path>: <what is wrong>``."""


class ImageReadError(SRNASError):
    """An image file cannot be read or used (corrupt, truncated, too small, not an image)."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DatasetError(SRNASError):
    """A data set location or layout is unusable (missing folder, no images, unpaired files)."""


class ModelSpecError(SRNASError):
    """A model name, architecture JSON or checkpoint does not describe a buildable model."""


class TrainingDivergedError(SRNASError):
    """The training loss became NaN or infinite; the candidate is a failed trial, not a crash."""

    def __init__(self, step: int, loss: float):
        self.step = step
        self.loss = loss
        super().__init__(f"training diverged at step {step}: loss is {loss}")
