"""Fidelity to the literature: bicubic metrics, model costs and trained quality, each beside published figures.

Three sections (``--sections``, all by default), every figure measured in this run:

* ``metrics``: bicubic PSNR/SSIM (Y channel, crop = scale, MATLAB bicubic LR) of every benchmark
  folder under ``--data`` (each subfolder holding images; or ``--data`` itself when it holds images)
  at each of ``--scales``, beside the published bicubic table read from the data folder's
  ``README.md`` (found next to ``--data`` or one of its parents; ``--published FILE`` or ``none``).
  A folder with no published row shows "-". Agreement: within 0.03 dB and 0.002 SSIM (DESIGN.md).
* ``cost``: params and Mult-Adds (1280x720 output) of every trainable baseline and every preset,
  beside ``PUBLISHED_X2`` and each preset's ``published`` figures; relative error per figure and
  whether the measured figure agrees with the printed one to the printed digits (|measured -
  printed| below one unit of the printed figure's last non-zero digit). Where a paper counts
  differently (FSRCNN: convolution weights only; CARN/CARN-M: the multi-scale model), the
  comparable count is measured that way and the note says so.
* ``trained``: each model trained with the same proxy schedule (same training images, steps,
  patch, batch, seed) and evaluated on whole images of Set5/Set14 (``--val-sets``); a table of
  PSNR vs Mult-Adds and a plot. ``--max-gmacs`` leaves out models above that many G Mult-Adds at
  the scale (``--quick``: 100); the table header names them.

Markdown tables to stdout; JSON (with the machine) to ``<output>/fidelity.json`` and the plot to
``<output>/fidelity_trained.png`` (``--output``, default ``benchmarks/results``).

    python benchmarks/fidelity.py [--quick] [--sections metrics cost trained] [--data DIR]
                                  [--scales 2 3 4] [--models a,b] [--steps 1000] [--device auto]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path

import torch

from srnas_nni.runtime import machine_description, write_result_file

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SHARED = REPO.parent / "shared" / "data"
DEFAULT_DATA = SHARED / "benchmark"
DEFAULT_TRAIN = SHARED / "train" / "SunHays80"
PSNR_TOLERANCE, SSIM_TOLERANCE = 0.03, 0.002  # DESIGN.md section 2: the bicubic check
QUICK = {"steps": 10, "batch_size": 4, "patch_size": 48, "max_gmacs": 100.0, "train_images": 16,
         "val_sets": ["Set5"]}
FULL = {"steps": 1000, "batch_size": 16, "patch_size": 96, "max_gmacs": None, "train_images": 0,
        "val_sets": ["Set5", "Set14"]}


# --------------------------------------------------------------------------------------------
# metrics


def find_sets(root: Path) -> list[tuple[str, Path]]:
    """``(name, folder)`` of each benchmark set under ``root``: its image-holding subfolders in natural
    order (Set5 before Set14), or ``root`` itself when it holds images directly. Empty when ``root`` is missing."""
    from srnas_nni.evaluation.images import IMAGE_EXTENSIONS, natural_sort_key

    def holds_images(folder: Path) -> bool:
        return any(p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") for p in folder.iterdir())

    if not root.is_dir():
        return []
    if holds_images(root):
        return [(root.name, root)]
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_sort_key(p.name))
    return [(p.name, p) for p in folders if holds_images(p)]


def find_table_file(data: Path) -> Path | None:
    """The first ``README.md`` in ``data`` or its two parents that holds a published bicubic table."""
    for folder in [data, *list(data.resolve().parents)[:2]]:
        candidate = folder / "README.md"
        if candidate.is_file() and parse_published_table(candidate.read_text()):
            return candidate
    return None


_CELL = re.compile(r"^\s*([0-9.]+)\s*/\s*([0-9.]+)\s*$")


def parse_published_table(text: str) -> dict[tuple[str, int], tuple[float, float]]:
    """``{(set, scale): (psnr, ssim)}`` from a markdown table whose header reads ``| set | x2 | x3 | ...``
    and whose cells read ``PSNR / SSIM``; cells in another form (``-``) are left out."""
    table: dict[tuple[str, int], tuple[float, float]] = {}
    scales: list[int | None] | None = None
    for line in text.splitlines():
        if not line.strip().startswith("|"):
            scales = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if scales is None:
            found = [int(c[1:]) if re.fullmatch(r"x\d+", c.lower()) else None for c in cells[1:]]
            scales = found if any(found) else None
            continue
        for scale, cell in zip(scales, cells[1:]):
            match = _CELL.match(cell)
            if scale and match:
                table[(cells[0], scale)] = (float(match.group(1)), float(match.group(2)))
    return table


def section_metrics(sets: list[tuple[str, Path]], scales: list[int], published: dict, device: torch.device) -> list:
    """One row per (set, scale): bicubic PSNR/SSIM via ``validate``, the published pair (or None) and
    the differences ours - published; ``agrees`` is None without a published row."""
    from srnas_nni.models.baselines import bicubic
    from srnas_nni.evaluation.data import open_dataset
    from srnas_nni.evaluation.validation import validate

    rows = []
    for name, folder in sets:
        for scale in scales:
            started = time.perf_counter()
            result = validate(bicubic(scale).to(device), open_dataset(folder, scale, split="val"), device=device)
            want = published.get((name, scale))
            row = {"set": name, "scale": scale, "images": len(result.images), "psnr": result.psnr,
                   "ssim": result.ssim, "published_psnr": None, "published_ssim": None, "diff_psnr": None,
                   "diff_ssim": None, "agrees": None, "seconds": time.perf_counter() - started}
            if want is not None:
                row.update(published_psnr=want[0], published_ssim=want[1], diff_psnr=result.psnr - want[0],
                           diff_ssim=result.ssim - want[1])
                row["agrees"] = abs(row["diff_psnr"]) <= PSNR_TOLERANCE and abs(row["diff_ssim"]) <= SSIM_TOLERANCE
            rows.append(row)
    return rows


def print_metrics(rows: list, table_file: Path | None) -> None:
    source = table_file or "no published table found"
    print(f"\n### Bicubic PSNR / SSIM (Y, crop = scale) vs the published table ({source})\n")
    print(f"Agreement: within {PSNR_TOLERANCE} dB and {SSIM_TOLERANCE} SSIM.\n")
    print("| set | x | images | measured | published | diff PSNR / SSIM | agrees |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        published = "-" if r["published_psnr"] is None else f"{r['published_psnr']:.2f} / {r['published_ssim']:.4f}"
        diff = "-" if r["diff_psnr"] is None else f"{r['diff_psnr']:+.3f} / {r['diff_ssim']:+.4f}"
        agrees = "-" if r["agrees"] is None else ("yes" if r["agrees"] else "NO")
        print(f"| {r['set']} | {r['scale']} | {r['images']} | {r['psnr']:.3f} / {r['ssim']:.4f} | {published} | "
              f"{diff} | {agrees} |")


# --------------------------------------------------------------------------------------------
# cost


def printed_unit(value: float) -> float:
    """One unit of the last non-zero digit of a printed figure: 57_000 -> 1000, 52_700_000_000 -> 1e8."""
    unit = 1
    while value % (unit * 10) == 0:
        unit *= 10
    return float(unit)


def _weights_only(model) -> int:
    """Convolution and linear weights only (tensors of rank > 1): no biases, no PReLU slopes."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad and p.dim() > 1)


