"""Search quality per compute: the (PSNR, Mult-Adds) hypervolume each strategy reaches in the same wall-clock budget.

Every run is a real search through the project's runner (``srnas_nni.run.config.parse_config`` +
``srnas_nni.run.search.run_search``) on the proxy task: x2 (the space's scale), training patches from
``--data``, whole-image Y-PSNR on ``--val-data``. For every space of ``--spaces`` each strategy of
``--strategies`` runs once per seed of ``--seeds``, in a fresh temporary run directory:

* multi-trial strategies (``random`` = NNI's Random, ``hierarchical_rl``, ``nsga2``, ...) search until
  ``--budget`` seconds have passed; then the search is interrupted as Ctrl-C does (SIGALRM raises
  ``KeyboardInterrupt``; ``run_search`` stops NNI and the study keeps every finished trial). The budget
  is enforced here, on wall-clock time: ``experiment.max_duration`` (set too) counts only the time
  spent in trials and lets the trial in flight finish. Every candidate trains ``--train-steps`` steps.
* one-shot strategies (``sparsestmax_darts``, ``hinas``, ``dlsr``, ...) must fit the supernet search
  *and* the training of their derived architecture in the same budget. Before the seeds, two short
  calibration runs of that strategy on that space (``--calibration-steps K1 K2`` supernet steps and
  as many derived-training steps) give the fixed cost ``c`` and the cost ``s`` of one supernet step
  plus one derived step (a straight line through the two wall times); each seed then runs
  ``N = floor((budget - c) / s)`` supernet steps followed by ``N`` fine-tuning steps of the
  derived model (at least 1; ``--one-shot-steps N`` sets N instead). Warm-ups given in steps are
  scaled to ``N`` by the preset's own fraction (``hinas`` 200 of 1000 steps, ``dlsr`` 20 of 1000).
  Short calibration runs can mislead (timing noise between two nearby step counts; periodic costs
  such as supernet checkpoints that only longer runs pay), so the first seed's run is a check: if
  its wall time misses the budget by more than ``REFIT_TOLERANCE``, the line is refitted through the
  two longest runs measured so far and that seed runs again with the new N (at most ``MAX_REFITS``
  times; every refit is in the JSON). The actual wall time of every run is reported beside its
  hypervolume, so the equality of the budgets can be checked.

Every run is a fresh process (``torch.set_num_threads(--threads)``). Before the runs every training and
validation image is decoded and its LR made once into a shared on-disk cache (``evaluator.cache_dir``),
so that no run spends its budget on that one-off work.

Hypervolume: 2-D, of the points (Y-PSNR on ``--val-data`` maximised, Mult-Adds at 1280x720 minimised)
of the study's complete trials that are not shared-weight estimates (``srnas_nni.study.front.pareto_front``),
against a fixed reference point per space: PSNR = ``--ref-psnr`` (``bicubic``: the bicubic PSNR of the
same validation set at the same scale, measured here; a model worse than bicubic adds nothing; or a
number of dB) and Mult-Adds = the largest Mult-Adds of the space found by coordinate ascent on the
space's cost model (from 8 random starts, seed 0; every label moved to its dearest value until nothing
changes). Points beyond the reference add nothing. Units: dB x GMult-Adds. The ratio of each strategy's
mean hypervolume to NNI Random's on the same space is the figure of merit; target: at least 1.1x for
``hierarchical_rl``, ``nsga2`` and the differentiable strategies.

Markdown table to stdout; JSON to ``<output>/search_quality.json`` and one plot per space,
``<output>/search_quality_<space>.png`` (the fronts of all runs, one colour per strategy).

    python benchmarks/search_quality.py [--quick] [--spaces hinas-proxy] [--budget 300] [--seeds 0 1 2]
        [--strategies random hierarchical_rl nsga2 sparsestmax_darts hinas dlsr] [--ref-psnr bicubic]
        [--data ../shared/data/train/SunHays80] [--val-data ../shared/data/benchmark/Set5] [--output DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from srnas_nni.runtime import machine_description, write_result_file

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SHARED = REPO.parent / "shared" / "data"
DEFAULT_DATA = SHARED / "train" / "SunHays80"
DEFAULT_VAL = SHARED / "benchmark" / "Set5"
TARGET_RATIO = 1.1
#: A one-shot run whose wall time is off the budget by more than this fraction refits its step count.
REFIT_TOLERANCE = 0.15
MAX_REFITS = 3
BASELINE = "random"
STRATEGIES = ["random", "hierarchical_rl", "nsga2", "sparsestmax_darts", "hinas", "dlsr"]
#: Warm-up steps of the one-shot presets as a fraction of the search they were set for.
WARMUP_FRACTION = {"hinas": 200 / 1000, "dlsr": 20 / 1000}
QUICK = {"budget": 15.0, "train_steps": 20, "batch_size": 4, "patch_size": 32, "calibration_steps": (2, 6),
         "ref_psnr": "20"}
FULL = {"budget": 300.0, "train_steps": 200, "batch_size": 8, "patch_size": 48, "calibration_steps": (5, 25),
        "ref_psnr": "bicubic"}


# --------------------------------------------------------------------------------------------
# hypervolume


def hypervolume_2d(points: Iterable[Sequence[float]], ref_psnr: float, ref_multadds: float) -> float:
    """Area dominated by ``points`` ``(psnr, multadds)`` (PSNR up, Mult-Adds down) and bounded by the reference.

    A point contributes the box ``[multadds, ref_multadds] x [ref_psnr, psnr]``; the union of the boxes is
    swept in ascending Mult-Adds keeping the best PSNR seen so far. Points with ``psnr <= ref_psnr`` or
    ``multadds >= ref_multadds`` (or not finite) add nothing. The result is in the points' units.
    """
    kept = sorted((float(m), float(p)) for p, m in points
                  if math.isfinite(p) and math.isfinite(m) and p > ref_psnr and m < ref_multadds)
    area, best = 0.0, ref_psnr
    for index, (multadds, psnr) in enumerate(kept):
        best = max(best, psnr)
        right = kept[index + 1][0] if index + 1 < len(kept) else ref_multadds
        area += (right - multadds) * (best - ref_psnr)
    return area


def front_2d(points: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
    """The non-dominated ``(psnr, multadds)`` points, cheapest first (for plotting)."""
    front: list[tuple[float, float]] = []
    for psnr, multadds in sorted(points, key=lambda pm: (pm[1], -pm[0])):
        if not front or psnr > front[-1][0]:
            front.append((float(psnr), float(multadds)))
    return front


# --------------------------------------------------------------------------------------------
# the reference point


def _alternatives(mutable: Any, cap: int = 64) -> list[Any]:
    from nni.mutable import Categorical

    from srnas_nni.spaces.base import plain_value

    values = [plain_value(v) for v in mutable.values]
    if isinstance(mutable, Categorical):
        return values
    sizes = range(len(values) + 1) if mutable.n_chosen is None else [int(mutable.n_chosen)]
    subsets = itertools.chain.from_iterable(itertools.combinations(values, size) for size in sizes)
    return [list(subset) for subset in itertools.islice(subsets, cap)]


def dearest_multadds(space: Any, starts: int = 8, seed: int = 0) -> int:
    """The largest Mult-Adds (1280x720 output) that coordinate ascent finds on ``space.cost``."""
    labels = {label: _alternatives(mutable) for label, mutable in space.simplify().items()}
    rng = np.random.RandomState(seed)
    best_overall = 0
    for _ in range(starts):
        sample = dict(space.random_sample(rng))
        best = space.cost(sample).multadds
        changed = True
        while changed:
            changed = False
            for label, options in labels.items():
                for option in options:
                    trial = {**sample, label: option}
                    value = space.cost(trial).multadds
                    if value > best:
                        sample, best, changed = trial, value, True
        best_overall = max(best_overall, best)
    return int(best_overall)


def fill_image_cache(args: argparse.Namespace, scale: int) -> None:
    """Decode and resize every training and validation image once into ``args.cache_dir`` (not timed)."""
    from srnas_nni.evaluation.data import open_dataset

    for spec, split in ((args.data, "train"), (args.val_data, "val")):
        dataset = open_dataset(spec, scale, split=split, cache_dir=args.cache_dir)
        for index in range(len(dataset)):
            dataset[index]


def bicubic_psnr(val_data: str, scale: int) -> float:
    from srnas_nni.models.baselines import bicubic
    from srnas_nni.evaluation.data import open_dataset
    from srnas_nni.evaluation.validation import validate

    return float(validate(bicubic(scale), open_dataset(val_data, scale, split="val")).psnr)


# --------------------------------------------------------------------------------------------
# one search


def strategy_spec(name: str, supernet_steps: int | None) -> str | dict[str, Any]:
    """The ``strategy:`` value of the experiment file for ``name`` (warm-ups scaled to short searches)."""
    if name in WARMUP_FRACTION and supernet_steps is not None:
        return {"preset": name, "warmup_steps": int(round(WARMUP_FRACTION[name] * supernet_steps))}
    return name


def build_config(args: argparse.Namespace, space: str, strategy: str, seed: int, run_dir: Path,
                 steps: int | None = None):
    """The validated experiment: ``steps`` supernet + derived-training steps for one-shot strategies."""
    from srnas_nni.run.config import parse_config

    train = {"steps": args.train_steps if steps is None else steps, "batch_size": args.batch_size,
             "patch_size": args.patch_size, "learning_rate": args.learning_rate}
    supernet = {**train, "steps": steps if steps is not None else args.train_steps}
    data = {"space": space, "strategy": strategy_spec(strategy, steps), "seed": seed, "output_dir": str(run_dir),
            "evaluator": {"data": args.data, "val_data": args.val_data, "train": train, "supernet": supernet,
                          "device": args.device, "cache_dir": args.cache_dir},
            "experiment": {"max_trials": 10**6, "max_duration": int(math.ceil(args.budget))},
            # named: with no name the runner's study and an Optuna strategy's study get two random names
            "tracking": {"study_name": f"{strategy}-{space}-seed{seed}"}}
    return parse_config(data, source="search_quality")


def is_one_shot(args: argparse.Namespace, space: str, strategy: str) -> bool:
    from srnas_nni.strategies import is_one_shot as one_shot

    with tempfile.TemporaryDirectory() as folder:
        return one_shot(build_config(args, space, strategy, 0, Path(folder)).build_strategy())


def _child(spec: dict[str, Any]) -> None:
    """In a fresh process: one search; prints ``STARTED`` before it and ``{"wall_s", "error"}`` after it."""
    from srnas_nni.run.search import run_search

    args = argparse.Namespace(**spec["args"])
    torch.set_num_threads(args.threads)
    for name in ("nni", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
    config = build_config(args, spec["space"], spec["strategy"], spec["seed"], Path(spec["run_dir"]), spec["steps"])
    error, interrupted = None, False
    print("STARTED", flush=True)
    started = time.perf_counter()
    try:
        run_search(config, progress=False)
    except KeyboardInterrupt:  # the parent's SIGINT at the budget: the study keeps every finished trial
        interrupted = True
    except Exception as exc:  # a failed search is reported, not fatal to the benchmark
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a repeated interrupt must not cut the report short
    wall = time.perf_counter() - started
    print(json.dumps({"wall_s": wall, "error": error, "interrupted": interrupted}), flush=True)


def _read_front(run_dir: Path) -> tuple[list[dict], int]:
    """The study's front (shared-weight estimates excluded) and its number of complete trials."""
    import optuna

    from srnas_nni.study.front import pareto_front

    storage = f"sqlite:///{run_dir / 'study.db'}"
    if not (run_dir / "study.db").is_file():
        return [], 0
    names = optuna.study.get_all_study_names(storage)
    if not names:
        return [], 0
    if len(names) > 1:
        raise RuntimeError(f"{run_dir}: expected one study, found {names}")
    study = optuna.load_study(study_name=names[0], storage=storage)
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.user_attrs.get("source") != "shared_weights"]
    front = [{"psnr": e["psnr"], "multadds": e["multadds"], "params": e["params"], "source": e["source"]}
             for e in pareto_front(study)]
    return front, len(complete)


