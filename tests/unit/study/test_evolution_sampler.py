"""The regularized evolution sampler (``srnas_nni.study.evolution_sampler``): random until the population
is full, then children one mutation from a tournament winner of the newest trials; options checked."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from srnas_nni.study.evolution_sampler import RegularizedEvolutionSampler

SPACE = {f"layer{i}": CategoricalDistribution(["a", "b", "c", "d"]) for i in range(6)}


# -- the evolution sampler ------------------------------------------------------------------------


def _study_with(population: list[tuple[dict, float]], sampler) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)
    for params, psnr in population:
        study.add_trial(optuna.trial.create_trial(params=params, distributions=SPACE, values=[psnr, 1.0, 1.0]))
    return study


def _params(seed: int) -> dict:
    import random

    rng = random.Random(seed)
    return {name: rng.choice(dist.choices) for name, dist in SPACE.items()}


def test_evolution_samples_at_random_until_the_population_is_full():
    sampler = RegularizedEvolutionSampler(population_size=5, sample_size=2, seed=0)
    study = _study_with([(_params(i), 30.0 + i) for i in range(4)], sampler)
    assert sampler.infer_relative_search_space(study, None) == {}
    study.add_trial(optuna.trial.create_trial(params=_params(9), distributions=SPACE, values=[31.0, 1.0, 1.0]))
    assert set(sampler.infer_relative_search_space(study, None)) == set(SPACE)


def test_evolution_children_are_one_mutation_from_a_tournament_winner_of_the_newest_trials():
    # The oldest trial is the best, but it has aged out of the population of the 4 newest.
    best_but_old = {name: "a" for name in SPACE}
    population = [(best_but_old, 40.0)] + [(_params(i), 20.0 + i) for i in range(1, 5)]
    sampler = RegularizedEvolutionSampler(population_size=4, sample_size=4, mutation_prob=0.0, seed=1)
    study = _study_with(population, sampler)
    winner = population[-1][0]  # a tournament over the whole population picks its best
    for _ in range(5):
        trial = study.ask(SPACE)
        differences = [name for name in SPACE if trial.params[name] != winner[name]]
        assert len(differences) == 1, (trial.params, winner)  # mutation_prob 0 still changes one parameter
        study.tell(trial, state=TrialState.FAIL)


def test_evolution_prefers_the_recorded_scalarised_objective_over_psnr():
    sampler = RegularizedEvolutionSampler(population_size=2, sample_size=2, mutation_prob=0.0, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)
    high_psnr, high_default = _params(1), _params(2)
    study.add_trial(optuna.trial.create_trial(params=high_psnr, distributions=SPACE, values=[35.0, 1.0, 1.0],
                                              user_attrs={"default": 1.0}))
    study.add_trial(optuna.trial.create_trial(params=high_default, distributions=SPACE, values=[30.0, 1.0, 1.0],
                                              user_attrs={"default": 2.0}))
    child = study.ask(SPACE).params
    assert sum(child[n] != high_default[n] for n in SPACE) == 1


def test_evolution_rejects_bad_options():
    with pytest.raises(ValueError, match="sample_size"):
        RegularizedEvolutionSampler(population_size=3, sample_size=5)
    with pytest.raises(ValueError, match="mutation_prob"):
        RegularizedEvolutionSampler(mutation_prob=1.5)