def _compare(measured: int, published: float | None) -> dict:
    if published is None:
        return {"published": None, "rel_error": None, "agrees": None}
    return {"published": int(published), "rel_error": (measured - published) / published,
            "agrees": abs(measured - published) < printed_unit(published)}


def _cost_notes(name: str, scale: int, model, params_all: int) -> tuple[int, str]:
    """The parameter count comparable with the published one and a short measured note."""
    from srnas_nni.evaluation.cost import count_params
    from srnas_nni.models.registry import build_model
    from srnas_nni.spaces import get
    from srnas_nni.spaces.published import get_preset

    if name == "fsrcnn":
        return _weights_only(model), f"published params are conv weights only; with biases + PReLU {params_all:,}"
    if name in ("carn", "carn_m"):
        single = count_params(build_model(name, scale, multi_scale=False))
        return params_all, f"params of the multi-scale model (x2/x3/x4 upsamplers); x{scale} upsampler only {single:,}"
    if name == "deconasnet":
        preset = get_preset(name)
        kwargs = {**preset.space_kwargs, "keep_unused_last_fusion": False}
        without = count_params(get(preset.space, scale=scale, **kwargs).freeze(preset.sample))
        return params_all, (f"keeps the unused last DNB fusion ({params_all - without:,} params) as the official "
                            f"graph and the published 1,713K do; without it {without:,}; Mult-Adds not published")
    return params_all, ""


