"""Experiment files: every problem is one line naming the file, the key path and the value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from srnas_nni.cli import main
from srnas_nni.run.config import ConfigError, apply_overrides, load_config, parse_duration

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))


def _write(tmp_path, data, name="exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


BASE = {"space": "dlsr-proxy", "strategy": "random"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_validates(path):
    config = load_config(path)
    assert config.strategy_name and config.space_spec["space"]
    assert config.output_dir == Path("runs") / path.stem
    assert config.storage_url().startswith("sqlite:///") and config.storage_url().endswith("study.db")


def test_examples_cover_each_seed_system():
    stems = {p.stem for p in EXAMPLES}
    assert {"hnas", "trilevel", "hinas", "dlsr", "deconas"} <= stems
    assert len(stems) > 5  # and cross-combinations


@pytest.mark.parametrize("data, key, fragment", [
    ({**BASE, "strategi": "x"}, "strategi", "did you mean 'strategy'"),
    ({**BASE, "evaluator": {"trian": {}}}, "evaluator.trian", "did you mean 'train'"),
    ({**BASE, "experiment": {"max_trials": "ten"}}, "experiment.max_trials", "expected an integer"),
    ({**BASE, "experiment": {"max_trials": 0}}, "experiment.max_trials", "must be >= 1"),
    ({**BASE, "experiment": {"max_trials": True}}, "experiment.max_trials", "expected an integer"),
    ({**BASE, "experiment": {"max_duration": "soon"}}, "experiment.max_duration", "duration"),
    ({**BASE, "experiment": {"engine": "slurm"}}, "experiment.engine", "sequential, nni"),
    ({**BASE, "experiment": {"port": 70000}}, "experiment.port", "TCP port"),
    ({**BASE, "space": "dlsr-proxi"}, "space", "did you mean 'dlsr-proxy'"),
    ({**BASE, "strategy": "randon"}, "strategy", "did you mean 'random'"),
    ({**BASE, "strategy": {"name": "evolution", "population": 3}}, "strategy", "population_size"),
    ({"space": "hnas-proxy", "strategy": "proxyless"}, "strategy", "cannot search HNASSpace"),
    ({**BASE, "evaluator": {"data": "/no/such/folder"}}, "evaluator.data", "no such folder"),
    ({"space": "hnas-proxy", "strategy": "random", "evaluator": {"scale": 4}}, "evaluator.scale",
     "contradicts the space's scale 2"),
    ({**BASE, "evaluator": {"train": {"steps": -1}}}, "evaluator.train", "steps = -1 must be >= 0"),
    ({**BASE, "evaluator": {"train": {"stepz": 3}}}, "evaluator.train", "stepz"),
    ({**BASE, "evaluator": {"train": {"learning_rate": "fast"}}}, "evaluator.train",
     "learning_rate = 'fast' is str; expected int or float"),
    ({**BASE, "evaluator": {"train": {"amp": 1}}}, "evaluator.train", "amp = 1 is int; expected bool"),
    ({**BASE, "evaluator": {"supernet": {"steps": 0}}}, "evaluator.supernet.steps", "must be >= 1"),
    ({**BASE, "evaluator": {"objective": "speed"}}, "evaluator.objective", "psnr"),
    ({**BASE, "evaluator": {"hr_size": [720]}}, "evaluator.hr_size", "[height, width]"),
    ({"strategy": "random"}, "space", "missing"),
    ({**BASE, "space": {"preset": "dlsr-proxy", "channels": "wide"}}, "space", "channels"),
])
def test_bad_files_give_one_line_naming_the_key(tmp_path, data, key, fragment):
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}:"), message
    assert fragment in message, message


def test_invalid_yaml_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML \(line \d+, column \d+\)"):
        load_config(_write(tmp_path, "space: dlsr-proxy\nstrategy: [random\n"))
    with pytest.raises(ConfigError, match="is a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="no such experiment file"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_and_shorthands(tmp_path):
    path = _write(tmp_path, {**BASE, "evaluator": {"train": {"steps": 50}}})
    config = load_config(path, ["evaluator.train.steps=7", "strategy.seed=3", "experiment.max_duration=2h",
                                "output_dir=elsewhere"])
    assert config.evaluator["train"]["steps"] == 7
    assert config.strategy_name == "random" and config.strategy_options == {"dedup": True, "seed": 3}
    assert parse_duration(config.experiment["max_duration"]) == 7200
    assert config.output_dir == Path("elsewhere")
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["evaluator.train.steps"])
    with pytest.raises(ConfigError, match="space.preset is not a mapping"):
        apply_overrides({"space": "dlsr-proxy"}, ["space.preset.x.y=1"])


def test_smoke_shrinks_every_budget(tmp_path):
    path = _write(tmp_path, {**BASE, "evaluator": {"train": {"steps": 5000, "patch_size": 192}},
                             "experiment": {"max_trials": 500}})
    config = load_config(path, smoke_run=True)
    assert config.evaluator["train"]["steps"] == 2 and config.evaluator["train"]["patch_size"] == 16
    assert config.supernet_budget()["steps"] == 2
    assert config.experiment["max_trials"] == 2
    assert parse_duration(config.experiment["max_duration"]) <= 300


def test_cli_validate_prints_one_error_line(tmp_path, capsys):
    good = _write(tmp_path, BASE, "good.yaml")
    assert main(["validate", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = _write(tmp_path, {**BASE, "experiment": {"trial_concurrency": -2}}, "bad.yaml")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "experiment.trial_concurrency" in err and "-2" in err
