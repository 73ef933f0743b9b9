"""What NNI's manager recorded of an experiment's trials, read from its database (``db/nni.sqlite``).

An ``engine: nni`` search that was interrupted may leave trials NNI's manager saw end that the study
never recorded; ``srnas search --resume`` records them from here (:func:`finished_nni_trials`). The
tables and columns read (``TrialJobEvent``, ``MetricData``) are NNI 3.0's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .loader import nni

__all__ = ["finished_nni_trials"]

_FINAL_TRIAL_STATES = ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")


def finished_nni_trials(database: str | os.PathLike) -> list[dict[str, Any]]:
    """The trials NNI's manager saw end, from an experiment's ``db/nni.sqlite`` (read only), oldest first.

    Each is ``{"trial": id, "status": SUCCEEDED|FAILED|..., "parameter_id": int, "sample": {label: value},
    "metric": the final metric (a dict as the evaluator reported it) or None}``. The parameter a trial ran
    is the one its metric reports name (``MetricData``); for a trial that reported nothing, the one the
    manager created it with (``TrialJobEvent``; see :class:`~.engine.KeepAliveEngine` on why they can differ). A
    missing database gives an empty list.
    """
    import json
    import sqlite3

    path = Path(database)
    if not path.is_file():
        return []
    connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        events = connection.execute("SELECT trialJobId, event, data FROM TrialJobEvent ORDER BY timestamp").fetchall()
        metrics = connection.execute(
            "SELECT trialJobId, parameterId, data FROM MetricData WHERE type = 'FINAL' ORDER BY timestamp").fetchall()
    finally:
        connection.close()
    samples: dict[int, dict[str, Any]] = {}
    assigned: dict[str, int] = {}
    ended: dict[str, str] = {}
    for trial_id, event, data in events:
        if data:
            try:
                form = json.loads(data)
                parameter_id = int(form["parameter_id"])
            except (ValueError, TypeError, KeyError):
                form = None
            if form is not None:
                assigned.setdefault(trial_id, parameter_id)
                samples.setdefault(parameter_id, _sample_of(form.get("parameters")))
        if event in _FINAL_TRIAL_STATES:
            ended[trial_id] = event
    ran: dict[str, int] = {}
    final: dict[str, Any] = {}
    for trial_id, parameter_id, data in metrics:
        try:
            ran[trial_id] = int(json.loads(parameter_id) if isinstance(parameter_id, str) else parameter_id)
            value = json.loads(data)
            final[trial_id] = nni.load(value) if isinstance(value, str) else value
        except (ValueError, TypeError):
            continue
    trials = []
    for trial_id, status in ended.items():
        parameter_id = ran.get(trial_id, assigned.get(trial_id))
        if parameter_id is None:
            continue
        trials.append({"trial": trial_id, "status": status, "parameter_id": parameter_id,
                       "sample": samples.get(parameter_id) or {}, "metric": final.get(trial_id)})
    return trials


def _sample_of(parameters: Any) -> dict[str, Any]:
    """The ``{label: value}`` sample of a trial's parameters (a serialised model of older runs included)."""
    if not isinstance(parameters, dict):
        return {}
    kwargs = parameters.get("__kwargs__")
    if isinstance(kwargs, dict):  # a whole model (runs before parameters were the sample)
        sample = kwargs.get("sample")
        return dict(sample) if isinstance(sample, dict) else {}
    return dict(parameters)
