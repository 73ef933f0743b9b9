"""The contract every search space honours, checked on each space's proxy preset.

Space-specific facts (published presets, structure) live in ``tests/unit/spaces/test_<name>.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from srnas_nni.cli import main
from srnas_nni.evaluation.cost import measure
from srnas_nni.models.registry import build_from_spec
from srnas_nni.nni_adapter.loader import nni
from srnas_nni.spaces import SPACE_PRESET_DIR, SRModelSpace, list_spaces, load_space_preset
from srnas_nni.spaces.base import NNI_MODULE_PREFIX

from nni.mutable import SampleValidationError  # noqa: E402
from nni.nas.evaluator import FunctionalEvaluator  # noqa: E402
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402
from nni.nas.space import ModelStatus  # noqa: E402
from nni.nas.strategy import Random, RandomOneShot  # noqa: E402

PROXIES = sorted(p.stem for p in SPACE_PRESET_DIR.glob("*-proxy.yaml"))
SPACES_WITH_PRESETS = sorted({p[: -len("-proxy")] for p in PROXIES})


def _samples(space: SRModelSpace, count: int, seed: int = 0) -> list[dict]:
    rng = np.random.RandomState(seed)
    return [space.random_sample(rng) for _ in range(count)]


def test_every_space_has_a_paper_and_a_proxy_preset():
    assert set(list_spaces()) == set(SPACES_WITH_PRESETS)
    for name in list_spaces():
        assert (SPACE_PRESET_DIR / f"{name}.yaml").exists() and (SPACE_PRESET_DIR / f"{name}-proxy.yaml").exists()


@pytest.mark.parametrize("proxy", PROXIES)
def test_random_samples_freeze_to_plain_networks_that_run_and_learn(proxy):
    space = load_space_preset(proxy)
    scale = space.scale
    torch.manual_seed(0)
    for sample in _samples(space, 30):
        assert json.loads(json.dumps(sample)) == sample
        model = space.freeze(sample)
        leftovers = [type(m).__name__ for m in model.modules() if type(m).__module__.startswith(NNI_MODULE_PREFIX)]
        assert not leftovers, (sample, leftovers)
        assert model.scale == scale and model.in_channels == 3
        x = torch.rand(1, 3, 17, 23)
        y = model(x)
        assert y.shape == (1, 3, 17 * scale, 23 * scale), sample
        assert torch.isfinite(y).all(), sample
        y.mean().backward()
        assert any(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()), sample


@pytest.mark.parametrize("proxy", PROXIES)
def test_cost_model_equals_the_frozen_count(proxy):
    space = load_space_preset(proxy)
    for sample in _samples(space, 8, seed=1):
        counted = measure(space.freeze(sample), space.scale)
        predicted = space.cost(sample)
        assert (predicted.params, predicted.multadds) == (counted.params, counted.multadds), sample


@pytest.mark.parametrize("proxy", PROXIES)
def test_invalid_samples_name_the_label(proxy):
    space = load_space_preset(proxy)
    sample = _samples(space, 1)[0]
    with pytest.raises(SampleValidationError, match="no/such/label"):
        space.freeze({**sample, "no/such/label": 1})
    label = sorted(sample)[0]
    with pytest.raises(SampleValidationError, match=label):
        space.freeze({**sample, label: "not-a-choice"})
    with pytest.raises(SampleValidationError, match=label):
        space.freeze({k: v for k, v in sample.items() if k != label})


@pytest.mark.parametrize("proxy", PROXIES)
def test_a_space_spec_rebuilds_the_same_network(proxy):
    space = load_space_preset(proxy)
    sample = _samples(space, 1, seed=2)[0]
    spec = {"space": proxy.rsplit("-proxy", 1)[0], "space_kwargs": _preset_kwargs(proxy),
            "sample": json.loads(json.dumps(sample))}
    rebuilt = build_from_spec(spec)
    assert measure(rebuilt, space.scale).params == space.cost(sample).params


def _preset_kwargs(proxy: str) -> dict:
    data = yaml.safe_load((SPACE_PRESET_DIR / f"{proxy}.yaml").read_text())
    return {k: v for k, v in data.items() if k not in ("space", "description")}


@pytest.mark.parametrize("proxy", PROXIES)
def test_space_info_reports_labels_and_size(capsys, proxy):
    assert main(["space", "info", proxy, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    space = load_space_preset(proxy)
    assert set(info["labels"]) == set(space.simplify())
    assert info["log10_size"] == pytest.approx(sum(np.log10(entry["count"]) for entry in info["labels"].values()))
    assert info["log10_size"] > 0


def _forward_once(model):
    y = model(torch.rand(1, 3, 9, 11))
    nni.report_final_result({"default": float(y.detach().mean()), "params": sum(p.numel() for p in model.parameters())})


@pytest.mark.parametrize("proxy", PROXIES)
def test_multi_trial_random_search_runs_in_nni(proxy, tmp_path):
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path)
    config.max_trial_number = 2
    experiment = NasExperiment(load_space_preset(proxy), FunctionalEvaluator(_forward_once), Random(seed=0),
                               config=config)
    experiment.run()
    try:
        models = list(experiment.strategy.list_models(sort=False))
    finally:
        experiment.stop()
    assert len(models) == 2 and all(m.status == ModelStatus.Trained for m in models)


@pytest.mark.parametrize("proxy", PROXIES)
def test_one_shot_random_supernet_trains_and_exports(proxy, image_folder, tmp_path):
    from srnas_nni.evaluation.lightning import sr_lightning_evaluator

    space = load_space_preset(proxy)
    scale = space.scale
    evaluator = sr_lightning_evaluator(scale=scale, train_data=str(image_folder), val_data=str(image_folder),
                                       steps=3, val_batches=1, patch_size=8 * scale, batch_size=2, device="cpu")
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(tmp_path)
    experiment = NasExperiment(space, evaluator, RandomOneShot(), config=config)
    experiment.run()
    try:
        exported = experiment.export_top_models(formatter="dict")[0]
        inherited = experiment.export_top_models(formatter="instance")[0]  # frozen from the trained supernet
    finally:
        experiment.stop()
    for frozen in (load_space_preset(proxy).freeze(exported), inherited):
        assert not [m for m in frozen.modules() if type(m).__module__.startswith(NNI_MODULE_PREFIX)]
        assert frozen(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8 * scale, 8 * scale)
