"""Experiment files and configurations the tests share: small searches on ``deconas-proxy``."""

from __future__ import annotations

from pathlib import Path

import yaml

from srnas_nni.run.config import parse_config


def nni_engine_config(tmp_path, image_folder, **experiment):
    """Two random trials on NNI's engine, ``experiment`` merged into its section."""
    return parse_config({
        "space": "deconas-proxy", "strategy": {"name": "random", "seed": 0},
        "evaluator": {"data": str(image_folder), "val_data": str(image_folder),
                      "train": {"steps": 2, "batch_size": 2, "patch_size": 16}},
        "experiment": {"engine": "nni", "max_trials": 2, "trial_concurrency": 2, **experiment},
        "output_dir": str(tmp_path / "run"), "tracking": {"study_name": "nni-engine"},
    }, source="test.yaml")


def worker_experiment(tmp_path, image_folder, strategy, **experiment) -> dict:
    """The experiment of the ``srnas worker`` tests, as a dict: six trials of ``strategy``."""
    return {"space": "deconas-proxy", "strategy": strategy,
            "evaluator": {"data": str(image_folder), "val_data": str(image_folder),
                          "train": {"steps": 2, "batch_size": 2, "patch_size": 16}},
            "experiment": {"max_trials": 6, **experiment}, "output_dir": str(tmp_path / "run")}


def data_check_experiment(tmp_path: Path, data: Path, val_data: Path, **evaluator) -> Path:
    """exp.yaml: two random trials on ``data``, ``evaluator`` merged into its section."""
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({
        "space": "deconas-proxy", "strategy": {"name": "random", "seed": 3},
        "evaluator": {"data": str(data), "val_data": str(val_data),
                      "train": {"steps": 2, "batch_size": 2, "patch_size": 16}, **evaluator},
        "experiment": {"max_trials": 2}, "output_dir": str(tmp_path / "run"),
    }))
    return path
