"""An interrupted supernet search resumes from its Lightning checkpoint exactly where it stopped.

One run of six steps is interrupted after step three (an exception from a callback, as a crash
would); resuming it through NNI (``NasExperiment.resume`` with the same id) must see the same
training batches and end with the same architecture parameters as an uninterrupted run.
"""

from __future__ import annotations

import torch

from srnas_nni.evaluation.lightning import sr_lightning_evaluator
from srnas_nni.spaces import load_space_preset
from srnas_nni.strategies import get

from tests.support.lightning import RecordBatches

from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402


def _experiment(tmp_path, image_folder, recorder, experiment_id=None, checkpoints=True):
    torch.manual_seed(0)
    space = load_space_preset("deconas-proxy")
    evaluator = sr_lightning_evaluator(scale=2, train_data=str(image_folder), val_data=str(image_folder), steps=6,
                                       val_batches=1, patch_size=16, batch_size=2, device="cpu",
                                       checkpoint_dir=tmp_path / "ckpt" if checkpoints else None, checkpoint_every=1)
    evaluator.trainer.callbacks.append(recorder)
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path / "nni")
    config.execution_engine.continue_on_failure = True
    strategy = get("darts")
    return NasExperiment(space, evaluator, strategy, config=config, id=experiment_id), strategy


def _alphas(strategy):
    return [p.detach().clone() for p in strategy.oneshot_module.arch_parameters()]


def test_interrupted_darts_search_resumes_where_it_stopped(tmp_path, image_folder):
    whole = RecordBatches()
    experiment, strategy = _experiment(tmp_path / "whole", image_folder, whole, checkpoints=False)
    experiment.run()
    expected = _alphas(strategy)
    experiment.stop()

    crashing = RecordBatches(crash_after=3)
    first, _ = _experiment(tmp_path / "cut", image_folder, crashing)
    first.run()
    first.stop()
    assert crashing.seen == whole.seen[:3]
    assert (tmp_path / "cut" / "ckpt" / "last.ckpt").is_file()

    resumed = RecordBatches()
    second, strategy = _experiment(tmp_path / "cut", image_folder, resumed, experiment_id=first.id)
    second.resume()
    try:
        assert resumed.seen == whole.seen[3:]  # the remaining batches, not the first ones again
        for got, want in zip(_alphas(strategy), expected):
            assert torch.allclose(got, want, atol=1e-6)
    finally:
        second.stop()
