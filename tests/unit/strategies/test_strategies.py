"""Strategies by name: the registry, YAML presets, the Pareto archive, the Optuna tuner's HPO configs.
The strategies searching inside ``NasExperiment``: ``tests/integration/test_strategies.py``."""

from __future__ import annotations

import pytest

from srnas_nni.errors import SRNASError
from srnas_nni.evaluation.cost import measure
from srnas_nni.spaces import load_space_preset
from srnas_nni.strategies import get, list_strategies, load_strategy_preset, strategy_preset_names
from srnas_nni.strategies.pareto import ParetoArchive, dominates

BUILTINS = {"random", "evolution", "grid", "tpe", "darts", "gumbel_darts", "proxyless", "random_one_shot"}


def test_builtins_are_registered_and_have_presets():
    assert BUILTINS <= set(list_strategies())
    assert BUILTINS <= set(strategy_preset_names())
    for name in strategy_preset_names():
        assert load_strategy_preset(name) is not None


def test_unknown_or_misconfigured_strategies_are_named():
    with pytest.raises(SRNASError, match="unknown strategy 'randon'.*did you mean 'random'"):
        get("randon")
    with pytest.raises(SRNASError, match="strategy 'evolution': unknown option.*'population'.*population_size"):
        get("evolution", population=3)
    with pytest.raises(SRNASError, match="unknown strategy preset 'nsga'"):
        load_strategy_preset("nsga")


def _m(psnr, params, multadds):
    return {"psnr": psnr, "params": params, "multadds": multadds}


def test_pareto_front_keeps_exactly_the_non_dominated():
    archive = ParetoArchive()
    archive.add({"a": 1}, _m(30.0, 100, 10))   # front: best PSNR
    archive.add({"a": 2}, _m(29.0, 50, 10))    # front: fewer params
    archive.add({"a": 3}, _m(28.0, 60, 10))    # dominated by a=2
    archive.add({"a": 4}, _m(28.0, 200, 1))    # front: fewest Mult-Adds
    archive.add({"a": 5}, {"default": 31.0})   # incomplete: never on the front
    archive.add({"a": 1}, _m(30.0, 100, 10))   # re-evaluated duplicate counts once
    assert [e.sample["a"] for e in archive.front()] == [1, 2, 4]
    assert dominates(_m(30, 1, 1), _m(29, 1, 1)) and not dominates(_m(30, 2, 1), _m(29, 1, 1))
    restored = ParetoArchive()
    restored.load_state_dict(archive.state_dict())
    assert [e.sample for e in restored.front()] == [e.sample for e in archive.front()]


@pytest.mark.parametrize("content, message", [
    ("name: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "mapping with a 'name' key"),
    ("name: random\nseeed: 3\n", "unknown option(s) ['seeed'] (did you mean 'seed'?)"),
])
def test_a_bad_strategy_file_is_named_in_one_line(tmp_path, content, message):
    path = tmp_path / "mine.yaml"
    path.write_text(content)
    with pytest.raises(SRNASError) as excinfo:
        load_strategy_preset(path)
    text = str(excinfo.value)
    assert str(path) in text and message in text and "\n" not in text


def test_optuna_tuner_serves_nni_hpo_configs():
    from srnas_nni.spaces.encoding import SpaceEncoding
    from srnas_nni.nni_tuner import OptunaTuner

    space = load_space_preset("dlsr-proxy")
    encoding = SpaceEncoding(space)
    tuner = OptunaTuner(sampler="random", seed=0)
    tuner.update_search_space(encoding.legacy_search_space())
    for parameter_id in range(3):
        parameters = tuner.generate_parameters(parameter_id)
        model = space.freeze(encoding.decode(parameters))
        cost = measure(model, 2, hr_size=(36, 48))
        tuner.receive_trial_result(parameter_id, parameters,
                                   {"default": 30.0, "psnr": 30.0, "params": cost.params, "multadds": cost.multadds})
        tuner.trial_end(parameter_id, True)
    tuner.generate_parameters(3)
    tuner.trial_end(3, False)  # crashed before reporting
    states = [t.state.name for t in tuner.study.get_trials(deepcopy=False)]
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    with pytest.raises(SRNASError, match="'lr'.*choice"):
        tuner.update_search_space({"lr": {"_type": "loguniform", "_value": [1e-4, 1e-2]}})
