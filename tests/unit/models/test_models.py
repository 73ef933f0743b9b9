"""Model registry and model specs: names map to builders, specs rebuild models, errors name the culprit."""

from __future__ import annotations

import json

import pytest
import torch

from srnas_nni.errors import ModelSpecError
from srnas_nni.models.registry import build_from_spec, build_model, list_models, resolve_model, save_model_file


def test_baselines_are_registered():
    assert {"bicubic", "srcnn", "fsrcnn", "vdsr", "carn", "carn_m"} <= set(list_models())


def test_spec_json_builds_with_kwargs(tmp_path):
    spec_file = tmp_path / "carn.json"
    spec_file.write_text(json.dumps({"model": "carn", "kwargs": {"multi_scale": False}, "scale": 2}))
    single = resolve_model(str(spec_file)).model
    multi = build_model("carn", 2)
    assert sum(p.numel() for p in single.parameters()) < sum(p.numel() for p in multi.parameters())


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"model": "vdsr"}', "no scale given"),
    ('{"model": "vdsr", "scale": 2, "extra": 1}', "unknown key"),
    ('{"arch": "x"}', "needs one of the keys"),
    ('{"model": "vdsr", "scale": 2, "kwargs": {"nonsense": 3}}', "bad arguments"),
])
def test_bad_spec_files_name_the_file(tmp_path, content, message):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(content)
    with pytest.raises(ModelSpecError) as excinfo:
        resolve_model(str(spec_file))
    assert message in str(excinfo.value) and str(spec_file) in str(excinfo.value)


def test_unsupported_scale_is_refused():
    with pytest.raises(ModelSpecError, match="scales"):
        build_model("srcnn", 8)


def test_model_file_round_trip_keeps_weights(tmp_path):
    torch.manual_seed(0)
    model = build_from_spec({"model": "fsrcnn", "scale": 3})
    path = save_model_file(tmp_path / "m.pt", model, {"model": "fsrcnn", "scale": 3}, 3)
    loaded = resolve_model(str(path))
    assert loaded.trained and loaded.scale == 3
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[name])


def test_a_file_that_is_not_a_model_file(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": 1}, path)
    with pytest.raises(ModelSpecError, match="not an srnas model file"):
        resolve_model(str(path))
    path.write_bytes(b"garbage")
    with pytest.raises(ModelSpecError, match="not a readable model file"):
        resolve_model(str(path))
