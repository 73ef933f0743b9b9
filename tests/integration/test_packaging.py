"""The package as users install it: a wheel that carries its presets, and a command that starts fast.

The wheel is built from a copy of the sources (nothing written into the checkout), unpacked onto
``PYTHONPATH`` and run from a folder outside the repository, where the top-level ``search_spaces/`` and
``strategies/`` links do not exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from srnas_nni.presets import PUBLISHED_PRESETS, SPACE_PRESETS, STRATEGY_PRESETS

from tests.support.repo import REPO_ROOT

pytestmark = pytest.mark.slow

#: Modules whose import costs seconds; listing names and printing help must not need them.
HEAVY = ("torch", "nni", "pytorch_lightning", "lightning", "optuna")


def _data_files(folder) -> set[str]:
    return {entry.name for entry in folder.iterdir() if entry.name.endswith((".yaml", ".json", ".md"))}


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    shutil.copytree(REPO_ROOT / "srnas_nni", source / "srnas_nni",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(work / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (work / "dist").glob("srnas_nni-*.whl")
    site = work / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def _run_outside(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_wheel_carries_every_preset(unpacked_wheel):
    installed = unpacked_wheel / "srnas_nni" / "presets"
    for folder in (SPACE_PRESETS, STRATEGY_PRESETS, PUBLISHED_PRESETS):
        assert _data_files(installed / folder.name) == _data_files(folder) != set()


def test_an_installed_wheel_lists_and_validates_presets_outside_the_repository(unpacked_wheel, tmp_path):
    where = _run_outside(unpacked_wheel, tmp_path, "-c", "import srnas_nni; print(srnas_nni.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(unpacked_wheel), where

    listed = _run_outside(unpacked_wheel, tmp_path, "-m", "srnas_nni", "space", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    table = yaml.safe_load(listed.stdout)
    assert table["yaml_presets"] == sorted(p[:-5] for p in _data_files(SPACE_PRESETS) if p.endswith(".yaml"))
    assert set(table["published"]) == {p[:-5] for p in _data_files(PUBLISHED_PRESETS)}

    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(yaml.safe_dump({
        "space": "hnas-proxy", "strategy": {"preset": "nsga2"},
        "evaluator": {"data": "builtin", "val_data": "builtin:val"}, "experiment": {"max_trials": 2},
    }))
    validated = _run_outside(unpacked_wheel, tmp_path, "-m", "srnas_nni", "validate", str(experiment))
    assert validated.returncode == 0, validated.stderr
    assert "valid" in validated.stdout and "optuna" in validated.stdout and "hnas" in validated.stdout

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(yaml.safe_dump({"space": "hnas-proxi", "strategy": "nsga2"}))
    refused = _run_outside(unpacked_wheel, tmp_path, "-m", "srnas_nni", "validate", str(unknown))
    assert refused.returncode == 2 and "did you mean 'hnas-proxy'" in refused.stderr


@pytest.mark.parametrize("argv", [["space", "list"], ["--help"], ["--version"], ["search", "--help"]],
                         ids=["space-list", "help", "version", "search-help"])
def test_listing_and_help_import_no_heavy_library(argv):
    code = ("import sys\nfrom srnas_nni.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_version_is_the_package_version():
    from srnas_nni import __version__

    run = subprocess.run([sys.executable, "-m", "srnas_nni", "--version"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == f"srnas {__version__}"
