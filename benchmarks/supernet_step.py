"""Time and peak memory of one supernet training step: NNI's DARTS against our differentiable strategies.

One step is what each strategy's Lightning module does per training batch: an architecture update and
a weight update (NNI DARTS and the ``bilevel`` rows: an arch step on a validation batch, then a weight
step on a training batch; ``dlsr`` adds the training batch to the arch loss; ``sparsestmax_darts`` by
default is single-level: one forward/backward for both). Every configuration runs on the same space
preset, batch and patch size, with synthetic random patches, through a real Lightning ``Trainer``:

* ``nni_darts``: NNI 3.0's stock ``DARTS`` (softmax, all candidates computed);
* ``sparsestmax r=0 / 0.5 / 0.9``: ``sparsestmax_darts`` with the radius held at that value (zero-weight
  candidates are skipped, so the larger the radius the fewer candidates run), single-level, and
  ``r=0.5 bilevel`` for the like-for-like alternation;
* ``hinas``: checkpointed mixtures (activations recomputed in backward), arch step without weight grads;
* ``dlsr``: softmax, arch loss on train + val batches, L1 + 0.2 HFEN, expected-parameter penalty;
* ``hierarchical_rl sharing``: HNAS parameter sharing (``hierarchical_rl`` with ``parameter_sharing``,
  preset ``hnas``): each weight step trains the one path the controller samples; every 2 weight steps
  the controller takes 3 REINFORCE steps on validation batches (the preset's 30 every 20, same ratio,
  so that the few measured steps include them). Its step time is the mean over the measured steps
  (``step_s`` is still the median, which a controller phase every other step can skew: both in the JSON).

Time: median wall time of the measured steps after warm-up steps (the mean and every step are in the
JSON), with CUDA synchronisation on GPU.
Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over the measured steps (reset after warm-up),
minus the memory allocated before them (weights, optimiser state); on CPU each configuration runs in a
fresh subprocess and the figure is the process's peak RSS (``resource.getrusage`` ``ru_maxrss``) minus
its RSS just before training starts (so the model, data and imports are excluded; allocator caching
makes it an upper bound of the tensors alive at the peak). Ratios are ours / NNI DARTS per row.

    python benchmarks/supernet_step.py [--spaces hinas-proxy trilevel-proxy] [--batch 2] [--patch 16]
                                       [--steps 4] [--warmup 2] [--device auto] [--threads 1] [--quick]
                                       [--configs nni_darts ...] [--output benchmarks/results]

(The CPU defaults are small: one NNI DARTS step on trilevel-proxy at batch 4, LR patch 32 takes about
a minute on 2 cores; on a GPU raise them.)

Markdown table to stdout; JSON to ``<output>/supernet_step.json`` and bars of the time and memory ratios
to ``<output>/supernet_step.png`` (``--output``, default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from srnas_nni.runtime import machine_description, write_result_file

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = {
    "nni_darts": ("darts", {}),
    "sparsestmax r=0": ("sparsestmax_darts", {"radius_start": 0.0, "radius_end": 0.0}),
    "sparsestmax r=0.5": ("sparsestmax_darts", {"radius_start": 0.5, "radius_end": 0.5}),
    "sparsestmax r=0.9": ("sparsestmax_darts", {"radius_start": 0.9, "radius_end": 0.9}),
    "sparsestmax r=0.5 bilevel": ("sparsestmax_darts", {"radius_start": 0.5, "radius_end": 0.5, "mode": "bilevel"}),
    "hinas": ("hinas", {}),
    "dlsr": ("dlsr", {}),
    # HNAS parameter sharing: one controller-sampled path per weight step; the preset's 30 controller steps
    # every 20 weight steps kept as the same ratio (3 every 2) so that the few measured steps include them.
    "hierarchical_rl sharing": ("hierarchical_rl", {"parameter_sharing": True, "preset": "hnas",
                                                    "controller_every": 2, "controller_steps": 3, "seed": 0}),
}


class _RandomPatches(torch.utils.data.IterableDataset):
    def __init__(self, count: int, batch: int, patch: int, scale: int, seed: int):
        super().__init__()
        self.count, self.batch, self.patch, self.scale, self.seed = count, batch, patch, scale, seed

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.count):
            hr = torch.rand(self.batch, 3, self.patch * self.scale, self.patch * self.scale, generator=generator)
            lr = torch.nn.functional.avg_pool2d(hr, self.scale)
            yield lr, hr


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_one(config: str, space_name: str, batch: int, patch: int, steps: int, warmup: int, device: str) -> dict:
    """Build and train one configuration for ``warmup + steps`` batches; time and memory of the last ``steps``."""
    import pytorch_lightning as pl

    from srnas_nni.evaluation.lightning import SRLightningModule
    from srnas_nni.spaces import load_space_preset
    from srnas_nni.strategies import get

    torch.manual_seed(0)
    name, options = CONFIGS[config]
    options = dict(options)
    if name not in ("darts", "hierarchical_rl"):
        options.setdefault("warmup_steps", 0)
    if name == "sparsestmax_darts":
        options["search_steps"] = 10**6  # the radius stays where it was set; no fine-tune phase
    strategy = get(name, **options)
    space = load_space_preset(space_name)
    total = warmup + steps
    loaders = {key: torch.utils.data.DataLoader(_RandomPatches(total, batch, patch, space.scale, seed), batch_size=None)
               for key, seed in (("train", 0), ("val", 1))}
    if name == "hierarchical_rl":
        strategy.prepare(space)  # what NNI's _initialize does before the engine exists
    supernet = strategy.mutate_model(space)
    module = strategy.configure_oneshot_module(SRLightningModule(scale=space.scale))
    module.set_model(supernet)
    if name == "hierarchical_rl":
        module.val_loader = loaders["val"]  # the controller reads validation batches from its own iterator
        loaders = loaders["train"]  # path sampling trains on plain batches
    cuda = device == "cuda"
    timings: list[float] = []
    memory: dict[str, int] = {}

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch_data, batch_idx):
            if cuda:
                torch.cuda.synchronize()
                if batch_idx == warmup:
                    memory["before"] = torch.cuda.memory_allocated()
                    torch.cuda.reset_peak_memory_stats()
            self.started = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch_data, batch_idx):
            if cuda:
                torch.cuda.synchronize()
            if batch_idx >= warmup:
                timings.append(time.perf_counter() - self.started)

    # max_steps=-1: NNI counts both optimizers in global_step; the loaders hold exactly `total` batches.
    trainer = pl.Trainer(max_steps=-1, max_epochs=1, accelerator="gpu" if cuda else "cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=[Probe()])
    rss_before = _rss_kib()
    trainer.fit(module, train_dataloaders=loaders)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - memory.get("before", 0)
        method = "cuda max_memory_allocated - allocated before the measured steps"
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
        method = "peak RSS - RSS before training (fresh process)"
    return {"config": config, "strategy": name, "options": options, "space": space_name, "batch": batch,
            "patch": patch, "steps_measured": len(timings), "step_s": statistics.median(timings),
            "step_mean_s": statistics.mean(timings), "step_times_s": timings,
            "peak_mib": peak / 2**20, "memory_method": method, "device": device}


def _in_subprocess(args: argparse.Namespace, config: str, space: str) -> dict:
    command = [sys.executable, __file__, "--one", config, "--spaces", space, "--batch", str(args.batch),
               "--patch", str(args.patch), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--device", args.device, "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{config} on {space} failed:\n{done.stderr[-3000:]}")


def plot_ratios(rows: list[dict], path: Path) -> Path:
    """Bars of step time and peak memory per configuration, as ratios to NNI DARTS on the same space."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spaces = list(dict.fromkeys(r["space"] for r in rows))
    configs = list(dict.fromkeys(r["config"] for r in rows))
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    height = 0.8 / max(1, len(spaces))
    for panel, (key, title) in zip(axes, (("time_ratio", "step time / NNI DARTS"),
                                          ("memory_ratio", "peak memory / NNI DARTS"))):
        for index, space in enumerate(spaces):
            by_config = {r["config"]: r for r in rows if r["space"] == space}
            values = [by_config[c][key] if c in by_config and by_config[c][key] is not None else 0.0
                      for c in configs]
            positions = [i + (index - (len(spaces) - 1) / 2) * height for i in range(len(configs))]
            panel.barh(positions, values, height=height, label=space)
        panel.axvline(1.0, color="black", linewidth=1)
        panel.axvline(0.6, color="gray", linestyle="--", linewidth=1, label="target 0.6x")
        panel.set_title(title)
        panel.set_xlabel("ratio (lower is better)")
    axes[0].set_yticks(range(len(configs)))
    axes[0].set_yticklabels(configs)
    axes[0].invert_yaxis()
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["hinas-proxy", "trilevel-proxy"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch", type=int, default=16, help="LR patch side")
    parser.add_argument("--steps", type=int, default=4, help="measured steps")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps first")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="hinas-proxy only, 2 measured steps")
    parser.add_argument("--output", default=str(RESULTS), help="folder for supernet_step.json and its plot")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS), metavar="CONFIG",
                        help=f"configurations to run (nni_darts always runs first): {', '.join(CONFIGS)}")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (1: fairer on a shared "
                                                               "machine)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads: must be >= 1, got {args.threads}")
    args.configs = ["nni_darts", *[c for c in args.configs if c != "nni_darts"]]
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.quick:
        args.spaces, args.steps, args.warmup = ["hinas-proxy"], 2, 1
    if args.one:  # child process: one configuration, JSON on the last line
        torch.set_num_threads(args.threads)
        print(json.dumps(run_one(args.one, args.spaces[0], args.batch, args.patch, args.steps, args.warmup,
                                 args.device)))
        return {}
    machine = machine_description(args.device)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    def write(met=None) -> None:  # after every row: a long CPU run keeps what it measured
        write_result_file(output / "supernet_step.json",
                          {"machine": machine, "settings": vars(args), "rows": rows, "target_met": met},
                          RESULTS.parents[1])

    for space in args.spaces:
        reference = None
        for config in args.configs:
            row = _in_subprocess(args, config, space)
            if config == "nni_darts":
                reference = row
            if CONFIGS[config][0] == "hierarchical_rl":  # controller phases every other step: mean over mean
                row["time_ratio"] = row["step_mean_s"] / reference["step_mean_s"]
                row["time_ratio_of"] = "mean step"
            else:
                row["time_ratio"] = row["step_s"] / reference["step_s"]
                row["time_ratio_of"] = "median step"
            row["memory_ratio"] = row["peak_mib"] / reference["peak_mib"] if reference["peak_mib"] > 0 else None
            rows.append(row)
            write()
            print(json.dumps(row), file=sys.stderr, flush=True)  # progress: a long CPU run can be watched
    print(f"device: {args.device}; batch {args.batch}, LR patch {args.patch}, {args.steps} measured steps "
          f"after {args.warmup}; memory: {rows[0]['memory_method']}\n")
    print("| space | configuration | step ms (median / mean) | time / NNI | peak (MiB) | memory / NNI |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        ratio = "n/a" if row["memory_ratio"] is None else f"{row['memory_ratio']:.2f}"
        print(f"| {row['space']} | {row['config']} | {row['step_s'] * 1e3:.1f} / {row['step_mean_s'] * 1e3:.1f} | "
              f"{row['time_ratio']:.2f} | "
              f"{row['peak_mib']:.1f} | {ratio} |")
    targets = [r for r in rows if r["config"] in ("sparsestmax r=0.5", "sparsestmax r=0.9", "hinas")]
    met = {f"{r['space']}/{r['config']}": bool(r["time_ratio"] <= 0.6 and (r["memory_ratio"] or 0) <= 0.6)
           for r in targets}
    print("\ntarget (<= 0.6x NNI DARTS in time and memory): "
          + ", ".join(f"{key}: {'met' if ok else 'not met'}" for key, ok in met.items()))
    write(met)
    print(f"plot: {plot_ratios(rows, output / 'supernet_step.png')}")
    return {"machine": machine, "settings": vars(args), "rows": rows, "target_met": met}


if __name__ == "__main__":
    main()
