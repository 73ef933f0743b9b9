"""Every strategy preset on every proxy space it supports, inside ``NasExperiment``, and resumed.

The matrix is built from what is registered: a new preset in ``strategies/`` or a new proxy space
joins it without editing this file. Multi-trial strategies run with a fake-training evaluator (the
true cost of each frozen model, a PSNR that depends on it); one-shot strategies train their supernet
for two steps on tiny patches. Resume goes through NNI's own path (``NasExperiment.resume`` with the
same id and working directory): completed trials are neither lost nor run again, and a supernet
continues from its last Lightning checkpoint.
"""

from __future__ import annotations

import logging

import pytest
import torch

from srnas_nni.errors import SRNASError
from srnas_nni.evaluation.cost import measure
from srnas_nni.evaluation.lightning import sr_lightning_evaluator
from srnas_nni.nni_adapter.loader import nni
from srnas_nni.spaces import load_space_preset
from srnas_nni.strategies import check_compatible, load_strategy_preset, strategy_preset_names

from tests.support.lightning import RecordBatches

from nni.nas.evaluator import FunctionalEvaluator  # noqa: E402
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402
from nni.nas.oneshot.pytorch.strategy import OneShotStrategy  # noqa: E402

#: Cheapest first: the resume test uses the first space a strategy supports.
PROXY_SPACES = ["deconas-proxy", "dlsr-proxy", "hinas-proxy", "hnas-proxy", "trilevel-proxy"]
#: Small populations so that evolutionary presets get past their initial sampling within the budget.
SMALL = {"evolution": {"population_size": 2, "sample_size": 2}, "nsga2": {"sampler_options": {"population_size": 2}},
         "nsga3": {"sampler_options": {"population_size": 2}}}


def _fake_training(model):
    cost = measure(model, model.scale, hr_size=(12 * model.scale, 16 * model.scale))
    psnr = 30.0 - abs(cost.params - 27_000) / 10_000.0
    nni.report_final_result({"default": psnr, "psnr": psnr, "params": cost.params, "multadds": cost.multadds})


def _strategy(name: str):
    return load_strategy_preset(name, **SMALL.get(name, {}))


def _is_one_shot(strategy) -> bool:
    return isinstance(strategy, OneShotStrategy)


def _cases():
    for name in strategy_preset_names():
        for space in PROXY_SPACES:
            yield pytest.param(name, space, id=f"{name}-{space}")


def _config(tmp_path, max_trials: int | None = None) -> NasExperimentConfig:
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path / "nni")
    config.execution_engine.continue_on_failure = True
    if max_trials is not None:
        config.max_trial_number = max_trials
    return config


def _lightning(space, image_folder, steps: int, checkpoint_dir=None):
    return sr_lightning_evaluator(scale=space.scale, train_data=str(image_folder), val_data=str(image_folder),
                                  steps=steps, val_batches=1, patch_size=8 * space.scale, batch_size=2, device="cpu",
                                  checkpoint_dir=checkpoint_dir, checkpoint_every=1)


def _supported_or_skip(name: str, space_name: str):
    strategy = _strategy(name)
    space = load_space_preset(space_name)
    try:
        check_compatible(strategy, space)
    except SRNASError as exc:
        pytest.skip(str(exc))
    return strategy, space


@pytest.fixture(autouse=True)
def _quiet_nni():
    logging.getLogger("nni").setLevel(logging.ERROR)
    yield
    logging.getLogger("nni").setLevel(logging.INFO)


