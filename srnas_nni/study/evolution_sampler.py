"""Regularized (aging) evolution as an Optuna sampler, so that many workers can evolve one shared study.

NNI's ``RegularizedEvolution`` keeps its population in the strategy's memory, which one process owns.
:class:`RegularizedEvolutionSampler` runs the same algorithm (Real et al., 2019) with the study as its
memory: the population is the ``population_size`` most recent complete trials (by trial number, so the
oldest die first), a tournament of ``sample_size`` members picks the parent with the best fitness, and
the child is the parent with each categorical parameter resampled with probability ``mutation_prob``
(at least one is changed). With ``crossover`` the child starts from a uniform crossover of two
tournament winners. Until the population is full, architectures are drawn uniformly at random.

Fitness is the trial's ``default`` user attribute (the scalarised objective the evaluator reports,
which srnas-nni studies record) when present, else the first objective (PSNR). Any process sharing the
study's storage shares the population; the sampler itself holds only its random generator.

This module imports Optuna only (it is used by the NNI tuner process, which must start quickly).
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

__all__ = ["RegularizedEvolutionSampler"]


class RegularizedEvolutionSampler(BaseSampler):
    """Aging evolution over categorical parameters (see the module docstring).

    Args:
        population_size: complete trials that form the population (the newest ones).
        sample_size: tournament size.
        mutation_prob: probability of resampling each parameter of the parent.
        crossover: start the child from a uniform crossover of two tournament winners.
        dedup: avoid children identical to an architecture the study already holds (a few attempts).
        seed: seed of the sampler's random generator.
    """

    def __init__(self, population_size: int = 100, sample_size: int = 25, mutation_prob: float = 0.05,
                 crossover: bool = False, dedup: bool = True, seed: int | None = None):
        if not isinstance(population_size, int) or population_size < 1:
            raise ValueError(f"population_size must be a positive integer, got {population_size!r}")
        if not isinstance(sample_size, int) or not 1 <= sample_size <= population_size:
            raise ValueError(f"sample_size must be an integer in 1..population_size, got {sample_size!r}")
        if not 0.0 <= float(mutation_prob) <= 1.0:
            raise ValueError(f"mutation_prob must be in [0, 1], got {mutation_prob!r}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_prob = float(mutation_prob)
        self.crossover = bool(crossover)
        self.dedup = bool(dedup)
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    # -- relative sampling: one parent per trial ---------------------------------------------------

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        population = self._population(study)
        if len(population) < self.population_size:
            return {}
        space = optuna.search_space.intersection_search_space(population)
        return {name: dist for name, dist in space.items() if isinstance(dist, CategoricalDistribution)}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        population = self._population(study)
        held = self._held(study) if self.dedup else set()
        child: dict[str, Any] = {}
        for _ in range(10):
            child = self._child(population, search_space)
            if _key(child) not in held:
                break
        return child

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if isinstance(param_distribution, CategoricalDistribution):
            return param_distribution.choices[self._rng.randint(len(param_distribution.choices))]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    # -- the algorithm -----------------------------------------------------------------------------

    def _population(self, study: optuna.Study) -> list[FrozenTrial]:
        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if t.user_attrs.get("source", "trial") == "trial"]
        complete.sort(key=lambda t: t.number)
        return complete[-self.population_size:]

    def _tournament_winner(self, population: list[FrozenTrial]) -> FrozenTrial:
        picks = self._rng.choice(len(population), size=min(self.sample_size, len(population)), replace=False)
        return max((population[i] for i in picks), key=_fitness)

    def _child(self, population: list[FrozenTrial], space: dict[str, BaseDistribution]) -> dict[str, Any]:
        parent = dict(self._tournament_winner(population).params)
        if self.crossover:
            other = self._tournament_winner(population).params
            parent = {name: (other[name] if name in other and self._rng.rand() < 0.5 else value)
                      for name, value in parent.items()}
        child = {name: parent[name] for name in space if name in parent}
        mutable = [name for name in child if len(space[name].choices) > 1]
        mutated = [name for name in mutable if self._rng.rand() < self.mutation_prob]
        if not mutated and mutable:  # a child identical to its parent would waste a trial
            mutated = [mutable[self._rng.randint(len(mutable))]]
        for name in mutated:
            others = [c for c in space[name].choices if c != child[name]]
            child[name] = others[self._rng.randint(len(others))]
        return child

    @staticmethod
    def _held(study: optuna.Study) -> set[str]:
        states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        return {_key(t.params) for t in study.get_trials(deepcopy=False, states=states)}


def _fitness(trial: FrozenTrial) -> float:
    value = trial.user_attrs.get("default")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    values: Sequence[float] | None = trial.values
    return float(values[0]) if values else -math.inf


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
