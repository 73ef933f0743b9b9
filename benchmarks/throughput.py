"""Evaluator throughput: the per-architecture cost model and PSNR+SSIM against a plain numpy reference.

Two measurements, each with a target stated and checked in the output:

* ``cost``: ``space.cost(sample)`` (params and Mult-Adds of one architecture, what strategies call in
  their rewards) on random samples of every paper-size space (``--spaces``), after 5 warm-up calls;
  mean and p95 ms per architecture. Target: mean under 10 ms in every space.
* ``metrics``: Y-channel PSNR + SSIM (crop = scale) of ``--images`` pairs of ``--size`` x ``--size``
  RGB images, in HR megapixels per second (pixels before cropping; best of ``--repeats`` runs):
  our torch metrics on a batch (on ``--device``; tensors already there), our metrics called per
  image on uint8 numpy arrays (as ``validate`` calls them), and two numpy references written here
  from the MATLAB scripts: ``numpy convolve2d`` (rgb2ycbcr, 11x11 Gaussian window applied with
  ``scipy.signal.convolve2d`` 'valid', as MATLAB ``filter2``; the straightforward transcription) and
  ``numpy separable`` (the same window as two 1-D ``scipy.ndimage`` passes). Every implementation
  must agree with the straightforward one (max |difference| in the table). Target: the batched
  torch metrics at least 3x the straightforward reference.

Markdown tables to stdout; JSON to ``<output>/throughput.json`` and bars to
``<output>/throughput_metrics.png`` (``--output``, default ``benchmarks/results``).

    python benchmarks/throughput.py [--quick] [--samples 200] [--images 8] [--size 512] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from srnas_nni.runtime import machine_description, write_result_file
from scipy import ndimage
from scipy.signal import convolve2d

RESULTS = Path(__file__).resolve().parent / "results"
COST_TARGET_MS = 10.0
METRIC_TARGET_RATIO = 3.0
QUICK = {"samples": 50, "images": 4, "size": 384, "repeats": 3}
FULL = {"samples": 200, "images": 8, "size": 512, "repeats": 5}


# --------------------------------------------------------------------------------------------
# cost model


def bench_cost(name: str, samples: int, seed: int = 0) -> dict:
    """Mean/p95 ms of ``space.cost`` over ``samples`` random architectures of the paper-size preset ``name``."""
    from srnas_nni.spaces import load_space_preset

    space = load_space_preset(name)
    rng = np.random.RandomState(seed)
    drawn = [space.random_sample(rng) for _ in range(samples)]
    for sample in drawn[:5]:
        space.cost(sample)  # warm-up: the first calls fill caches
    timings = []
    for sample in drawn:
        started = time.perf_counter()
        space.cost(sample)
        timings.append((time.perf_counter() - started) * 1e3)
    mean = statistics.mean(timings)
    return {"space": name, "scale": space.scale, "samples": samples, "mean_ms": mean,
            "p95_ms": float(np.percentile(timings, 95)), "max_ms": max(timings), "target_met": mean < COST_TARGET_MS}


# --------------------------------------------------------------------------------------------
# numpy references (MATLAB's rgb2ycbcr, PSNR and ssim_index.m written out; no code shared with srnas_nni)


def _gaussian_1d() -> np.ndarray:
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    return g / g.sum()


WINDOW_1D = _gaussian_1d()
WINDOW_2D = np.outer(WINDOW_1D, WINDOW_1D)  # fspecial('gaussian', 11, 1.5)


def ref_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` on uint8, Y only, rounded: float64 ``HxW``."""
    rgb = rgb.astype(np.float64)
    return np.round(16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0)