def section_cost() -> list:
    """One row per trainable baseline (x2, ``PUBLISHED_X2``) and per preset (each published scale, or
    x2 when nothing is published): measured params/Mult-Adds, the comparable params, the printed
    figures, relative errors, agreement to the printed digits and the convention notes."""
    from srnas_nni.models.baselines import PUBLISHED_X2
    from srnas_nni.evaluation.cost import measure
    from srnas_nni.models.registry import build_model, get_entry, list_models
    from srnas_nni.spaces.published import presets

    table = presets()
    jobs = []
    for name in sorted(list_models(), key=lambda n: (n in table, n)):  # baselines first
        if name in table:
            preset = table[name]
            scales = sorted(s for s in preset.published if s in preset.scales) or [preset.scales[0]]
            for scale in scales:
                figures = preset.published.get(scale, {})
                jobs.append((name, "preset", scale, figures.get("params"), figures.get("multadds"),
                             preset.source, preset.notes))
        elif get_entry(name).trainable:
            published = PUBLISHED_X2.get(name)
            jobs.append((name, "baseline", 2, published and published.params, published and published.multadds,
                         published and published.source, published and published.counts))
    rows = []
    for name, kind, scale, params_pub, macs_pub, source, counts in jobs:
        model = build_model(name, scale)
        report = measure(model, scale)
        comparable, note = _cost_notes(name, scale, model, report.params)
        if params_pub is None and macs_pub is None:
            note = (note + "; " if note else "") + "no published figures"
        elif params_pub is None:
            note = (note + "; " if note else "") + "params not published"
        rows.append({"model": name, "kind": kind, "scale": scale, "params": report.params,
                     "params_compared": comparable, "multadds": report.multadds,
                     "params_vs_published": _compare(comparable, params_pub),
                     "multadds_vs_published": _compare(report.multadds, macs_pub),
                     "note": note, "source": source, "published_counts": counts})
    return rows


def _fmt_compare(measured: str, comparison: dict, fmt) -> tuple[str, str]:
    if comparison["published"] is None:
        return measured, "-"
    verdict = "yes" if comparison["agrees"] else "NO"
    return measured, f"{fmt(comparison['published'])} ({comparison['rel_error']:+.2%}, {verdict})"


def print_cost(rows: list) -> None:
    print("\n### Params and Mult-Adds (1280x720 output) vs published figures\n")
    print("Published cells: printed figure (relative error of ours, agrees to the printed digits?).\n")
    print("| model | x | params (compared) | published params | Mult-Adds | published Mult-Adds | note |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        params, params_pub = _fmt_compare(f"{r['params_compared']:,}", r["params_vs_published"],
                                          lambda v: f"{v / 1e3:,.0f}K")
        macs, macs_pub = _fmt_compare(f"{r['multadds'] / 1e9:.2f}G", r["multadds_vs_published"],
                                      lambda v: f"{v / 1e9:.1f}G")
        print(f"| {r['model']} | {r['scale']} | {params} | {params_pub} | {macs} | {macs_pub} | {r['note']} |")


# --------------------------------------------------------------------------------------------
# trained


class _FirstImages:
    """The first ``count`` pairs of a data set (all when ``count`` is 0), with its ``scale`` and ``root``."""

    def __init__(self, dataset, count: int):
        self.dataset, self.scale, self.root = dataset, dataset.scale, dataset.root
        self.count = len(dataset) if count <= 0 else min(count, len(dataset))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self.dataset[index]


