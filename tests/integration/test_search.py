"""``srnas search`` end to end: every example as a tiny run, the study it leaves, the dashboard on it,
and a search killed with SIGKILL at several moments, resumed each time, without losing or repeating a trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml

from srnas_nni.cli import main
from tests.support.processes import free_port, signal_when_ready

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
ATTRS = {"architecture", "ssim", "train_seconds", "strategy", "space", "scale", "nni_trial", "source"}


def _tiny(image_folder) -> list[str]:
    return ["--set", f"evaluator.data={image_folder}", "--set", f"evaluator.val_data={image_folder}", "--no-progress"]


def _study(run_dir: Path) -> optuna.Study:
    info = json.loads((run_dir / "run.json").read_text())
    return optuna.load_study(study_name=info["study_name"], storage=info["storage"])


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_fills_the_study(example, image_folder, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["search", str(example), "--smoke", "--output-dir", str(run_dir), *_tiny(image_folder)]) == 0
    printed = capsys.readouterr().out
    assert "| trial | PSNR (Y)" in printed and f"srnas dashboard {run_dir}" in printed
    study = _study(run_dir)
    assert study.metric_names == ["psnr", "params", "multadds"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    one_shot = json.loads((run_dir / "run.json").read_text())["one_shot"]
    if one_shot:
        assert [t.user_attrs["source"] for t in complete if t.user_attrs["source"] != "shared_weights"] == ["derived"]
    else:
        assert len(study.trials) == 2 and complete  # --smoke: two candidates
    config = yaml.safe_load(example.read_text())
    for trial in complete:
        assert ATTRS <= set(trial.user_attrs), sorted(trial.user_attrs)
        architecture = json.loads(trial.user_attrs["architecture"])
        assert trial.params and set(trial.params) == set(architecture)
        assert trial.user_attrs["scale"] in (2, 3, 4) and trial.values[1] > 0 and trial.values[2] > 0
    assert complete[0].user_attrs["space"] in str(config["space"])
    pareto = json.loads((run_dir / "pareto.json").read_text())
    assert pareto["format"] == "srnas-pareto/1" and pareto["front"]
    assert main(["pareto", str(run_dir), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == pareto["front"]


def test_pareto_csv_and_plot(image_folder, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["search", str(ROOT / "examples" / "deconas.yaml"), "--smoke", "--output-dir", str(run_dir),
                 *_tiny(image_folder)]) == 0
    capsys.readouterr()
    assert main(["pareto", str(run_dir), "--format", "csv", "--output", str(tmp_path / "front.csv")]) == 0
    rows = (tmp_path / "front.csv").read_text().splitlines()
    assert rows[0].startswith("trial,psnr,ssim,params,multadds") and len(rows) >= 2
    assert main(["plot", str(run_dir)]) == 0
    png = (run_dir / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "<svg" not in (run_dir / "pareto.html").read_text()[:200] and "data:image/svg+xml;base64" in \
        (run_dir / "pareto.html").read_text()
    # A second search into the same folder is refused: it would mix two runs in one study.
    assert main(["search", str(ROOT / "examples" / "deconas.yaml"), "--smoke", "--output-dir", str(run_dir),
                 *_tiny(image_folder)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_dashboard_serves_the_study_on_loopback(image_folder, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["search", str(ROOT / "examples" / "deconas.yaml"), "--smoke", "--output-dir", str(run_dir),
                 *_tiny(image_folder)]) == 0
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "srnas_nni", "dashboard", str(run_dir), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, studies = time.time() + 60, None
        while time.time() < deadline and studies is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as response:
                    studies = json.loads(response.read())["study_summaries"]
            except OSError:
                assert process.poll() is None, process.stdout.read()
                time.sleep(0.5)
        assert studies is not None, "the dashboard did not answer within 60 s"
        assert [s["study_id"] for s in studies] == [1] and studies[0]["study_name"] == "deconas"
        # A hang guard, not a speed bound: the dashboard has answered once already.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/1?after=0", timeout=60) as response:
            detail = json.loads(response.read())
        assert len(detail["trials"]) == 2
        assert detail["objective_names"] == ["psnr", "params", "multadds"]
        assert len(detail["best_trials"]) >= 1 and "deconas" in detail["note"]["body"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _finished(run_dir: Path) -> list:
    if not ((run_dir / "run.json").is_file() and (run_dir / "study.db").is_file()):
        return []
    try:
        return [t for t in _study(run_dir).trials if t.state.is_finished()]
    except (KeyError, json.JSONDecodeError):  # the study or run.json not written yet
        return []


def test_sigterm_stops_a_search_like_ctrl_c(image_folder, tmp_path):
    """A scheduler's SIGTERM: exit 130, the run marked interrupted, every finished trial kept."""
    experiment = tmp_path / "term.yaml"
    experiment.write_text(yaml.safe_dump({
        "space": "deconas-proxy", "strategy": "random",
        "evaluator": {"data": str(image_folder), "val_data": str(image_folder),
                      "train": {"steps": 3, "batch_size": 2, "patch_size": 16}},
        "experiment": {"max_trials": 1000}, "output_dir": str(tmp_path / "run"),
    }))
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "srnas_nni", "search", str(experiment), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    before: list = []

    def a_trial_finished() -> bool:
        before[:] = _finished(run_dir)
        return bool(before)

    stderr = signal_when_ready(process, a_trial_finished, signal.SIGTERM)
    assert process.returncode == 130 and "interrupted" in stderr, stderr[-2000:]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    after = {t.number: t.user_attrs["architecture"] for t in _finished(run_dir)}
    assert {t.number: t.user_attrs["architecture"] for t in before}.items() <= after.items()


