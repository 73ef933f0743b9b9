"""Search overhead: wall time of a one-shot search over wall time of training its derived architecture, same steps.

For every space of ``--spaces`` and one-shot strategy of ``--strategies`` (each pair in a fresh process, so
neither side inherits the other's allocator state), in one run:

1. **search**: the strategy's supernet (``strategy.mutate_model`` of the space preset) trained by the
   strategy's own Lightning module (``strategy.configure_oneshot_module`` around
   ``SRLightningModule``) for ``--steps`` training batches: every batch is one full search step
   (architecture updates from the first step: warm-ups set to 0; ``sparsestmax_darts`` anneals its
   radius over exactly these steps);
2. **derived**: the architecture the search derives (the Lightning module's ``export()`` frozen on a
   fresh copy of the space, as NNI's ``OneShotStrategy.list_models`` does) trained by a plain
   ``SRLightningModule`` for the same number of batches.

Both sides read the same pipeline: ``PatchLoader(PatchStream(...))`` of aligned (LR, HR) patches from
``--data`` (every image decoded and resized before either side is timed; batch ``--batch-size``,
HR patch ``--patch-size``, the same seed; the search's architecture
steps read a second stream of the same kind), through ``pytorch_lightning.Trainer`` with the same
settings and no validation. Time = wall time of ``trainer.fit`` on each side (the median step is also
recorded). Ratio = search / derived; the physical floor is about 1x (a search step at least trains the
weights of a net that contains the derived one). Target: at most 2x for ``sparsestmax_darts`` (single
phase) and ``hinas``.

Markdown table to stdout; JSON to ``<output>/search_overhead.json``.

    python benchmarks/search_overhead.py [--quick] [--spaces hinas-proxy trilevel-proxy]
        [--strategies sparsestmax_darts hinas] [--steps 50] [--batch-size 4] [--patch-size 48] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from srnas_nni.runtime import machine_description, write_result_file

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "train" / "SunHays80"
TARGET_RATIO = 2.0
TARGETS = ("sparsestmax_darts", "hinas")
QUICK = {"steps": 8, "batch_size": 2, "patch_size": 32, "spaces": ["hinas-proxy"]}
FULL = {"steps": 50, "batch_size": 4, "patch_size": 48, "spaces": ["hinas-proxy", "trilevel-proxy"]}


def _search_options(name: str, steps: int) -> dict[str, Any]:
    """Options that make every measured batch a full search step: no warm-up, the search as long as the run."""
    from srnas_nni.errors import SRNASError
    from srnas_nni.strategies import get

    options: dict[str, Any] = {}
    for key, value in (("warmup_steps", 0), ("search_steps", steps)):
        try:
            get(name, **options, **{key: value})
        except SRNASError:  # the strategy has no such option
            continue
        options[key] = value
    return options


def _fit(module, loaders, device: str) -> tuple[float, list[float]]:
    import pytorch_lightning as pl

    class StepTimer(pl.Callback):  # wall time of every training batch
        times: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.started = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.times.append(time.perf_counter() - self.started)

    timer = StepTimer()
    timer.times = []
    # max_steps=-1 and one epoch: NNI's modules count every optimizer in global_step; the loaders hold
    # exactly the measured number of batches.
    trainer = pl.Trainer(max_steps=-1, max_epochs=1, accelerator="gpu" if device == "cuda" else "cpu", devices=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer])
    started = time.perf_counter()
    trainer.fit(module, train_dataloaders=loaders)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, timer.times


def measure_pair(space_name: str, strategy_name: str, *, steps: int, batch_size: int, patch_size: int, data: str,
                 learning_rate: float, device: str, seed: int = 0) -> dict[str, Any]:
    """Search ``steps`` batches, then train the derived architecture ``steps`` batches; both wall times."""
    from srnas_nni.evaluation.data import open_dataset
    from srnas_nni.evaluation.lightning import PatchLoader, PatchStream, SRLightningModule
    from srnas_nni.spaces import load_space_preset
    from srnas_nni.strategies import get

    torch.manual_seed(seed)
    space = load_space_preset(space_name)
    fresh = copy.deepcopy(space)
    dataset = open_dataset(data, space.scale, split="train")
    for index in range(len(dataset)):  # decoded and resized before either side is timed
        dataset[index]

    def loader(stream_seed: int) -> PatchLoader:
        return PatchLoader(PatchStream(dataset, patch_size=patch_size, batch_size=batch_size, length=steps,
                                       seed=stream_seed))

    options = _search_options(strategy_name, steps)
    strategy = get(strategy_name, **options)
    supernet = strategy.mutate_model(space)
    search_module = strategy.configure_oneshot_module(SRLightningModule(scale=space.scale,
                                                                        learning_rate=learning_rate))
    search_module.set_model(supernet)
    search_s, search_steps = _fit(search_module, {"train": loader(seed), "val": loader(seed + 1)}, device)

    search_module.set_model(supernet)
    sample = search_module.export()
    derived = fresh.freeze(sample)
    torch.manual_seed(seed)
    derived_module = SRLightningModule(scale=space.scale, learning_rate=learning_rate)
    derived_module.set_model(derived)
    derived_s, derived_steps = _fit(derived_module, loader(seed), device)
    supernet_params = sum(p.numel() for p in supernet.parameters())
    derived_params = sum(p.numel() for p in derived.parameters())
    return {"space": space_name, "strategy": strategy_name, "options": options, "steps": steps,
            "batch_size": batch_size, "patch_size": patch_size, "search_s": search_s, "derived_s": derived_s,
            "ratio": search_s / derived_s, "search_step_median_s": statistics.median(search_steps),
            "derived_step_median_s": statistics.median(derived_steps),
            "step_ratio": statistics.median(search_steps) / statistics.median(derived_steps),
            "search_batches": len(search_steps), "derived_batches": len(derived_steps),
            "supernet_params": supernet_params, "derived_params": derived_params,
            "derived_architecture": json.loads(json.dumps(sample, default=str)),
            "target": TARGET_RATIO if strategy_name in TARGETS else None}


def _in_subprocess(args: argparse.Namespace, space: str, strategy: str) -> dict[str, Any]:
    spec = {"space": space, "strategy": strategy, "steps": args.steps, "batch_size": args.batch_size,
            "patch_size": args.patch_size, "data": args.data, "learning_rate": args.learning_rate,
            "device": args.device, "threads": args.threads}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          check=False)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = " | ".join(done.stderr.strip().splitlines()[-3:])
    raise RuntimeError(f"{strategy} on {space} failed (status {done.returncode}): {tail}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", help="space presets (quick: hinas-proxy; full: + trilevel-proxy)")
    parser.add_argument("--strategies", nargs="+", default=list(TARGETS), help="one-shot strategy names")
    parser.add_argument("--steps", type=int, help="training batches on each side (quick 8, full 50)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--patch-size", type=int, help="HR patch side")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else "builtin",
                        help="training images (default ../shared/data/train/SunHays80, else builtin)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: fairer on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="hinas-proxy, 8 steps, batch 2, patch 32")
    parser.add_argument("--output", default=str(RESULTS), help="folder for search_overhead.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    preset = QUICK if args.quick else FULL
    for key in ("steps", "batch_size", "patch_size", "spaces"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    for option, value, low in (("--steps", args.steps, 2), ("--batch-size", args.batch_size, 1),
                               ("--patch-size", args.patch_size, 8), ("--threads", args.threads, 1)):
        if value < low:
            parser.error(f"{option}: must be >= {low}, got {value}")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    from srnas_nni.strategies import is_one_shot
    from srnas_nni.spaces import load_space_preset
    from srnas_nni.strategies import get

    for space in args.spaces:
        try:
            load_space_preset(space)
        except Exception as exc:  # one line naming the option
            parser.error(f"--spaces: {space!r}: {str(exc).splitlines()[0]}")
    for name in args.strategies:
        try:
            strategy = get(name)
        except Exception as exc:
            parser.error(f"--strategies: {str(exc).splitlines()[0]}")
        if not is_one_shot(strategy):
            parser.error(f"--strategies: {name!r} is not a one-shot strategy (nothing to derive from a supernet)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        torch.set_num_threads(spec.pop("threads"))
        logging.getLogger("nni").setLevel(logging.WARNING)
        print(json.dumps(measure_pair(spec.pop("space"), spec.pop("strategy"), **spec)), flush=True)
        return {}
    torch.set_num_threads(args.threads)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    rows = []
    for space in args.spaces:
        for strategy in args.strategies:
            row = _in_subprocess(args, space, strategy)
            row["target_met"] = None if row["target"] is None else bool(row["ratio"] <= row["target"])
            rows.append(row)
            print(f"{space} {strategy}: search {row['search_s']:.1f} s, derived {row['derived_s']:.1f} s, "
                  f"ratio {row['ratio']:.2f}", file=sys.stderr, flush=True)
    machine = machine_description(args.device)
    machine["threads"] = args.threads
    payload = {"machine": machine, "command": " ".join(["benchmarks/search_overhead.py",
                                                        *(sys.argv[1:] if argv is None else argv)]),
               "settings": {k: v for k, v in vars(args).items() if k != "child"}, "rows": rows,
               "target": f"search / derived training <= {TARGET_RATIO}x for {', '.join(TARGETS)}"}
    write_result_file(output / "search_overhead.json", payload, REPO)
    print(f"\n{args.steps} steps each side, batch {args.batch_size}, HR patch {args.patch_size}, data {args.data}, "
          f"device {args.device}, {args.threads} torch thread(s)\n")
    print("| space | strategy | search s | derived-train s | ratio | median step ratio | target <= 2x |")
    print("|---|---|---:|---:|---:|---:|---|")
    for row in rows:
        verdict = "-" if row["target_met"] is None else ("met" if row["target_met"] else "missed")
        print(f"| {row['space']} | {row['strategy']} | {row['search_s']:.2f} | {row['derived_s']:.2f} | "
              f"{row['ratio']:.2f} | {row['step_ratio']:.2f} | {verdict} |")
    print(f"\nJSON in {output / 'search_overhead.json'}")
    return payload


if __name__ == "__main__":
    main()