def section_trained(args, device: torch.device) -> tuple[list, dict]:
    """Train every model of ``args.models`` with one schedule; return rows and the settings used.

    Each row: model, params, Mult-Adds, steps, train seconds and ``{set: {psnr, ssim}}`` for every
    validation set. Models above ``args.max_gmacs`` G Mult-Adds are listed in ``settings["left_out"]``.
    """
    from srnas_nni.evaluation.cost import measure
    from srnas_nni.evaluation.data import open_dataset
    from srnas_nni.evaluation.trainer import Trainer, TrainConfig
    from srnas_nni.evaluation.validation import validate
    from srnas_nni.models.registry import build_model, get_entry
    from srnas_nni.runtime import seed_everything

    train_spec = args.train_data or (str(DEFAULT_TRAIN) if DEFAULT_TRAIN.is_dir() else "builtin")
    train_set = _FirstImages(open_dataset(train_spec, args.scale, split="train"), args.train_images)
    sets = dict(find_sets(Path(args.data)))
    val_sets = {name: open_dataset(sets[name], args.scale, split="val") for name in args.val_sets if name in sets}
    if not val_sets:
        val_sets = {"builtin:val": open_dataset("builtin:val", args.scale, split="val")}
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, patch_size=args.patch_size,
                         seed=args.seed, device=str(device))
    rows, left_out = [], []
    for name in args.models:
        seed_everything(args.seed)
        model = build_model(name, args.scale)
        report = measure(model, args.scale)
        if args.max_gmacs is not None and report.multadds > args.max_gmacs * 1e9:
            left_out.append(name)
            continue
        print(f"[trained] {name} ...", file=sys.stderr, flush=True)
        seconds, steps = 0.0, 0
        if get_entry(name).trainable and args.steps > 0:
            outcome = Trainer(model, train_set, None, config).fit(resume=False)
            seconds, steps = outcome.train_seconds, outcome.steps
        model = model.to(device)
        scores = {}
        for set_name, dataset in val_sets.items():
            result = validate(model, dataset, device=device)
            scores[set_name] = {"psnr": result.psnr, "ssim": result.ssim}
        rows.append({"model": name, "params": report.params, "multadds": report.multadds, "steps": steps,
                     "train_seconds": seconds, "scores": scores})
    settings = {"scale": args.scale, "train_data": train_spec, "train_images": len(train_set),
                "steps": args.steps, "batch_size": args.batch_size, "patch_size": args.patch_size,
                "seed": args.seed, "loss": config.loss, "schedule": config.schedule,
                "learning_rate": config.learning_rate, "val_sets": list(val_sets), "max_gmacs": args.max_gmacs,
                "left_out": left_out}
    return rows, settings


def print_trained(rows: list, settings: dict) -> None:
    sets = settings["val_sets"]
    print(f"\n### Trained at equal budget, x{settings['scale']}: {settings['steps']} steps, batch "
          f"{settings['batch_size']}, HR patch {settings['patch_size']}, {settings['loss']} loss, "
          f"{settings['schedule']} lr {settings['learning_rate']:g}, {settings['train_images']} training images "
          f"({settings['train_data']}), seed {settings['seed']}\n")
    if settings["left_out"]:
        print(f"Left out to stay within minutes (over {settings['max_gmacs']:g} G Mult-Adds): "
              f"{', '.join(settings['left_out'])}. A proxy ranking, not a reproduction of published PSNR.\n")
    header = " | ".join(f"{s} PSNR / SSIM" for s in sets)
    print(f"| model | params | Mult-Adds | {header} | steps | train s |")
    print("|---|---:|---:|" + "---:|" * len(sets) + "---:|---:|")
    for r in sorted(rows, key=lambda r: r["multadds"]):
        cells = " | ".join(f"{r['scores'][s]['psnr']:.2f} / {r['scores'][s]['ssim']:.4f}" for s in sets)
        print(f"| {r['model']} | {r['params']:,} | {r['multadds'] / 1e9:.2f}G | {cells} | {r['steps']} | "
              f"{r['train_seconds']:.1f} |")