@pytest.mark.slow
def test_search_killed_at_random_moments_resumes_without_losing_or_repeating_trials(image_folder, tmp_path):
    """SIGKILL three times, each at a random moment after one more trial (mid-trial, mid-checkpoint, ...)."""
    import random

    planned, kills = 10, 3
    rng = random.Random(20261122)
    experiment = tmp_path / "killme.yaml"
    experiment.write_text(yaml.safe_dump({
        "space": "deconas-proxy", "strategy": {"name": "evolution", "seed": 1, "population_size": 3,
                                               "sample_size": 2},
        "evaluator": {"data": str(image_folder), "val_data": str(image_folder),
                      "train": {"steps": 3, "batch_size": 2, "patch_size": 16}},
        "experiment": {"max_trials": planned}, "output_dir": str(tmp_path / "run"),
    }))
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    seen: dict[int, str] = {}
    for kill in range(kills):
        command = ["--resume", str(run_dir)] if kill else [str(experiment)]
        process = subprocess.Popen([sys.executable, "-m", "srnas_nni", "search", *command, "--no-progress"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        target = len(seen) + 1
        try:
            deadline = time.time() + 180
            while len(finished := _finished(run_dir)) < target:
                assert time.time() < deadline, f"no trial {target} within 180 s"
                assert process.poll() is None, process.communicate()[1].decode()[-2000:]
                time.sleep(0.05)
            # Somewhere in the next trial, its recording or the checkpoint after it (a trial takes a little
            # longer than its training); at the latest once that trial is recorded, so that a fast machine
            # cannot finish the search inside the pause.
            per_trial = 1.5 * max(t.user_attrs.get("train_seconds", 0.2) for t in finished) + 0.1
            kill_at = time.monotonic() + rng.uniform(0.0, per_trial)
            while time.monotonic() < kill_at and len(_finished(run_dir)) <= target:
                time.sleep(0.01)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        now = {t.number: t.user_attrs["architecture"] for t in _finished(run_dir)}
        assert {n: now[n] for n in seen} == seen, "a recorded trial was lost or changed"
        assert len(now) < planned, "the search ended before this kill; raise max_trials"
        seen = now
    assert main(["search", "--resume", str(run_dir), "--no-progress"]) == 0
    trials = _study(run_dir).trials
    assert len(trials) == planned  # the planned number, not more
    assert {t.number: t.user_attrs["architecture"] for t in trials[:len(seen)]} == seen  # nothing lost
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    architectures = [t.user_attrs["architecture"] for t in trials]
    assert len(set(architectures)) == planned  # nothing evaluated twice: evolution's dedup state survived
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"


def test_diverging_candidates_are_failed_trials_with_a_reason_and_the_search_goes_on(image_folder, tmp_path, capsys):
    run_dir = tmp_path / "run"
    # A learning rate no network survives: every candidate's loss becomes NaN/inf.
    assert main(["search", str(ROOT / "examples" / "deconas.yaml"), "--smoke", "--output-dir", str(run_dir),
                 "--max-trials", "2", "--set", "evaluator.train.learning_rate=1.0e+12", "--set",
                 "evaluator.train.steps=4", *_tiny(image_folder)]) == 2  # nothing came out: the command fails
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("srnas: error: ")]
    assert len(errors) == 1 and errors[0].startswith("srnas: error: all 2 trials failed") and \
        "TrainingDivergedError" in errors[0], errors
    trials = _study(run_dir).trials
    assert len(trials) == 2  # both candidates were tried: one failure does not stop the search
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.FAIL
        assert "TrainingDivergedError" in trial.user_attrs["fail_reason"], trial.user_attrs
        assert json.loads(trial.user_attrs["architecture"])
    assert json.loads((run_dir / "pareto.json").read_text())["front"] == []


def test_max_duration_stops_a_sequential_search(image_folder, tmp_path, monkeypatch):
    """The sequential engine's contract, at any machine speed: a model is submitted only while the time
    spent in finished models is under ``max_duration``, and the search stops once it is not."""
    from nni.nas.execution.sequential import SequentialExecutionEngine

    budget = 2
    experiment = tmp_path / "timed.yaml"
    experiment.write_text(yaml.safe_dump({
        "space": "deconas-proxy", "strategy": {"name": "random", "seed": 3},
        "evaluator": {"data": str(image_folder), "val_data": str(image_folder),
                      "train": {"steps": 2, "batch_size": 2, "patch_size": 16}},
        "experiment": {"max_trials": 10000, "max_duration": budget}, "output_dir": str(tmp_path / "run"),
    }))
    # The time the engine counts (each model's run), before and after each model: the figure it compares.
    spent: list[tuple[float, float]] = []
    run_model = SequentialExecutionEngine._run_single_model

    def run_and_count(engine, model):
        before = engine._total_duration
        try:
            run_model(engine, model)
        finally:
            spent.append((before, engine._total_duration))

    monkeypatch.setattr(SequentialExecutionEngine, "_run_single_model", run_and_count)
    assert main(["search", str(experiment), "--no-progress"]) == 0
    trials = _study(tmp_path / "run").trials
    assert len(trials) == len(spent) >= 1  # every model that ran is a trial of the study
    assert all(before < budget for before, _ in spent), spent  # each one submitted with budget left
    assert spent[-1][1] >= budget, spent  # and none after it was used up (10000 trials were allowed)
    assert all(spent[i][1] == spent[i + 1][0] for i in range(len(spent) - 1))  # one engine, counting on
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "done"


def test_a_configuration_without_a_study_name_records_into_one_study(image_folder, tmp_path):
    from srnas_nni.run.config import parse_config
    from srnas_nni.run.search import run_search

    config = parse_config({
        "space": "deconas-proxy", "strategy": {"name": "optuna", "sampler": "random", "seed": 0},
        "evaluator": {"data": str(image_folder), "val_data": str(image_folder),
                      "train": {"steps": 2, "batch_size": 2, "patch_size": 16}},
        "experiment": {"max_trials": 2}, "output_dir": str(tmp_path / "run"),
    })
    assert config.study_name == "deconas-optuna"
    result = run_search(config, progress=False)
    assert result.complete == 2 and len(_study(tmp_path / "run").trials) == 2


@pytest.mark.parametrize("strategy", [{"name": "evolution", "seed": 1, "population_size": 3, "sample_size": 2},
                                      {"name": "optuna", "sampler": "nsga2", "seed": 1,
                                       "sampler_options": {"population_size": 4}}],
                         ids=["evolution", "optuna"])
def test_a_crash_between_checkpoint_and_record_loses_and_repeats_nothing(image_folder, tmp_path, strategy):
    """The narrowest window: the checkpoint holds trial 3's result, the study does not yet."""
    planned = 5
    experiment = tmp_path / "window.yaml"
    experiment.write_text(yaml.safe_dump({
        "space": "deconas-proxy", "strategy": strategy,
        "evaluator": {"data": str(image_folder), "val_data": str(image_folder),
                      "train": {"steps": 2, "batch_size": 2, "patch_size": 16}},
        "experiment": {"max_trials": planned}, "output_dir": str(tmp_path / "run"),
    }))
    crash_after_checkpoint = (
        "import os, sys\n"
        "from srnas_nni.run import recorder as tracking\n"
        "from srnas_nni.cli import main\n"
        "flush, calls = tracking.StudyRecorder.flush, []\n"
        "def crashing_flush(self):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 3:\n"
        "        os._exit(9)  # as kill -9: the checkpoint is written, the study not\n"
        "    flush(self)\n"
        "tracking.StudyRecorder.flush = crashing_flush\n"
        "main(['search', sys.argv[1], '--no-progress'])\n"
    )
    crashed = subprocess.run([sys.executable, "-c", crash_after_checkpoint, str(experiment)], capture_output=True,
                             text=True, timeout=300)
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    run_dir = tmp_path / "run"
    assert len([t for t in _study(run_dir).trials if t.state.is_finished()]) == 2  # the third is only checkpointed
    assert main(["search", "--resume", str(run_dir), "--no-progress"]) == 0
    trials = _study(run_dir).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * planned
    if strategy["name"] == "evolution":  # deduplicating: a repeated trial would repeat an architecture
        assert len({t.user_attrs["architecture"] for t in trials}) == planned
