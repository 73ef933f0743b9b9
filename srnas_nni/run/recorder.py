"""Every evaluated architecture of a search, in an Optuna study that optuna-dashboard shows.

The study has three objectives (``set_metric_names(["psnr", "params", "multadds"])``: maximise
PSNR, minimise parameters and Mult-Adds), one categorical parameter per label of the space (the
encoding of :class:`~srnas_nni.spaces.encoding.SpaceEncoding`, the one the Optuna strategy asks
with, so parallel-coordinate and importance plots work), and user attributes: ``architecture``
(the sample as JSON), ``ssim``, ``train_seconds``, ``strategy``, ``space``, ``scale``, ``nni_trial`` and
``nni_parameter_id`` (under ``engine: nni``: the NNI trial that ran the architecture and the parameter id it
was submitted with; None with the sequential engine),
``source`` (``trial``; ``derived`` for a one-shot strategy's derived architecture after training;
``shared_weights`` for samples evaluated on a supernet's shared weights, which are flagged because
they are not comparable with trained ones) and, for failed candidates, ``fail_reason``.

:class:`StudyRecorder` adds NNI's finished models to the study as they finish (engine events).
When the strategy is itself driven by an Optuna study (``optuna`` strategies) the recorder does not
add trials twice: it annotates the strategy's trials before they are told. :func:`pareto_front`
reads the front back from the study; :func:`write_pareto_file` writes ``pareto.json`` (format
``srnas-pareto/1``) for ``srnas export`` and ``srnas pareto``.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

import optuna

from ..nni_adapter.loader import nni  # noqa: F401  (NNI imported under our warning filter)
from ..study.front import pareto_front
from ..study.keys import sample_key
from ..study.objectives import DIRECTIONS, METRIC_NAMES, objective_values
from ..study.storage import open_study
from ..runtime import atomic_write_json
from ..spaces.encoding import SpaceEncoding

from ..nni_adapter.strategy import ModelEventType  # noqa: E402
from ..nni_adapter.strategy import ModelStatus  # noqa: E402
from ..nni_adapter.failures import failure_reason  # noqa: E402

__all__ = ["METRIC_NAMES", "DIRECTIONS", "open_study", "sample_key", "StudyRecorder", "pareto_front",
           "run_pareto_front", "write_pareto_file", "PARETO_FORMAT"]

PARETO_FORMAT = "srnas-pareto/1"


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class StudyRecorder:
    """Records NNI's finished models into an Optuna study (see the module docstring).

    ``on_record(trial_number, entry)`` is called after each record (the runner checkpoints there).
    """

    def __init__(self, study: optuna.Study, space, *, strategy: str, space_name: str, scale: int,
                 on_record: Callable[[int, dict[str, Any]], None] | None = None):
        self.study = study
        self.encoding = SpaceEncoding(space)
        self.distributions = {label: optuna.distributions.CategoricalDistribution(values)
                              for label, values in self.encoding.choices.items()}
        self.common = {"strategy": strategy, "space": space_name, "scale": int(scale)}
        self.on_record = on_record
        self._engine = None
        self._recorded: set[int] = set()
        #: With ``deferred``, finished models wait in :attr:`pending` until :meth:`flush` (the runner
        #: checkpoints the search first, with the pending records in it: exactly-once across a crash).
        self.deferred = False
        self.pending: list[dict[str, Any]] = []
        self._strategy = None
        self._lock = threading.Lock()

    # -- engine events --------------------------------------------------------------------------

    def attach(self, engine, strategy=None) -> None:
        """Listen to ``engine``; with an Optuna-driven ``strategy``, annotate its trials instead."""
        self._engine = engine
        if strategy is not None and hasattr(strategy, "trial_annotator"):
            self._strategy = strategy
            strategy.defer_tells = self.deferred
            strategy.trial_annotator = self._annotate
            strategy.trial_recorded = self._after_told
            return
        engine.register_model_event_callback(ModelEventType.FinalMetric, self._on_final_metric)
        engine.register_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)

    def detach(self) -> None:
        if self._engine is None:
            return
        for kind, callback in ((ModelEventType.FinalMetric, self._on_final_metric),
                               (ModelEventType.TrainingEnd, self._on_training_end)):
            try:
                self._engine.unregister_model_event_callback(kind, callback)
            except (KeyError, ValueError):
                pass
        self._engine = None

    def _on_final_metric(self, event) -> None:
        model = event.model
        if id(model) in self._recorded:
            return
        self._recorded.add(id(model))
        self._finished(dict(getattr(model, "sample", None) or {}), event.metric, **_identity(model))

    def _on_training_end(self, event) -> None:
        model = event.model
        if id(model) in self._recorded:
            return
        self._recorded.add(id(model))
        reason = failure_reason(model)
        if event.status == ModelStatus.Trained and reason is None:
            reason = "finished without reporting a final metric"
        self._finished(dict(getattr(model, "sample", None) or {}), None, **_identity(model),
                       fail_reason=reason or "failed")

    def _finished(self, sample: dict[str, Any], metrics: Any, **details: Any) -> None:
        if not self.deferred:
            self.record(sample, metrics, **details)
            return
        plain = json.loads(json.dumps(metrics, default=_plain)) if isinstance(metrics, dict) else None
        with self._lock:
            self.pending.append({"sample": sample, "metrics": plain, "token": uuid.uuid4().hex,
                                 "nni_trial": None if details.get("nni_trial") is None else str(details["nni_trial"]),
                                 "nni_parameter_id": details.get("nni_parameter_id"),
                                 "fail_reason": details.get("fail_reason")})

    # -- deferred records ---------------------------------------------------------------------------

    def has_pending(self) -> bool:
        return bool(self.pending) or bool(getattr(self._strategy, "pending_tells", None))

    def pending_state(self) -> list[dict[str, Any]]:
        """The records not yet in the study (plain data, for the search checkpoint)."""
        with self._lock:
            return [dict(entry) for entry in self.pending]

    def flush(self) -> None:
        """Add the pending records (and tell an Optuna-driven strategy's pending trials) to the study."""
        with self._lock:
            pending, self.pending = self.pending, []
        for entry in pending:  # never in the study yet: no token look-up (that is for resumes, replay)
            self._record_entry(entry)
        if self._strategy is not None:
            self._strategy.flush_tells()

    def replay(self, entry: dict[str, Any]) -> None:
        """Add one pending record unless the study already holds it (its ``record_token``)."""
        trials = self.study.get_trials(deepcopy=False)
        held = {t.user_attrs.get("record_token") for t in trials}
        # Recovered from NNI's database already (resume of an engine: nni run): not twice.
        held_parameters = {t.user_attrs.get("nni_parameter_id") for t in trials if t.state.is_finished()} - {None}
        if entry["token"] not in held and entry.get("nni_parameter_id") not in held_parameters:
            self._record_entry(entry)

    def recover(self, sample: dict[str, Any], metrics: dict[str, Any] | None, *, nni_trial: Any,
                nni_parameter_id: int | None, fail_reason: str | None = None, tell_running: bool = False) -> int:
        """Record a trial that finished unrecorded (found in NNI's database on resume); its Optuna trial number.

        With ``tell_running`` (an Optuna-driven strategy asked for it and never heard back), the study's
        RUNNING trial with the same parameters is completed with the result (user attributes set) instead
        of a new trial being added; without such a trial it is added as :meth:`record` does.
        """
        params = self.encoding.encode(sample) if sample else {}
        if tell_running and params:
            for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                if trial.params != params:
                    continue
                values = objective_values(metrics)
                reason = fail_reason or (None if values is not None or metrics is None
                                         else f"incomplete objectives in {sorted(metrics)}")
                for key, value in self.attributes(sample, metrics, nni_trial=nni_trial, fail_reason=reason,
                                                  nni_parameter_id=nni_parameter_id).items():
                    self.study._storage.set_trial_user_attr(trial._trial_id, key, value)
                if values is None:
                    self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                else:
                    self.study.tell(trial.number, values)
                if self.on_record is not None:
                    self.on_record(trial.number, metrics or {})
                return trial.number
        return self.record(sample, metrics, nni_trial=nni_trial, fail_reason=fail_reason,
                           nni_parameter_id=nni_parameter_id)

    def _record_entry(self, entry: dict[str, Any]) -> None:
        self.record(entry["sample"], entry["metrics"], nni_trial=entry["nni_trial"], fail_reason=entry["fail_reason"],
                    token=entry["token"], nni_parameter_id=entry.get("nni_parameter_id"))

    # -- Optuna-driven strategies -----------------------------------------------------------------

    def _annotate(self, event, trial: optuna.trial.Trial) -> None:
        model = event.model
        metric = getattr(event, "metric", None)
        for key, value in self.attributes(dict(getattr(model, "sample", None) or {}), metric,
                                          **_identity(model),
                                          fail_reason=failure_reason(model)).items():
            trial.set_user_attr(key, value)

    def _after_told(self, trial_number: int, metric: Any) -> None:
        if self.on_record is not None:
            self.on_record(trial_number, metric if isinstance(metric, dict) else {})

    # -- records ----------------------------------------------------------------------------------

    def attributes(self, sample: dict[str, Any], metrics: dict[str, Any] | None, *, source: str = "trial",
                   nni_trial: Any = None, fail_reason: str | None = None,
                   nni_parameter_id: int | None = None) -> dict[str, Any]:
        metrics = metrics if isinstance(metrics, dict) else {}
        attrs: dict[str, Any] = {**self.common, "architecture": json.dumps(sample, sort_keys=True),
                                 "source": source, "nni_trial": None if nni_trial is None else str(nni_trial),
                                 "nni_parameter_id": None if nni_parameter_id is None else int(nni_parameter_id)}
        for key in ("ssim", "psnr_rgb", "train_seconds", "steps", "default"):  # default: the scalarised objective
            value = _finite(metrics.get(key))
            if value is not None:
                attrs[key] = value
        if metrics.get("model_file"):
            attrs["model_file"] = str(metrics["model_file"])
        if fail_reason:
            attrs["fail_reason"] = str(fail_reason)[:500]
        return attrs

    def record(self, sample: dict[str, Any], metrics: dict[str, Any] | None, *, source: str = "trial",
               nni_trial: Any = None, fail_reason: str | None = None, token: str | None = None,
               nni_parameter_id: int | None = None) -> int:
        """Add one evaluated (or failed) architecture; returns its Optuna trial number."""
        values = objective_values(metrics)
        if values is None and isinstance(metrics, dict):
            fail_reason = fail_reason or f"incomplete objectives in {sorted(metrics)}"
        params = self.encoding.encode(sample) if sample else {}
        attrs = self.attributes(sample, metrics, source=source, nni_trial=nni_trial, fail_reason=fail_reason,
                                nni_parameter_id=nni_parameter_id)
        if token is not None:
            attrs["record_token"] = token
        state = optuna.trial.TrialState.COMPLETE if values is not None else optuna.trial.TrialState.FAIL
        trial = optuna.trial.create_trial(params=params, distributions={k: self.distributions[k] for k in params},
                                          values=values, user_attrs=attrs, state=state)
        self.study.add_trial(trial)
        number = self.study.get_trials(deepcopy=False)[-1].number
        if self.on_record is not None:
            self.on_record(number, metrics or {})
        return number


def _plain(value: Any) -> Any:
    return float(value) if hasattr(value, "__float__") else str(value)


def _identity(model) -> dict[str, Any]:
    """``nni_trial`` and ``nni_parameter_id`` of a model that ran under ``engine: nni`` (both None otherwise):
    :class:`~srnas_nni.nni_adapter.engine.KeepAliveEngine` sets them, the trial being the one that reported its
    metric."""
    return {"nni_trial": getattr(model, "nni_trial_id", None),
            "nni_parameter_id": getattr(model, "nni_parameter_id", None)}


def run_pareto_front(run_dir: Path, study: optuna.Study) -> list[dict[str, Any]]:
    """:func:`pareto_front` with model files relative to ``run_dir`` (the run folder can move)."""
    front = pareto_front(study)
    for entry in front:
        if entry["model_file"]:
            try:
                entry["model_file"] = str(Path(entry["model_file"]).resolve().relative_to(Path(run_dir).resolve()))
            except ValueError:  # kept elsewhere: stays absolute
                pass
    return front


def write_pareto_file(run_dir: Path, study: optuna.Study, *, space_spec: dict[str, Any], scale: int,
                      strategy: str) -> Path:
    """``<run_dir>/pareto.json`` (format ``srnas-pareto/1``), written atomically."""
    front = run_pareto_front(run_dir, study)
    return atomic_write_json(Path(run_dir) / "pareto.json", {
        "format": PARETO_FORMAT, "space": space_spec, "scale": int(scale), "strategy": strategy,
        "objectives": METRIC_NAMES, "front": front,
    })
