"""Seeds without a search: the experiment's ``seed:`` reaches the strategy's options (an inline one pins
it), and NNI's unseeded draws follow ``seed_everything``. Every preset's search repeated by seed:
``tests/integration/test_seeds.py``."""

from __future__ import annotations

from srnas_nni.run.config import parse_config
from srnas_nni.runtime import numpy_seed, seed_everything
from srnas_nni.strategies import load_strategy_preset


def test_the_experiment_seed_replaces_a_presets_seed_and_an_inline_one_pins_the_strategy():
    def options(strategy, **top) -> dict:
        return parse_config({"space": "deconas-proxy", "strategy": strategy, **top}).strategy_options

    assert load_strategy_preset("evolution")._random_state.get_state()[1][0] == 0  # the preset says seed: 0
    assert options("evolution", seed=7)["seed"] == 7
    assert options({"preset": "nsga2", "sampler_options": {"population_size": 4}}, seed=7)["seed"] == 7
    assert options("evolution")["seed"] == 0  # the experiment's default seed
    assert options({"preset": "evolution", "seed": 3}, seed=7)["seed"] == 3  # written in this file's strategy:
    assert options({"name": "random", "seed": None}, seed=7)["seed"] is None  # fresh entropy, asked for
    assert "seed" not in options("random_one_shot", seed=7)  # no seed option: it draws from seed_everything's
    # Seeds above numpy's 2**32 - 1 still build every seeded strategy, and distinct ones stay distinct.
    large = [options("evolution", seed=seed)["seed"] for seed in (2 ** 40, 2 ** 40 + 1, 2 ** 63 - 1)]
    assert len(set(large)) == 3 and all(0 <= seed < 2 ** 32 for seed in large)
    assert numpy_seed(5) == 5


def test_nni_mutables_drawn_without_a_generator_follow_seed_everything():
    from srnas_nni.nni_adapter.loader import nni  # noqa: F401  (routes NNI's unseeded draws)

    from nni.mutable import Categorical

    choice = Categorical(list(range(1000)), label="x")
    seed_everything(5)
    first = [choice.random() for _ in range(8)]
    seed_everything(5)
    assert [choice.random() for _ in range(8)] == first
    seed_everything(6)
    assert [choice.random() for _ in range(8)] != first