def run_once(args: argparse.Namespace, space: str, strategy: str, seed: int, *, steps: int | None,
             limit: float | None) -> dict[str, Any]:
    """One search in a fresh process and a temporary run directory, interrupted (SIGINT, as Ctrl-C) at ``limit``.

    A search that swallows the interrupt (NNI catches it in a few places) gets it again every 2 s and is
    killed after 7 tries; the study on disk keeps its finished trials either way. ``wall_s`` is the time
    from the call of ``run_search`` to its end (measured in the search process).
    """
    with tempfile.TemporaryDirectory(prefix="srnas-quality-") as folder:
        run_dir = Path(folder) / "run"
        spec = {"args": vars(args), "space": space, "strategy": strategy, "seed": seed, "steps": steps,
                "run_dir": str(run_dir)}
        log = Path(folder) / "stderr.log"
        with open(log, "w") as errors:
            child = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE,
                                     stderr=errors, text=True)
            first = child.stdout.readline()
            started = time.perf_counter()
            interrupted = False
            if first.startswith("STARTED"):
                deadline = None if limit is None else started + limit
                for attempt in range(8):
                    try:
                        child.wait(timeout=None if deadline is None else max(0.0, deadline - time.perf_counter()))
                        break
                    except subprocess.TimeoutExpired:
                        interrupted = True
                        if attempt == 7:
                            child.kill()
                            break
                        child.send_signal(signal.SIGINT)
                        deadline = time.perf_counter() + 2.0
            child.wait()
            ended = time.perf_counter()
            rest = child.stdout.read()
        report = next((json.loads(line) for line in reversed(rest.splitlines()) if line.startswith("{")), None)
        error = None
        if report is None:
            error = f"the search process ended with status {child.returncode}: " + " | ".join(
                log.read_text(errors="replace").strip().splitlines()[-3:])
        elif report["error"]:
            error = report["error"]
        front, complete = _read_front(run_dir)
    wall = report["wall_s"] if report is not None else ended - started
    return {"space": space, "strategy": strategy, "seed": seed, "wall_s": wall, "interrupted_at_limit": interrupted,
            "steps": steps, "complete_trials": complete, "front": front, "error": error}


