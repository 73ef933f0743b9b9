"""How fast the per-space cost models are, next to building and counting the frozen model.

For every search space (paper-size YAML preset), ``space.cost(sample)`` is timed on random samples
and compared, sample by sample, with ``measure(space.freeze(sample))``: the figures must be equal
and the cost model must stay well under 10 ms per sample (the strategies call it in their reward
and penalty terms). Prints a markdown table; writes ``benchmarks/results/cost_model.json``.

    python benchmarks/cost_model.py [--samples 200] [--checked 3] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from srnas_nni.evaluation.cost import measure
from srnas_nni.runtime import write_result_file
from srnas_nni.spaces import list_spaces, load_space_preset

RESULTS = Path(__file__).resolve().parent / "results"


def bench_space(name: str, samples: int, checked: int, seed: int = 0) -> dict:
    space = load_space_preset(name)
    rng = np.random.RandomState(seed)
    drawn = [space.random_sample(rng) for _ in range(samples)]
    for sample in drawn[:5]:
        space.cost(sample)  # warm-up: first calls fill caches
    timings = []
    for sample in drawn:
        started = time.perf_counter()
        space.cost(sample)
        timings.append(time.perf_counter() - started)
    build_times, exact = [], True
    for sample in drawn[:checked]:
        started = time.perf_counter()
        counted = measure(space.freeze(sample), space.scale)
        build_times.append(time.perf_counter() - started)
        predicted = space.cost(sample)
        exact &= (predicted.params, predicted.multadds) == (counted.params, counted.multadds)
    cost_ms = statistics.mean(timings) * 1e3
    build_ms = statistics.mean(build_times) * 1e3
    return {"space": name, "scale": space.scale, "log10_size": space.info()["log10_size"],
            "cost_model_ms": cost_ms, "cost_model_p95_ms": float(np.percentile(timings, 95) * 1e3),
            "freeze_and_measure_ms": build_ms, "speedup": build_ms / cost_ms, "exact": bool(exact),
            "samples": samples, "checked": checked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--checked", type=int, default=3, help="samples also frozen and counted")
    parser.add_argument("--quick", action="store_true", help="50 samples, 2 checked")
    args = parser.parse_args()
    samples, checked = (50, 2) if args.quick else (args.samples, args.checked)
    rows = [bench_space(name, samples, checked) for name in list_spaces()]
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    print(f"Cost model vs freeze + measure, paper-size spaces, 1280x720 convention ({machine})\n")
    print("| space | x | log10 size | cost model ms (mean / p95) | freeze+measure ms | speed-up | exact |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['space']} | {r['scale']} | {r['log10_size']:.1f} | {r['cost_model_ms']:.3f} / "
              f"{r['cost_model_p95_ms']:.3f} | {r['freeze_and_measure_ms']:.0f} | {r['speedup']:.0f}x | "
              f"{'yes' if r['exact'] else 'NO'} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_result_file(RESULTS / "cost_model.json", {"machine": machine, "rows": rows}, RESULTS.parents[1])


if __name__ == "__main__":
    main()