def plot_trained(rows: list, settings: dict, path: Path) -> Path:
    """PSNR (first validation set) vs Mult-Adds, log x; parameter-free models as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = settings["val_sets"][0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        value = r["scores"][first]["psnr"]
        if r["multadds"] == 0:
            ax.axhline(value, ls="--", color="grey", lw=1)
            ax.annotate(r["model"], (0.01, value), xycoords=("axes fraction", "data"), va="bottom", fontsize=8)
            continue
        ax.scatter(r["multadds"] / 1e9, value, s=20 + 40 * math.log10(1 + r["params"] / 1e4))
        ax.annotate(r["model"], (r["multadds"] / 1e9, value), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("Mult-Adds (G, 1280x720 output)")
    ax.set_ylabel(f"PSNR on {first} (dB, Y)")
    ax.set_title(f"x{settings['scale']}, {settings['steps']} steps each (batch {settings['batch_size']}, "
                 f"patch {settings['patch_size']})", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=["metrics", "cost", "trained"],
                        choices=["metrics", "cost", "trained"])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder of benchmark sets (Set5, Set14, ...)")
    parser.add_argument("--published", default=None, help="file with the published bicubic table, or 'none' "
                                                          "(default: README.md next to --data or its parents)")
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4], help="metrics section scales")
    parser.add_argument("--models", default=None, help="comma-separated registry names for 'trained' "
                                                       "(default: bicubic, every trainable baseline and preset)")
    parser.add_argument("--scale", type=int, default=2, help="trained section scale")
    parser.add_argument("--train-data", default=None, help=f"default: {DEFAULT_TRAIN} if present, else builtin")
    parser.add_argument("--train-images", type=int, default=None, help="use the first N training images (0: all)")
    parser.add_argument("--val-sets", nargs="+", default=None, help="set names under --data to evaluate on")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--patch-size", type=int, default=None, help="HR patch side")
    parser.add_argument("--max-gmacs", type=float, default=None, help="leave out heavier models (G Mult-Adds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--output", default=str(RESULTS), help="folder for fidelity.json and the plot")
    parser.add_argument("--quick", action="store_true",
                        help="trained: {steps} steps, batch {batch_size}, patch {patch_size}, first {train_images} "
                             "training images, Set5 only, models up to {max_gmacs:g} G Mult-Adds".format(**QUICK))
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the chosen sections, print their tables, write ``fidelity.json`` (and the plot); return the JSON."""
    from srnas_nni.models.registry import get_entry, list_models
    from srnas_nni.runtime import resolve_device
    from srnas_nni.spaces.published import presets

    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.models is None:
        names = [n for n in list_models() if n in presets() or get_entry(n).trainable]
        args.models = ["bicubic", *names]
    elif isinstance(args.models, str):
        args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    payload: dict = {"machine": machine_description(device), "command": " ".join(["benchmarks/fidelity.py",
                                                                                 *(argv or sys.argv[1:])]),
                     "settings": {k: v for k, v in vars(args).items()}, "sections": {}}
    started = time.perf_counter()
    print(f"Fidelity benchmark on {payload['machine']['processor']}, {device}, "
          f"{payload['machine']['threads']} torch threads")
    if "metrics" in args.sections:
        data = Path(args.data)
        sets = find_sets(data)
        table_file = None
        if args.published is None:
            table_file = find_table_file(data) if data.is_dir() else None
        elif args.published.lower() != "none":
            table_file = Path(args.published)
        published = parse_published_table(table_file.read_text()) if table_file else {}
        rows = section_metrics(sets, args.scales, published, device)
        payload["sections"]["metrics"] = {"data": str(data), "table_file": str(table_file) if table_file else None,
                                          "rows": rows}
        if sets:
            print_metrics(rows, table_file)
        else:
            print(f"\n(metrics: no benchmark folders under {data}; section skipped)")
    if "cost" in args.sections:
        rows = section_cost()
        payload["sections"]["cost"] = {"rows": rows}
        print_cost(rows)
    if "trained" in args.sections:
        rows, settings = section_trained(args, device)
        payload["sections"]["trained"] = {"settings": settings, "rows": rows}
        print_trained(rows, settings)
        if rows:
            payload["sections"]["trained"]["plot"] = str(plot_trained(rows, settings,
                                                                      output / "fidelity_trained.png"))
    payload["seconds"] = time.perf_counter() - started
    write_result_file(output / "fidelity.json", payload, REPO)
    print(f"\n{payload['seconds']:.0f} s; JSON in {output / 'fidelity.json'}")
    return payload


if __name__ == "__main__":
    main()
