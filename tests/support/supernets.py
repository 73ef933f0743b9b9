"""One-shot searches inside ``NasExperiment`` in this process, for the differentiable strategies' tests."""

from __future__ import annotations

from srnas_nni.nni_adapter.loader import nni  # noqa: F401  (NNI patched before its NAS stack loads)

from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402


def supernet_evaluator(image_folder, steps, learning_rate=2e-4, scale=2):
    """Lightning training on ``image_folder`` for ``steps`` steps on 16-pixel patches, on the CPU."""
    from srnas_nni.evaluation.lightning import sr_lightning_evaluator

    return sr_lightning_evaluator(scale=scale, train_data=str(image_folder), val_data=str(image_folder), steps=steps,
                                  val_batches=1, patch_size=16, batch_size=2, device="cpu",
                                  learning_rate=learning_rate)


def run_supernet_search(space, strategy, image_folder, tmp_path, steps, learning_rate=2e-4):
    """``strategy`` searching ``space`` inside a sequential ``NasExperiment`` working in ``tmp_path``; the
    experiment, run (stop it when done)."""
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path)
    experiment = NasExperiment(space, supernet_evaluator(image_folder, steps, learning_rate, space.scale), strategy,
                               config=config)
    experiment.run()
    return experiment
