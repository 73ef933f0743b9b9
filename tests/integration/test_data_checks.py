"""A search whose every trial failed (``srnas search`` in a subprocess) exits non-zero with the reason
once, without NNI's traceback per trial on the console."""

from __future__ import annotations

import subprocess
import sys

import optuna


from tests.support.experiments import data_check_experiment
from tests.support.images import image_folder_with


# -- files ----------------------------------------------------------------------------------------


def test_all_trials_failing_for_one_reason_exit_nonzero_with_the_reason_once(tmp_path):
    # The corrupt file has a sound structure: it passes the start check and fails in every trial.
    folder = image_folder_with(tmp_path, "images", "corrupt.png")
    experiment = data_check_experiment(tmp_path, folder, folder)
    done = subprocess.run([sys.executable, "-m", "srnas_nni", "search", str(experiment), "--no-progress"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "fails to be executed" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("srnas: error: ")]
    assert len(errors) == 1, done.stderr
    reason = f"ImageReadError: {folder / 'corrupt.png'}: cannot decode image data"
    assert errors[0].startswith(f"srnas: error: all 2 trials failed: {reason}")
    assert errors[0].count(str(folder / "corrupt.png")) == 1
    # One line per failed trial on the console; the tracebacks stay in the run's NNI log.
    assert sum("candidate failed" in line for line in done.stderr.splitlines()) == 2, done.stderr
    logs = list((tmp_path / "run" / "nni-experiments").glob("*/log/experiment.log"))
    assert len(logs) == 1 and f"tracebacks in {logs[0]}" in errors[0]
    assert "Traceback" in logs[0].read_text()
    trials = optuna.load_study(study_name="exp", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}").trials
    assert [t.user_attrs["fail_reason"].startswith(reason) for t in trials] == [True, True]
