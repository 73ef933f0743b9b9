"""The multi-objective SR evaluator that NNI strategies call.

:class:`SREvaluator` is an NNI ``FunctionalEvaluator``: in a multi-trial ``NasExperiment`` NNI
hands it each frozen candidate; it trains the candidate within the configured budget, validates it
on whole images, counts its parameters and Mult-Adds (1280x720 convention), and reports a dict::

    {"default": <scalarised objective>, "psnr": ..., "ssim": ..., "psnr_rgb": ...,
     "params": ..., "multadds": ..., "train_seconds": ..., "steps": ..., "scale": ...,
     "objective": "<name>", "architecture": {<label>: <choice>, ...} or None}

through ``nni.report_intermediate_result`` (at each validation) and ``nni.report_final_result``.
NNI ranks by ``default`` only; the other keys reach NNI's engine events and the run's recorder.
Outside an NNI experiment the same call returns the dict (NNI's report functions only log there).

A candidate whose loss becomes NaN/inf raises :class:`~srnas_nni.errors.TrainingDivergedError`
(after a one-line warning naming the reason): NNI records a failed trial and, with
``continue_on_failure``, the search goes on. Every :class:`~srnas_nni.errors.SRNASError` of a trial
(an image that cannot be decoded, a data set that cannot be opened) is the same: one warning line
``candidate failed: <reason>`` on the console, NNI's traceback only in the experiment log, the
reason in the study's ``fail_reason``.

All constructor arguments are plain data (strings, numbers, dicts), so the evaluator serialises
for NNI's training-service engine and re-creates itself in trial processes.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import SRNASError
from ..nni_adapter.loader import nni
from ..runtime import seed_everything
from .cost import measure
from .data import open_dataset
from .objectives import make_scalarization
from .trainer import TrainConfig, Trainer

from ..nni_adapter.evaluators import FunctionalEvaluator  # noqa: E402
from ..nni_adapter.failures import set_failure_reason  # noqa: E402

__all__ = ["SREvaluator", "evaluate_sr_model"]

_logger = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _cached_dataset(spec: str, scale: int, split: str, skip_bad: bool, cache_dir: str | None):
    # Trials in one process share decoded images and their LR versions.
    return open_dataset(spec, scale, split=split, skip_bad=skip_bad, cache_dir=cache_dir)


def evaluate_sr_model(model: nn.Module, *, architecture: dict | None = None, scale: int = 2,
                      train_data: str = "builtin", val_data: str = "builtin:val",
                      train: dict | None = None, objective: str = "psnr",
                      objective_options: dict | None = None, hr_size: tuple[int, int] | list[int] = (720, 1280),
                      skip_bad: bool = False, cache_dir: str | None = None,
                      output_dir: str | None = None, report: bool = True, models_dir: str | None = None,
                      space_spec: dict | None = None) -> dict[str, Any]:
    """Train, validate and cost one candidate; report to NNI; return the metric dict.

    With ``models_dir`` and ``space_spec`` (``{"space": name, "space_kwargs": {...}}``) the trained
    candidate is kept as a model file ``<models_dir>/<sample key>/model.pt`` (``model_file`` in the
    result), which ``srnas export`` / ``evaluate`` / ``upscale`` take.
    """
    config = TrainConfig.from_dict(train)
    scalarize = make_scalarization(objective, **(objective_options or {}))
    try:
        # An image that fails only when decoded (its header was fine at the start of the run) fails here.
        train_set = _cached_dataset(str(train_data), int(scale), "train", bool(skip_bad), cache_dir)
        val_set = _cached_dataset(str(val_data), int(scale), "val", bool(skip_bad), cache_dir)
        cost = measure(model, int(scale), hr_size=tuple(hr_size))

        def on_validation(step: int, result) -> None:
            if report:
                metrics = {"psnr": result.psnr, "params": cost.params, "multadds": cost.multadds}
                nni.report_intermediate_result(
                    {"default": scalarize(metrics), "psnr": result.psnr, "ssim": result.ssim, "step": step}
                )

        seed_everything(config.seed)
        trainer = Trainer(model, train_set, val_set, config, output_dir=output_dir, on_validation=on_validation)
        started = time.perf_counter()
        outcome = trainer.fit(resume=output_dir is not None)
    except SRNASError as exc:
        # In an NNI trial (report=True), the one console line of a candidate failing for its input or
        # budget; NNI's traceback of it goes to the experiment log only (nni_adapter.loader.quiet_console).
        # Other callers (the worker, which prints its own line per trial) get the exception alone.
        if report:
            _logger.warning("candidate failed: %s", exc)
        raise
    validation = outcome.validation
    assert validation is not None  # val_set is always given here
    result: dict[str, Any] = {
        "psnr": validation.psnr,
        "ssim": validation.ssim,
        "psnr_rgb": validation.psnr_rgb,
        "params": cost.params,
        "multadds": cost.multadds,
        "train_seconds": outcome.train_seconds,
        "wall_seconds": time.perf_counter() - started,
        "steps": outcome.steps,
        "scale": int(scale),
        "objective": objective,
        "architecture": architecture,
    }
    result["default"] = scalarize(result)
    if models_dir is not None and space_spec is not None and architecture is not None:
        from ..models.registry import save_model_file
        from ..study.keys import sample_key

        path = Path(models_dir) / sample_key(architecture) / "model.pt"
        spec = {**space_spec, "sample": architecture, "scale": int(scale)}
        save_model_file(path, model, spec, int(scale), extra={"psnr": result["psnr"], "ssim": result["ssim"]})
        result["model_file"] = str(path)
    if report:
        nni.report_final_result(result)
    return result


class SREvaluator(FunctionalEvaluator):
    """Train-validate-cost evaluator for SR candidates (see the module docstring).

    Args:
        scale: SR factor (2, 3, 4).
        train_data: ``"builtin"``, a folder of HR images or a DIV2K-style root.
        val_data: the same forms; ``"builtin:val"`` by default.
        train: :class:`~srnas_nni.evaluation.trainer.TrainConfig` fields (steps, batch_size,
            patch_size, learning_rate, loss, ...).
        objective: scalarisation name (``psnr``, ``hnas``, ``deconas``, ``budget``) and
            ``objective_options`` its keyword options.
        hr_size: HR size at which Mult-Adds are counted.
        skip_bad: skip unreadable images with a warning instead of failing.
        cache_dir: where LR images made on the fly are cached on disk.
        models_dir, space_spec: keep each trained candidate as a model file (see
            :func:`evaluate_sr_model`).
    """

    def __init__(self, *, scale: int = 2, train_data: str = "builtin", val_data: str = "builtin:val",
                 train: dict | None = None, objective: str = "psnr", objective_options: dict | None = None,
                 hr_size: tuple[int, int] | list[int] = (720, 1280), skip_bad: bool = False,
                 cache_dir: str | None = None, models_dir: str | None = None, space_spec: dict | None = None):
        arguments = {
            "scale": int(scale),
            "train_data": str(train_data),
            "val_data": str(val_data),
            "train": TrainConfig.from_dict(train).as_dict(),  # validated now, not in the first trial
            "objective": objective,
            "objective_options": dict(objective_options or {}),
            "hr_size": [int(v) for v in hr_size],
            "skip_bad": bool(skip_bad),
            "cache_dir": None if cache_dir is None else str(cache_dir),
            "models_dir": None if models_dir is None else str(models_dir),
            "space_spec": None if space_spec is None else dict(space_spec),
        }
        make_scalarization(objective, **arguments["objective_options"])  # fail fast on bad options
        super().__init__(evaluate_sr_model, **arguments)

    @property
    def trace_kwargs(self) -> dict[str, Any]:
        # Re-creating from these arguments gives an equal evaluator (NNI serialises through them).
        return dict(self.arguments)

    def _execute(self, model) -> Any:
        # NNI passes the executable model space here; keep its sample as the architecture.
        try:
            return self.evaluate(model.executable_model(), architecture=dict(getattr(model, "sample", {}) or {}))
        except Exception as exc:
            # NNI records only "failed"; the reason goes with the model to the tracking layer.
            set_failure_reason(model, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500])
            raise

    def evaluate(self, model: nn.Module, architecture: dict | None = None) -> dict[str, Any]:
        return self.function(model, architecture=architecture, **self.arguments)
