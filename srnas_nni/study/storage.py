"""Opening the study every srnas-nni search writes, and the Optuna samplers that can drive it.

The study has the three objectives of :mod:`.objectives` (their directions and metric names), so that
optuna-dashboard shows the Pareto front. It is in memory, SQLite or PostgreSQL (``storage``); workers
and the nnictl tuner open the same study by name.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from ..errors import SRNASError
from .objectives import DIRECTIONS, METRIC_NAMES

__all__ = ["SAMPLERS", "make_sampler", "open_study", "make_study"]

#: Optuna samplers by name (the ``optuna`` strategy's names).
SAMPLERS = {
    "nsga2": "NSGAIISampler",
    "nsga3": "NSGAIIISampler",
    "tpe": "TPESampler",
    "gp": "GPSampler",
    "random": "RandomSampler",
    "evolution": "RegularizedEvolutionSampler",  # ours (evolution_sampler): NNI's aging evolution on a study
}


def make_sampler(name: str, seed: int | None = None, **options: Any) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name (:data:`SAMPLERS`); SRNASError for an unknown name or bad options."""
    if name not in SAMPLERS:
        raise SRNASError(f"unknown Optuna sampler {name!r}; available: {', '.join(SAMPLERS)}")
    if name == "evolution":
        from ..study.evolution_sampler import RegularizedEvolutionSampler as cls
    else:
        cls = getattr(optuna.samplers, SAMPLERS[name])
    try:
        sampler = cls(seed=seed, **options)
    except (TypeError, ValueError) as exc:
        raise SRNASError(f"sampler {name}: bad options {options}: {exc}") from None
    problem = _three_objective_problem(cls, options)
    if problem is not None:
        raise SRNASError(f"sampler {name}: optuna {optuna.__version__} cannot search the three objectives "
                         f"{', '.join(METRIC_NAMES)} with it ({problem}); choose another sampler or upgrade optuna")
    return sampler


def _three_objective_problem(cls: type, options: dict[str, Any]) -> str | None:
    """Why ``cls`` cannot ask a trial of a three-objective study in the installed Optuna, or None.

    Samplers gain multi-objective support over Optuna releases (``GPSampler`` refuses several
    objectives in optuna 4.0, searches them in 5.x), so this asks one trial of a throwaway in-memory
    study with a sampler of its own (the caller's sampler draws nothing).
    """
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line for the probe
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = optuna.create_study(directions=DIRECTIONS, sampler=cls(seed=0, **options))
            probe.ask({"probe": optuna.distributions.CategoricalDistribution([0, 1])})
    except (ValueError, NotImplementedError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    finally:
        optuna.logging.set_verbosity(verbosity)
    return None


def open_study(storage: str | None, study_name: str,
               sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """The three-objective study (created, or loaded when ``storage`` holds it) with its metric names."""
    study = optuna.create_study(study_name=study_name, storage=storage, directions=DIRECTIONS, load_if_exists=True,
                                sampler=sampler)
    with warnings.catch_warnings():  # set_metric_names is marked experimental; relied on knowingly
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(METRIC_NAMES)
    return study


def make_study(sampler: str, seed: int | None, sampler_options: dict[str, Any], storage: str | None,
               study_name: str) -> optuna.Study:
    """:func:`open_study` driven by the sampler named ``sampler`` (:data:`SAMPLERS`)."""
    return open_study(storage, study_name, make_sampler(sampler, seed, **sampler_options))