def calibrate(args: argparse.Namespace, space: str, strategy: str) -> dict[str, Any]:
    """Steps N (supernet and fine-tune each) that fit a one-shot search + derived training in the budget."""
    low, high = args.calibration_steps
    times = []
    for steps in (low, high):
        run = run_once(args, space, strategy, 0, steps=steps, limit=None)
        if run["error"]:
            raise RuntimeError(f"calibration of {strategy} on {space} failed: {run['error']}")
        times.append(run["wall_s"])
    return {"calibration_steps": [low, high], "calibration_wall_s": times,
            **fit_steps([(low, times[0]), (high, times[1])], args.budget)}


def fit_steps(points: list[tuple[int, float]], budget: float) -> dict[str, Any]:
    """Steps that fill ``budget`` on the line through the two longest of ``points`` ((steps, wall s))."""
    (short, short_s), (long, long_s) = sorted(points)[-2:]
    slope = (long_s - short_s) / (long - short) if long != short else 0.0
    intercept = short_s - slope * short
    if slope <= 0:  # timing noise swamped the difference: treat the whole time as per-step cost
        slope, intercept = long_s / long, 0.0
    return {"fixed_s": intercept, "per_step_s": slope, "steps": max(1, int((budget - intercept) // slope))}


def run_calibrated(args: argparse.Namespace, space: str, strategy: str, calibration: dict[str, Any],
                   limit: float) -> tuple[int, dict[str, Any]]:
    """The first seed's run at the calibrated N, refitted while its wall time misses the budget (docstring)."""
    seed, steps = args.seeds[0], calibration["steps"]
    points = list(zip(calibration["calibration_steps"], calibration["calibration_wall_s"]))
    run = run_once(args, space, strategy, seed, steps=steps, limit=limit)
    for _ in range(MAX_REFITS):
        if run["error"] or abs(run["wall_s"] - args.budget) <= REFIT_TOLERANCE * args.budget:
            break
        if run["interrupted_at_limit"]:  # its wall time is only a lower bound: shrink in proportion
            refit = {"steps": max(1, int(steps * args.budget / run["wall_s"])), "rule": "interrupted: scaled"}
        else:
            points.append((steps, run["wall_s"]))
            refit = fit_steps(points, args.budget)
        calibration.setdefault("refits", []).append({"steps_run": steps, "wall_s": run["wall_s"], **refit})
        print(f"{space} {strategy}: {steps} steps took {run['wall_s']:.1f} s; refitted to {refit['steps']}",
              file=sys.stderr, flush=True)
        if refit["steps"] == steps:
            break
        steps = refit["steps"]
        run = run_once(args, space, strategy, seed, steps=steps, limit=limit)
    calibration["steps"] = steps
    return steps, run


# --------------------------------------------------------------------------------------------
# report


def summarise(runs: list[dict], references: dict[str, dict]) -> list[dict]:
    rows = []
    for space, reference in references.items():
        by_strategy: dict[str, list[dict]] = {}
        for run in runs:
            if run["space"] == space:
                by_strategy.setdefault(run["strategy"], []).append(run)
        baseline = by_strategy.get(BASELINE)
        base_mean = statistics.mean(r["hypervolume"] for r in baseline) if baseline else None
        for strategy, group in by_strategy.items():
            volumes = [r["hypervolume"] for r in group]
            mean = statistics.mean(volumes)
            ratio = mean / base_mean if base_mean else None
            # Random at zero: any positive hypervolume beats it by an unbounded factor (ratio left undefined).
            met = (ratio >= TARGET_RATIO) if ratio is not None else (base_mean is not None and mean > 0)
            rows.append({"space": space, "strategy": strategy, "seeds": [r["seed"] for r in group],
                         "hypervolume": volumes, "hv_mean": mean,
                         "hv_std": statistics.stdev(volumes) if len(volumes) > 1 else 0.0,
                         "ratio_to_random": ratio, "wall_s": [r["wall_s"] for r in group],
                         "wall_mean_s": statistics.mean(r["wall_s"] for r in group),
                         "steps": group[0]["steps"], "complete_trials": [r["complete_trials"] for r in group],
                         "target_met": None if strategy == BASELINE else bool(met)})
    return rows


def plot_fronts(runs: list[dict], space: str, reference: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    colours = plt.get_cmap("tab10")
    strategies = list(dict.fromkeys(r["strategy"] for r in runs if r["space"] == space))
    for index, strategy in enumerate(strategies):
        for number, run in enumerate(r for r in runs if r["space"] == space and r["strategy"] == strategy):
            front = front_2d((e["psnr"], e["multadds"]) for e in run["front"])
            if not front:
                continue
            xs = [m / 1e9 for _, m in front]
            ys = [p for p, _ in front]
            axes.step(xs, ys, where="post", color=colours(index), alpha=0.7,
                      label=strategy if number == 0 else None, marker="o", markersize=3)
    axes.axhline(reference["ref_psnr"], color="gray", linestyle="--", linewidth=1, label="reference PSNR")
    axes.axvline(reference["ref_multadds"] / 1e9, color="gray", linestyle=":", linewidth=1,
                 label="reference Mult-Adds")
    axes.set_xlabel("Mult-Adds (G, 1280x720 output)")
    axes.set_ylabel("Y-PSNR (dB)")
    axes.set_title(f"{space}: Pareto fronts of every run (budget {reference['budget_s']:.0f} s)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["hinas-proxy"], help="space presets (proxy size)")
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES,
                        help=f"strategy presets; {BASELINE!r} is the baseline and always runs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=float, help="seconds per run (quick 15, full 300)")
    parser.add_argument("--train-steps", type=int, help="training steps of each multi-trial candidate")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--patch-size", type=int, help="HR patch side")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--calibration-steps", type=int, nargs=2, metavar=("K1", "K2"),
                        help="supernet steps of the two calibration runs of a one-shot strategy")
    parser.add_argument("--one-shot-steps", type=int,
                        help="supernet and fine-tune steps of every one-shot run, instead of calibrating them")
    parser.add_argument("--ref-psnr", help="reference PSNR: 'bicubic' (measured on --val-data) or a number of dB "
                                           "(quick: 20; full: bicubic)")
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else "builtin")
    parser.add_argument("--val-data", default=str(DEFAULT_VAL) if DEFAULT_VAL.is_dir() else "builtin:val")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: fairer on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="15 s per run, 20-step candidates, patch 32")
    parser.add_argument("--output", default=str(RESULTS), help="folder for search_quality.json and the plots")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    preset = QUICK if args.quick else FULL
    for key in ("budget", "train_steps", "batch_size", "patch_size", "calibration_steps", "ref_psnr"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    checks = [("--budget", args.budget > 0, "must be > 0"), ("--train-steps", args.train_steps >= 1, "must be >= 1"),
              ("--batch-size", args.batch_size >= 1, "must be >= 1"), ("--patch-size", args.patch_size >= 4,
                                                                       "must be >= 4"),
              ("--calibration-steps", 1 <= args.calibration_steps[0] < args.calibration_steps[1],
               "needs 1 <= K1 < K2"), ("--threads", args.threads >= 1, "must be >= 1"),
              ("--seeds", len(set(args.seeds)) == len(args.seeds), "must be distinct"),
              ("--one-shot-steps", args.one_shot_steps is None or args.one_shot_steps >= 1, "must be >= 1")]
    for option, ok, message in checks:
        if not ok:
            parser.error(f"{option}: {message}")
    if args.ref_psnr != "bicubic":
        try:
            float(args.ref_psnr)
        except ValueError:
            parser.error(f"--ref-psnr: {args.ref_psnr!r} is neither 'bicubic' nor a number")
    from srnas_nni.spaces import load_space_preset
    from srnas_nni.strategies import strategy_preset_names

    for space in args.spaces:
        try:
            load_space_preset(space)
        except Exception as exc:  # one line naming the option
            parser.error(f"--spaces: {space!r}: {str(exc).splitlines()[0]}")
    known = set(strategy_preset_names())
    for strategy in args.strategies:
        if strategy not in known:
            parser.error(f"--strategies: unknown preset {strategy!r}; choose from {', '.join(sorted(known))}")
    if BASELINE not in args.strategies:
        args.strategies = [BASELINE, *args.strategies]
    return args


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.child:
        _child(json.loads(args.child))
        return {}
    torch.set_num_threads(args.threads)
    for name in ("nni", "optuna"):  # one line per run from this script instead of NNI's per-trial log
        logging.getLogger(name).setLevel(logging.WARNING)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    from srnas_nni.spaces import load_space_preset

    machine = machine_description("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    references: dict[str, dict] = {}
    runs: list[dict] = []
    calibrations: list[dict] = []
    started = time.perf_counter()
    cache = tempfile.TemporaryDirectory(prefix="srnas-quality-cache-")
    args.cache_dir = cache.name
    for space in args.spaces:
        space_obj = load_space_preset(space)
        fill_image_cache(args, space_obj.scale)
        bicubic = bicubic_psnr(args.val_data, space_obj.scale)
        ref_psnr = bicubic if args.ref_psnr == "bicubic" else float(args.ref_psnr)
        references[space] = {"scale": space_obj.scale, "bicubic_psnr": bicubic, "ref_psnr": ref_psnr,
                             "ref_psnr_rule": args.ref_psnr, "ref_multadds": dearest_multadds(space_obj),
                             "ref_multadds_rule": "largest Mult-Adds found by coordinate ascent on the cost model "
                                                  "(8 random starts, seed 0)", "budget_s": args.budget}
        for strategy in args.strategies:
            steps, limit, calibration, first = None, args.budget, None, None
            if is_one_shot(args, space, strategy):
                limit = 4 * args.budget  # a hard stop against a runaway only
                if args.one_shot_steps is not None:
                    steps = args.one_shot_steps
                else:
                    calibration = {"space": space, "strategy": strategy, **calibrate(args, space, strategy)}
                    calibrations.append(calibration)
                    steps = calibration["steps"]
                    print(f"{space} {strategy}: {steps} supernet + {steps} fine-tune steps "
                          f"(fixed {calibration['fixed_s']:.1f} s, {calibration['per_step_s']:.2f} s/step)",
                          file=sys.stderr, flush=True)
            if calibration is not None:  # the first seed checks the calibration (module docstring)
                steps, first = run_calibrated(args, space, strategy, calibration, limit)
            for seed in args.seeds:
                run = first if first is not None and seed == args.seeds[0] else run_once(
                    args, space, strategy, seed, steps=steps, limit=limit)
                run["hypervolume"] = hypervolume_2d(((e["psnr"], e["multadds"] / 1e9) for e in run["front"]),
                                                    ref_psnr, references[space]["ref_multadds"] / 1e9)
                runs.append(run)
                print(f"{space} {strategy} seed {seed}: HV {run['hypervolume']:.3f}, {run['wall_s']:.1f} s, "
                      f"{run['complete_trials']} trials{', ' + run['error'] if run['error'] else ''}",
                      file=sys.stderr, flush=True)
    cache.cleanup()
    rows = summarise(runs, references)
    plots = [str(plot_fronts(runs, space, references[space], output / f"search_quality_{space}.png"))
             for space in args.spaces]
    settings = {key: value for key, value in vars(args).items() if key not in ("child", "cache_dir")}
    payload = {"machine": machine, "command": " ".join(["benchmarks/search_quality.py",
                                                        *(sys.argv[1:] if argv is None else argv)]),
               "settings": settings, "references": references, "calibrations": calibrations, "runs": runs,
               "rows": rows, "plots": plots, "total_s": time.perf_counter() - started,
               "target": f"hypervolume >= {TARGET_RATIO}x NNI Random's on the same space"}
    write_result_file(output / "search_quality.json", payload, REPO)

    print(f"\nbudget {args.budget:.0f} s per run, seeds {args.seeds}, candidates {args.train_steps} steps, batch "
          f"{args.batch_size}, HR patch {args.patch_size}; data {args.data}, validation {args.val_data}\n")
    for space, reference in references.items():
        print(f"{space}: reference PSNR {reference['ref_psnr']:.3f} dB ({reference['ref_psnr_rule']}; bicubic "
              f"{reference['bicubic_psnr']:.3f}), reference Mult-Adds {reference['ref_multadds'] / 1e9:.2f}G")
    print("\n| space | strategy | seed runs | HV mean +- std (dB x G) | ratio to random | mean wall s | steps | "
          "target >= 1.1x |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        verdict = "-" if row["target_met"] is None else ("met" if row["target_met"] else "missed")
        steps = "-" if row["steps"] is None else str(row["steps"])
        print(f"| {row['space']} | {row['strategy']} | {len(row['seeds'])} | {row['hv_mean']:.3f} +- "
              f"{row['hv_std']:.3f} | {_fmt(row['ratio_to_random'], '.2f')} | {row['wall_mean_s']:.1f} | {steps} | "
              f"{verdict} |")
    print(f"\nJSON in {output / 'search_quality.json'}")
    return payload


if __name__ == "__main__":
    main()