@pytest.mark.parametrize("name, space_name", list(_cases()))
def test_strategy_runs_end_to_end(name, space_name, image_folder, tmp_path):
    strategy, space = _supported_or_skip(name, space_name)
    torch.manual_seed(0)
    if _is_one_shot(strategy):
        evaluator = _lightning(space, image_folder, steps=2)
        config = _config(tmp_path)
    else:
        evaluator = FunctionalEvaluator(_fake_training)
        config = _config(tmp_path, max_trials=3)
    experiment = NasExperiment(space, evaluator, strategy, config=config)
    experiment.run()
    try:
        exported = experiment.export_top_models(formatter="dict")
        probabilities = strategy.export_probabilities() if hasattr(strategy, "export_probabilities") else None
    finally:
        experiment.stop()
    assert exported, f"{name} on {space_name} exported nothing"
    fresh = load_space_preset(space_name)
    assert set(exported[0]) == set(fresh.simplify())
    fresh.freeze(exported[0])  # a valid architecture of the space
    if probabilities is not None:  # one-shot strategies export their per-label distributions
        assert set(probabilities) <= set(fresh.simplify()) and probabilities
        for label, distribution in probabilities.items():
            total = sum(distribution.values())
            chosen = getattr(fresh.simplify()[label], "n_chosen", None) or 1
            assert 0.999 <= total / chosen <= 1.001 or label.endswith("inputs"), (label, distribution)
    if not _is_one_shot(strategy):
        assert len(list(strategy.list_models(sort=False))) == 3


def _resume_cases():
    """Each preset once, on the first proxy space it supports."""
    for name in strategy_preset_names():
        yield pytest.param(name, id=name)


@pytest.mark.parametrize("name", list(_resume_cases()))
def test_strategy_resumes_without_losing_or_repeating_work(name, image_folder, tmp_path):
    for space_name in PROXY_SPACES:
        try:
            check_compatible(_strategy(name), load_space_preset(space_name))
            break
        except SRNASError:
            continue
    else:
        pytest.skip(f"{name} supports no proxy space")
    space = load_space_preset(space_name)
    first_strategy = _strategy(name)
    torch.manual_seed(0)
    if _is_one_shot(first_strategy):
        # Interrupted after the second of four batches, as a crash would; resumed from last.ckpt.
        checkpoints = tmp_path / "checkpoints"
        crashing = RecordBatches(crash_after=2)
        evaluator = _lightning(space, image_folder, 4, checkpoints)
        evaluator.trainer.callbacks.append(crashing)
        first = NasExperiment(space, evaluator, first_strategy, config=_config(tmp_path))
        first.run()
        first.stop()
        assert len(crashing.seen) == 2 and (checkpoints / "last.ckpt").is_file()
        resumed = RecordBatches()
        evaluator = _lightning(space, image_folder, 4, checkpoints)
        evaluator.trainer.callbacks.append(resumed)
        second_strategy = _strategy(name)
        second = NasExperiment(load_space_preset(space_name), evaluator, second_strategy, config=_config(tmp_path),
                               id=first.id)
        second.resume()
        try:
            exported = second.export_top_models(formatter="dict")
        finally:
            second.stop()
        assert resumed.seen[:2] != crashing.seen  # it did not start over
        assert len(resumed.seen) >= 2 and exported
        return

    first = NasExperiment(space, FunctionalEvaluator(_fake_training), first_strategy, config=_config(tmp_path, 3))
    first.run()
    first.stop()
    done = [(e.sample, e.metrics) for e in first_strategy.archive.entries]
    assert len(done) == 3
    # NNI logs a checkpoint it cannot write and goes on: the file must exist, and hold only plain data and
    # tensors (weights_only refuses any pickled object: a sampler, a numpy array, an NNI class).
    checkpoint = tmp_path / "nni" / first.id / "checkpoint" / "state.ckpt.torch"
    assert checkpoint.is_file(), f"{name} wrote no checkpoint"
    torch.load(checkpoint, weights_only=True)
    second_strategy = _strategy(name)
    second = NasExperiment(load_space_preset(space_name), FunctionalEvaluator(_fake_training), second_strategy,
                           config=_config(tmp_path, 6), id=first.id)
    second.resume()
    try:
        submitted_again = list(second_strategy.list_models(sort=False))
        entries = second_strategy.archive.entries
    finally:
        second.stop()
    assert len(submitted_again) == 3  # only the remaining budget ran
    assert [(e.sample, e.metrics) for e in entries[:3]] == done  # nothing completed was lost
    assert len(entries) == 6
