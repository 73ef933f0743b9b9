"""Strategy checkpoints are plain data that load across Optuna releases, and a checkpoint that cannot be
written stops the search with one line.

* The Optuna strategy's state round trip (save, JSON, restore into a rebuilt strategy, sample on) gives
  the samples the uninterrupted strategy draws, for every sampler, on the installed Optuna and, in a
  subprocess, on the oldest Optuna ``pyproject.toml`` allows: set ``SRNAS_OPTUNA_OLDEST`` to a
  ``pip install --no-deps --target DIR optuna==<lower bound>`` folder (put first on ``PYTHONPATH``).
* A search SIGKILLed inside a trial and resumed ends with exactly ``max_trials`` complete trials, none
  running, and its progress never passes ``N/N``.
* A checkpoint that cannot be written: ``srnas: error: ...`` in one line, exit 2, finished trials kept.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from srnas_nni.study.storage import SAMPLERS

from tests.support.optuna_state import round_trip

ROOT = Path(__file__).resolve().parents[2]
OLDEST_ENV = "SRNAS_OPTUNA_OLDEST"

#: Samplers that an older Optuna may refuse for three objectives (GPSampler is single-objective in 4.0).
MAY_LACK_MULTI_OBJECTIVE = {"gp"}


def _check(report: dict[str, Any]) -> None:
    if "unsupported" in report:
        # Refused up front, in one line naming the Optuna release, not at the first ask of a search.
        assert report["sampler"] in MAY_LACK_MULTI_OBJECTIVE, report
        assert "\n" not in report["unsupported"] and f"optuna {report['optuna']}" in report["unsupported"], report
        return
    assert report["same_trials"], report
    assert report["states"] == ["COMPLETE"] * 6 + ["FAIL"], report  # held-back result told, in-flight failed
    assert report["same_samples"], report
    if report["sampler"] in ("random", "nsga2"):  # draws that depend on nothing but the generators
        assert report["reseeded_samples_differ"], report


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_optuna_strategy_state_round_trip_on_installed_optuna(sampler):
    _check(round_trip(sampler))


def _oldest_allowed_optuna() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'"optuna>=([0-9][0-9.]*)', text)
    assert match, "pyproject.toml names no lower bound for optuna"
    return match.group(1)


def test_optuna_strategy_state_round_trip_on_oldest_optuna():
    folder = os.environ.get(OLDEST_ENV)
    if not folder:
        pytest.skip(f"{OLDEST_ENV} is not set (a 'pip install --no-deps --target DIR optuna==<oldest>' folder)")
    from packaging.version import Version

    script = ("import json, sys\n"
              "from tests.support.optuna_state import round_trip\n"
              "print(json.dumps([round_trip(name) for name in sys.argv[1:]]))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([folder, str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script, *SAMPLERS], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=500)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = json.loads(done.stdout.strip().splitlines()[-1])
    assert Version(reports[0]["optuna"]) == Version(_oldest_allowed_optuna()), reports[0]
    assert all("unsupported" in r or Path(r["optuna_file"]).is_relative_to(folder) for r in reports)
    for report in reports:
        _check(report)


# -- end to end: srnas search ----------------------------------------------------------------------


def _experiment(tmp_path: Path, image_folder, strategy: Any, max_trials: int) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump({
        "space": "deconas-proxy", "strategy": strategy,
        "evaluator": {"data": str(image_folder), "val_data": str(image_folder),
                      "train": {"steps": 2, "batch_size": 2, "patch_size": 16}},
        "experiment": {"max_trials": max_trials}, "output_dir": str(tmp_path / "run"),
    }))
    return path


def _study(run_dir: Path) -> optuna.Study:
    info = json.loads((run_dir / "run.json").read_text())
    return optuna.load_study(study_name=info["study_name"], storage=info["storage"])


def _search(*arguments: str, patch: str = "") -> subprocess.CompletedProcess:
    """``srnas search ARGUMENTS`` in a subprocess (progress as lines: stderr is a pipe), ``patch`` run first."""
    script = f"import sys\n{patch}\nfrom srnas_nni.cli import main\nsys.exit(main(['search', *sys.argv[1:]]))\n"
    return subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True, timeout=400,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


#: SIGKILL's effect, inside the evaluation of the third candidate (after its trial was asked and submitted).
KILL_IN_THIRD_TRIAL = (
    "import os\n"
    "from srnas_nni.evaluation.evaluator import SREvaluator\n"
    "evaluate, calls = SREvaluator.evaluate, []\n"
    "def dying(self, *args, **kwargs):\n"
    "    calls.append(1)\n"
    "    if len(calls) == 3:\n"
    "        os._exit(9)\n"
    "    return evaluate(self, *args, **kwargs)\n"
    "SREvaluator.evaluate = dying\n"
)


@pytest.mark.parametrize("strategy", [{"preset": "nsga2", "sampler_options": {"population_size": 2}},
                                      {"preset": "random"}], ids=["nsga2", "random"])
def test_a_search_killed_inside_a_trial_resumes_to_exactly_max_trials(image_folder, tmp_path, strategy):
    planned = 4
    experiment = _experiment(tmp_path, image_folder, strategy, planned)
    killed = _search(str(experiment), patch=KILL_IN_THIRD_TRIAL)
    assert killed.returncode == 9, killed.stderr[-3000:]
    run_dir = tmp_path / "run"
    before = {t.number: t.user_attrs["architecture"] for t in _study(run_dir).trials if t.state.is_finished()}
    assert len(before) == 2

    resumed = _search("--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = _study(run_dir).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == planned
    assert not [t for t in trials if not t.state.is_finished()]  # nothing left running
    assert {n: a for n, a in before.items()} == {t.number: t.user_attrs["architecture"] for t in trials
                                                 if t.number in before}  # nothing lost or changed
    # A killed trial the strategy had already put in the study is failed as interrupted, and not counted.
    for trial in trials:
        if trial.state == optuna.trial.TrialState.FAIL:
            assert trial.user_attrs["fail_reason"].startswith("interrupted"), trial.user_attrs
    progress = [tuple(map(int, m)) for m in re.findall(r"^\[(\d+)/(\d+)\]", resumed.stderr, re.MULTILINE)]
    assert progress and progress[-1] == (planned, planned), resumed.stderr[-3000:]
    assert all(done <= total for done, total in progress), progress
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"


#: A strategy whose state cannot be saved once it has seen one result (as an unpicklable sampler was).
FAIL_SECOND_CHECKPOINT = (
    "from srnas_nni.strategies.builtin import ParetoRandom\n"
    "state_dict = ParetoRandom.state_dict\n"
    "def failing(self):\n"
    "    if self.archive.entries:\n"
    "        raise TypeError(\"cannot pickle '_thread.lock' object\")\n"
    "    return state_dict(self)\n"
    "ParetoRandom.state_dict = failing\n"
)


def test_a_checkpoint_that_cannot_be_written_stops_the_search_in_one_line(image_folder, tmp_path):
    experiment = _experiment(tmp_path, image_folder, {"preset": "random"}, 4)
    done = _search(str(experiment), "--no-progress", patch=FAIL_SECOND_CHECKPOINT)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("srnas: error: cannot write the search checkpoint in ")
    assert "TypeError: cannot pickle '_thread.lock' object" in lines[0]
    run_dir = tmp_path / "run"
    trials = _study(run_dir).trials
    # The result whose checkpoint failed is recorded all the same: nothing computed is lost.
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