def ref_psnr(x: np.ndarray, y: np.ndarray) -> float:
    mse = np.mean((x - y) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def _ssim_from_filter(x: np.ndarray, y: np.ndarray, filt) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x**2
    var_y = filt(y * y) - mu_y**2
    cov = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def ref_ssim_convolve2d(x: np.ndarray, y: np.ndarray) -> float:
    """``ssim_index.m``: ``filter2(window, img, 'valid')`` = 2-D convolution with the rotated window."""
    return _ssim_from_filter(x, y, lambda img: convolve2d(img, np.rot90(WINDOW_2D, 2), mode="valid"))


def ref_ssim_separable(x: np.ndarray, y: np.ndarray) -> float:
    """The same SSIM with the (separable) window as two 1-D correlations, then the 'valid' part."""
    def filt(img: np.ndarray) -> np.ndarray:
        out = ndimage.correlate1d(ndimage.correlate1d(img, WINDOW_1D, axis=0, mode="constant"),
                                  WINDOW_1D, axis=1, mode="constant")
        return out[5:-5, 5:-5]
    return _ssim_from_filter(x, y, filt)


def reference_metrics(sr: np.ndarray, hr: np.ndarray, crop: int, ssim_fn) -> tuple[float, float]:
    """Y-PSNR and Y-SSIM of one uint8 RGB pair with ``crop`` border pixels removed."""
    x, y = ref_y(sr), ref_y(hr)
    height, width = x.shape
    x, y = x[crop:height - crop, crop:width - crop], y[crop:height - crop, crop:width - crop]
    return ref_psnr(x, y), ssim_fn(x, y)


# --------------------------------------------------------------------------------------------
# metric throughput


def make_pairs(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uint8 ``size x size x 3`` HR images (smooth content) and SR versions (HR + noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(count, size // 16 + 1, size // 16 + 1, 3))
    hr = np.stack([ndimage.zoom(c, (size / c.shape[0], size / c.shape[1], 1), order=3)[:size, :size]
                   for c in coarse])
    hr = np.clip(hr, 0, 255).round().astype(np.uint8)
    sr = np.clip(hr + rng.normal(0, 6, hr.shape), 0, 255).round().astype(np.uint8)
    return sr, hr


def _best_of(repeats: int, run, sync=lambda: None) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        result = run()
        sync()
        best = min(best, time.perf_counter() - started)
    return best, result


def bench_metrics(images: int, size: int, repeats: int, device: torch.device, crop: int = 2) -> list[dict]:
    """One row per implementation: seconds (best of ``repeats``), HR megapixels/s, ratio to the
    straightforward numpy reference, and max |PSNR| / |SSIM| differences from it."""
    from srnas_nni.evaluation.metrics import psnr, ssim

    sr, hr = make_pairs(images, size)
    megapixels = images * size * size / 1e6
    sr_t = torch.from_numpy(sr).permute(0, 3, 1, 2).to(device).float().div_(255.0)  # a model's float output
    hr_t = torch.from_numpy(hr).permute(0, 3, 1, 2).contiguous().to(device)  # uint8 ground truth
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def torch_batched():
        return (psnr(sr_t, hr_t, crop=crop, reduction="none").cpu().numpy(),
                ssim(sr_t, hr_t, crop=crop, reduction="none").cpu().numpy())

    def torch_per_image():
        values = [(psnr(s, h, crop=crop), ssim(s, h, crop=crop)) for s, h in zip(sr, hr)]
        return np.array([v[0] for v in values]), np.array([v[1] for v in values])

    def numpy_reference(ssim_fn):
        def run():
            values = [reference_metrics(s, h, crop, ssim_fn) for s, h in zip(sr, hr)]
            return np.array([v[0] for v in values]), np.array([v[1] for v in values])
        return run

    torch_batched()  # warm-up (kernels, allocator)
    runs = [(f"srnas_nni torch, batch of {images} ({device.type})", torch_batched, sync),
            ("srnas_nni, per image (uint8 numpy, as validate)", torch_per_image, lambda: None),
            ("numpy convolve2d (reference)", numpy_reference(ref_ssim_convolve2d), lambda: None),
            ("numpy separable (scipy.ndimage)", numpy_reference(ref_ssim_separable), lambda: None)]
    measured = [(label, *_best_of(repeats, run, sync_fn)) for label, run, sync_fn in runs]
    reference_seconds, (ref_p, ref_s) = measured[2][1], measured[2][2]
    rows = []
    for label, seconds, (p, s) in measured:
        rows.append({"implementation": label, "seconds": seconds, "megapixels": megapixels,
                     "mp_per_s": megapixels / seconds, "vs_reference": reference_seconds / seconds,
                     "max_abs_diff_psnr": float(np.max(np.abs(p - ref_p))),
                     "max_abs_diff_ssim": float(np.max(np.abs(s - ref_s)))})
    return rows


def plot_metrics(rows: list[dict], path: Path, title: str = "") -> Path:
    """Horizontal bars of megapixels/s per implementation (log scale), ``title`` above them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.0))
    labels = [r["implementation"] for r in rows][::-1]
    values = [r["mp_per_s"] for r in rows][::-1]
    bars = ax.barh(labels, values, color=["#999999", "#999999", "#4c72b0", "#4c72b0"][: len(rows)])
    for bar, value in zip(bars, values):
        ax.annotate(f"{value:.1f}", (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(values) * 3)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("Y-PSNR + Y-SSIM throughput (HR megapixels/s)")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=None, help="paper-size space presets (default: all)")
    parser.add_argument("--samples", type=int, default=None, help="architectures timed per space")
    parser.add_argument("--images", type=int, default=None, help="image pairs for the metrics")
    parser.add_argument("--size", type=int, default=None, help="side of each HR image")
    parser.add_argument("--repeats", type=int, default=None, help="metric runs; the best is kept")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (torch metrics)")
    parser.add_argument("--output", default=str(RESULTS), help="folder for throughput.json and the plot")
    parser.add_argument("--quick", action="store_true",
                        help="{samples} samples per space, {images} images of {size}x{size}, best of {repeats}"
                        .format(**QUICK))
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main(argv: list[str] | None = None) -> dict:
    """Measure both parts, print the tables and verdicts, write ``throughput.json`` and the plot; return the JSON."""
    from srnas_nni.runtime import resolve_device
    from srnas_nni.spaces import list_spaces

    args = parse_args(argv)
    device = resolve_device(args.device)
    spaces = args.spaces or list_spaces()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    machine = machine_description(device)
    print(f"Throughput benchmark on {machine['processor']}, {device}, {machine['threads']} torch threads")

    cost_rows = [bench_cost(name, args.samples) for name in spaces]
    cost_met = all(r["target_met"] for r in cost_rows)
    print(f"\n### Cost model: params + Mult-Adds of one architecture ({args.samples} random samples per "
          f"paper-size space)\n")
    print(f"| space | x | mean ms | p95 ms | max ms | target < {COST_TARGET_MS:g} ms |")
    print("|---|---|---:|---:|---:|---|")
    for r in cost_rows:
        print(f"| {r['space']} | {r['scale']} | {r['mean_ms']:.3f} | {r['p95_ms']:.3f} | {r['max_ms']:.3f} | "
              f"{_verdict(r['target_met'])} |")
    print(f"\nCost-model target (mean under {COST_TARGET_MS:g} ms per architecture in every space): "
          f"{_verdict(cost_met)}.")

    metric_rows = bench_metrics(args.images, args.size, args.repeats, device)
    ratio = metric_rows[0]["vs_reference"]
    metrics_met = ratio >= METRIC_TARGET_RATIO
    print(f"\n### PSNR + SSIM (Y, crop 2): {args.images} pairs of {args.size}x{args.size} RGB, "
          f"best of {args.repeats}\n")
    print("| implementation | s | MP/s | vs numpy convolve2d | max diff PSNR / SSIM |")
    print("|---|---:|---:|---:|---:|")
    for r in metric_rows:
        print(f"| {r['implementation']} | {r['seconds']:.3f} | {r['mp_per_s']:.1f} | {r['vs_reference']:.1f}x | "
              f"{r['max_abs_diff_psnr']:.1e} / {r['max_abs_diff_ssim']:.1e} |")
    print(f"\nMetrics target (batched torch metrics at least {METRIC_TARGET_RATIO:g}x the numpy convolve2d "
          f"reference): {_verdict(metrics_met)} ({ratio:.1f}x). Per image on uint8 arrays: "
          f"{metric_rows[1]['vs_reference']:.1f}x; against the separable numpy variant the batched metrics are "
          f"{metric_rows[3]['seconds'] / metric_rows[0]['seconds']:.1f}x.")
    plot = plot_metrics(metric_rows, output / "throughput_metrics.png",
                        f"target: batched torch >= {METRIC_TARGET_RATIO:g}x numpy convolve2d: "
                        f"{_verdict(metrics_met)} ({ratio:.1f}x)")
    payload = {"machine": machine, "command": " ".join(["benchmarks/throughput.py", *(argv or sys.argv[1:])]),
               "settings": vars(args),
               "cost": {"rows": cost_rows, "target_ms": COST_TARGET_MS, "target_met": cost_met},
               "metrics": {"rows": metric_rows, "target_ratio": METRIC_TARGET_RATIO, "ratio": ratio,
                           "target_met": metrics_met, "plot": str(plot)}}
    write_result_file(output / "throughput.json", payload, RESULTS.parents[1])
    print(f"\nJSON in {output / 'throughput.json'}")
    return payload


if __name__ == "__main__":
    main()
