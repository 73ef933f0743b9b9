"""The Optuna strategy's checkpoint round trip, importable on its own: the strategy-state tests run it
in this process and, in a subprocess with the oldest Optuna ``pyproject.toml`` allows first on
``PYTHONPATH``, as ``from tests.support.optuna_state import round_trip``.
"""

from __future__ import annotations

import json
from typing import Any

import optuna

from srnas_nni.errors import SRNASError
from srnas_nni.study.storage import make_study

#: Small populations and start-ups, so that the samplers' own algorithms (not their random start) run.
SAMPLER_OPTIONS: dict[str, dict[str, Any]] = {
    "nsga2": {"population_size": 3}, "nsga3": {"population_size": 3}, "tpe": {"n_startup_trials": 3},
    "gp": {"n_startup_trials": 3}, "random": {}, "evolution": {"population_size": 3, "sample_size": 2},
}


def _distributions() -> dict[str, optuna.distributions.CategoricalDistribution]:
    choices = {"op": ["conv3", "conv5", "skip", "sep3"], "width": [8, 16, 32], "depth": [1, 2, 3],
               "act": ["relu", "prelu"]}
    return {name: optuna.distributions.CategoricalDistribution(values) for name, values in choices.items()}


def _objectives(params: dict[str, Any]) -> list[float]:
    size = {"conv3": 9, "conv5": 25, "skip": 0, "sep3": 4}[params["op"]] * params["width"] * params["depth"]
    return [28.0 + size ** 0.5 / 10.0 + (params["act"] == "prelu") * 0.1, float(size), float(size) * 100.0]


def _strategy(sampler: str):
    from srnas_nni.strategies.optuna import OptunaStrategy

    strategy = OptunaStrategy(sampler, seed=11, sampler_options=SAMPLER_OPTIONS[sampler])
    # What ``initialize`` does for the study (the engine is not needed to ask, tell and checkpoint).
    strategy.study = make_study(sampler, 11, SAMPLER_OPTIONS[sampler], None, strategy.study_name)
    return strategy


def _ask_and_tell(study: optuna.Study, count: int) -> list[dict[str, Any]]:
    asked = []
    for _ in range(count):
        trial = study.ask(_distributions())
        asked.append(dict(trial.params))
        study.tell(trial, _objectives(trial.params))
    return asked


def _without_pickles(value: Any) -> Any:
    """``value`` through JSON: raises TypeError on anything but plain data (as a checkpoint must hold)."""
    return json.loads(json.dumps(value, allow_nan=False))


def round_trip(sampler: str) -> dict[str, Any]:
    """Checkpoint an Optuna strategy mid-search and restore it into a rebuilt one; report what each samples.

    The checkpoint is taken with one result held back (deferred tell) and one trial in flight, as the
    search runner takes it. The uninterrupted strategy then tells the held-back result and fails the
    trial in flight (as the resumed one does on load), and both draw six more trials.
    """
    try:
        first = _strategy(sampler)
    except SRNASError as exc:
        return {"sampler": sampler, "optuna": optuna.__version__, "unsupported": str(exc)}
    study = first.study
    _ask_and_tell(study, 5)
    held_back = study.ask(_distributions())
    first.defer_tells = True
    first._told(held_back, _objectives(held_back.params), None)
    in_flight = study.ask(_distributions())
    checkpoint = _without_pickles(first.state_dict())

    first.flush_tells()
    study._storage.set_trial_user_attr(in_flight._trial_id, "fail_reason",
                                       "interrupted: the search stopped while it ran")
    study.tell(in_flight.number, state=optuna.trial.TrialState.FAIL)
    expected = _ask_and_tell(study, 6)

    resumed = _strategy(sampler)
    resumed.load_state_dict(checkpoint)
    restored = [(t.number, t.state.name, t.values, t.params, t.user_attrs)
                for t in resumed.study.get_trials(deepcopy=False)]
    original = [(t.number, t.state.name, t.values, t.params, t.user_attrs)
                for t in study.get_trials(deepcopy=False)[:len(restored)]]
    resumed_samples = _ask_and_tell(resumed.study, 6)

    # Without the saved generators the rebuilt sampler is re-seeded from (seed, trials so far): another draw.
    reseeded = _strategy(sampler)
    reseeded.load_state_dict({key: value for key, value in checkpoint.items() if key != "sampler"})
    return {"sampler": sampler, "optuna": optuna.__version__, "optuna_file": optuna.__file__,
            "same_trials": restored == original and len(restored) == 7,
            "states": [state for _, state, *_ in restored],
            "same_samples": resumed_samples == expected,
            "reseeded_samples_differ": _ask_and_tell(reseeded.study, 6) != expected}
