"""``srnas validate``, ``search``, ``worker``, ``dashboard``, ``pareto``, ``plot``: experiment files and their runs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import SRNASError
from .options import positive_int


def register(sub) -> None:
    p = sub.add_parser("validate", help="check an experiment file without running it",
                       description="Validate every key of an experiment YAML (names, types, ranges, presets, "
                                   "space/strategy compatibility, data paths); print a summary or one error line.")
    p.add_argument("file")
    _add_override_options(p)
    p.set_defaults(handler=_cmd_validate)

    p = sub.add_parser("search", help="run an experiment file (or --resume a run directory)",
                       description="Run the search an experiment YAML describes as an NNI experiment; every "
                                   "evaluated architecture goes to the run's Optuna study (optuna-dashboard shows "
                                   "its Pareto front).")
    p.add_argument("file", nargs="?", help="experiment YAML (not with --resume)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue an interrupted search: completed trials are kept and not repeated")
    _add_override_options(p)
    p.add_argument("--smoke", action="store_true", help="shrink every budget: checks a set-up in under a minute")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_search)

    p = sub.add_parser("worker", help="join a shared study: one of many processes evaluating one search",
                       description="Evaluate architectures of the experiment file's study in a shared Optuna storage "
                                   "(any SQLAlchemy URL) until its planned trials are done. Start as many workers as "
                                   "you like, on any machines; a dead worker's trial is re-queued after its heartbeat "
                                   "stops. Strategies: the Optuna samplers, random, evolution.")
    p.add_argument("file", help="experiment YAML (the same file on every worker)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="shared study storage, e.g. postgresql://user@host/db (default: tracking.storage, else the "
                        "run folder's sqlite file, for workers on one machine)")
    p.add_argument("--worker-id", default=None, help="name in the study (default HOST-PID); also seeds the sampler")
    p.add_argument("--heartbeat", type=positive_int, default=10, metavar="SECONDS",
                   help="heartbeat interval of a running trial (default 10)")
    p.add_argument("--grace", type=positive_int, default=None, metavar="SECONDS",
                   help="a trial silent this long belonged to a dead worker and is re-queued (default 3 x heartbeat)")
    p.add_argument("--max-retry", type=positive_int, default=3, help="re-queues per architecture (default 3)")
    _add_override_options(p)
    p.set_defaults(handler=_cmd_worker)

    p = sub.add_parser("dashboard", help="serve optuna-dashboard for a run (127.0.0.1 by default)",
                       description="Start optuna-dashboard on a run's study storage and print its URL; Ctrl-C stops "
                                   "it.")
    p.add_argument("run_dir", nargs="?", help="a search run directory")
    p.add_argument("--storage", default=None, help="an Optuna storage URL instead of a run directory")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=positive_int, default=8080)
    p.set_defaults(handler=_cmd_dashboard)

    p = sub.add_parser("pareto", help="print or write the Pareto front of a run or a shared study",
                       description="The non-dominated architectures of a run (PSNR up, params and Mult-Adds down), "
                                   "best PSNR first. Give a run directory, or --storage URL for the study of "
                                   "distributed workers.")
    p.add_argument("run_dir", nargs="?", help="a search run directory (or --storage)")
    _add_study_options(p)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("-o", "--output", default=None, help="write to this file instead of printing")
    p.set_defaults(handler=_cmd_pareto)

    p = sub.add_parser("plot", help="draw the Pareto front of a run or a shared study (PNG and HTML)",
                       description="PSNR against Mult-Adds (marker size: parameters) for every trial of a run, the "
                                   "front highlighted, published baselines and presets drawn for reference. Give a "
                                   "run directory, or --storage URL for the study of distributed workers.")
    p.add_argument("run_dir", nargs="?", help="a search run directory (or --storage)")
    _add_study_options(p)
    p.add_argument("-o", "--output", default=None,
                   help="file stem (default RUN_DIR/pareto; with --storage: STUDY in the current folder)")
    p.set_defaults(handler=_cmd_plot)


def _add_study_options(parser) -> None:
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="a shared Optuna storage (the workers' --storage) instead of a run directory")
    parser.add_argument("--study", default=None, metavar="NAME",
                        help="the study in --storage (needed only when it holds several)")


def _add_override_options(parser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a key of the file (repeatable), e.g. --set evaluator.train.steps=50")
    parser.add_argument("--max-trials", type=positive_int, default=None, help="= --set experiment.max_trials=N")
    parser.add_argument("--train-steps", type=positive_int, default=None,
                        help="= --set evaluator.train.steps=N --set evaluator.supernet.steps=N")
    parser.add_argument("--output-dir", default=None, help="= --set output_dir=DIR")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out unreadable or too-small images with one warning instead of refusing the "
                             "data (= --set evaluator.skip_bad=true)")


def _overrides(args) -> list[str]:
    overrides = list(args.overrides)
    if args.max_trials is not None:
        overrides.append(f"experiment.max_trials={args.max_trials}")
    if args.train_steps is not None:
        overrides += [f"evaluator.train.steps={args.train_steps}", f"evaluator.supernet.steps={args.train_steps}"]
    if args.output_dir is not None:
        overrides.append(f"output_dir={json.dumps(args.output_dir)}")
    if args.skip_bad:
        overrides.append("evaluator.skip_bad=true")
    return overrides


def _cmd_validate(args) -> int:
    from ..run.config import load_config

    config = load_config(args.file, _overrides(args))
    images = config.check_images()
    counted = (f"images {_usable(images['data'])} training, {_usable(images['val_data'])} validation" if images
               else "images not checked here (the trials read them on the training service's machines)")
    print(f"{args.file}: valid. space {config.space_name} x{config.scale} "
          f"{json.dumps(config.space_spec['space_kwargs'])}; strategy {config.strategy_name} "
          f"{json.dumps(config.strategy_options)}; {counted}; output {config.output_dir}; study {config.study_name} "
          f"in {config.storage_url()}")
    return 0


def _usable(check) -> str:
    return str(check.total) if not check.problems else f"{check.usable} of {check.total}"


def _cmd_search(args) -> int:
    from ..run.config import load_config
    from ..run.search import load_run_config, run_search

    if args.resume and args.file:
        raise SRNASError("give an experiment file or --resume RUN_DIR, not both")
    if args.resume:
        config = load_run_config(args.resume, _overrides(args))
    elif args.file:
        config = load_config(args.file, _overrides(args), smoke_run=args.smoke)
    else:
        raise SRNASError("search needs an experiment file (or --resume RUN_DIR)")
    result = run_search(config, resume=bool(args.resume), progress=False if args.no_progress else None)
    if result.complete == 0 and result.failed:
        # Nothing to show but the failure: say why once, and fail the command (scripts and CI see it).
        where = f"run directory {result.run_dir}" + (f", tracebacks in {result.log_file}" if result.log_file else "")
        raise SRNASError(f"{_all_failed(result.failed, result.fail_reasons)} ({where})")
    print(f"\n{config.study_name}: {result.complete} complete, {result.failed} failed in {result.seconds:.0f} s "
          f"({config.strategy_name} on {config.space_name} x{config.scale})\n")
    print(_front_table(result.front))
    print(f"\nrun directory: {result.run_dir}")
    print(f"Pareto front:  srnas pareto {result.run_dir}   plot: srnas plot {result.run_dir}")
    print(f"dashboard:     srnas dashboard {result.run_dir}")
    return 0


def _cmd_worker(args) -> int:
    from ..run.config import load_config
    from ..run.worker import run_worker

    overrides = _overrides(args)
    if args.storage is not None:
        overrides.append(f"tracking.storage={json.dumps(args.storage)}")
    config = load_config(args.file, overrides)
    try:
        result = run_worker(config, storage=args.storage, worker_id=args.worker_id, heartbeat_interval=args.heartbeat,
                            grace_period=args.grace, max_retry=args.max_retry)
    except KeyboardInterrupt:
        print("worker stopped; its trial went back to the study", flush=True)
        return 130
    if result.complete == 0 and result.failed and not result.evaluated:
        # The study has no result and every trial of this worker failed: say why once, and fail.
        raise SRNASError(f"{_all_failed(result.failed, result.fail_reasons)} on worker {result.worker_id} "
                         f"(run directory {config.output_dir})")
    planned = result.planned if result.planned is not None else "unbounded"
    print(f"{result.worker_id}: {result.evaluated} evaluated, {result.failed} failed, {result.handed_back} handed back "
          f"in {result.seconds:.0f} s; the study has {result.complete} complete of {planned} planned")
    print(f"Pareto front: srnas pareto {config.output_dir}   dashboard: srnas dashboard {config.output_dir}")
    if args.storage is not None:  # the folder is this machine's; the study is everyone's (password hidden)
        from ..run.worker import redact_url

        print(f"shared study: srnas pareto --storage {redact_url(args.storage)} --study {config.study_name}")
    return 0


def _all_failed(count: int, reasons: dict[str, int]) -> str:
    """One line for ``count`` failed trials and nothing else: their reason, or their distinct reasons
    (``reasons``: reason -> trials, most frequent first), the first three of them in full."""
    trials = "the only trial" if count == 1 else f"all {count} trials"
    if len(reasons) <= 1:
        return f"{trials} failed: {next(iter(reasons), 'no reason recorded')}"
    shown = "; ".join(f"{reason[:200]} ({number}x)" for reason, number in list(reasons.items())[:3])
    others = f"; and {len(reasons) - 3} other reasons" if len(reasons) > 3 else ""
    return f"{trials} failed, for {len(reasons)} reasons: {shown}{others}"


def _front_table(front: list[dict]) -> str:
    lines = ["| trial | PSNR (Y) | SSIM | params | Mult-Adds (1280x720) | source |", "|---:|---:|---:|---:|---:|---|"]
    for e in front:
        ssim = f"{e['ssim']:.4f}" if e.get("ssim") is not None else "-"
        lines.append(f"| {e['trial']} | {e['psnr']:.3f} | {ssim} | {e['params']:,} | {e['multadds'] / 1e9:.3f}G | "
                     f"{e['source']} |")
    if not front:
        lines.append("| (no complete trial) | | | | | |")
    return "\n".join(lines)


def _run_study(run_dir: str):
    from ..run.search import RUN_FILE
    from ..study.storage import open_study

    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise SRNASError(f"{run_dir}: not a search run directory (no {RUN_FILE})")
    info = json.loads(path.read_text())
    return open_study(info["storage"], info["study_name"]), info


def _study_of(args):
    """``(study, run_dir or None, info)`` of a run directory or of ``--storage``/``--study`` (exactly one).

    ``info`` holds the ``space`` spec, ``scale``, ``strategy`` and ``study_name`` as far as they are known.
    """
    if (args.run_dir is None) == (args.storage is None):
        raise SRNASError(f"{args.command} needs a run directory or --storage URL (one of them)")
    if args.run_dir is not None:
        if args.study is not None:
            raise SRNASError("--study goes with --storage (a run directory names its study)")
        study, info = _run_study(args.run_dir)
        scale = (info.get("space") or {}).get("space_kwargs", {}).get("scale") or _study_info(study)["scale"]
        return study, Path(args.run_dir), {**info, "scale": scale}
    from ..run.worker import load_shared_study

    study = load_shared_study(args.storage, args.study)
    return study, None, {**_study_info(study), "study_name": study.study_name}


def _study_info(study) -> dict:
    """What ``study`` searched: the workers' study attribute, else the most frequent one its trials recorded."""
    from collections import Counter

    from ..run.worker import STUDY_INFO_ATTR

    info = dict(study.user_attrs.get(STUDY_INFO_ATTR) or {})
    trials = study.get_trials(deepcopy=False)
    for key in ("scale", "strategy", "space"):
        if info.get(key) is None:
            seen = Counter(json.dumps(t.user_attrs[key]) for t in trials if t.user_attrs.get(key) is not None)
            info[key] = json.loads(seen.most_common(1)[0][0]) if seen else None
    return info


def _cmd_pareto(args) -> int:
    from ..run.recorder import run_pareto_front
    from ..study.front import pareto_front

    study, run_dir, _ = _study_of(args)
    # A shared study's model files lie on the workers' machines: their paths are shown as recorded.
    front = run_pareto_front(run_dir, study) if run_dir is not None else pareto_front(study)
    if args.format == "json":
        text = json.dumps(front, indent=2)
    elif args.format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["trial", "psnr", "ssim", "params", "multadds", "source", "architecture"])
        for e in front:
            writer.writerow([e["trial"], e["psnr"], e["ssim"], e["params"], e["multadds"], e["source"],
                             json.dumps(e["architecture"], sort_keys=True)])
        text = buffer.getvalue().rstrip("\n")
    else:
        text = _front_table(front)
    if args.output:
        from ..runtime import atomic_write_bytes

        atomic_write_bytes(args.output, (text + "\n").encode())
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def _cmd_dashboard(args) -> int:
    from ..results.dashboard import serve

    if (args.run_dir is None) == (args.storage is None):
        raise SRNASError("dashboard needs a run directory or --storage URL (one of them)")
    storage = args.storage or _run_study(args.run_dir)[1]["storage"]
    serve(storage, host=args.host, port=args.port)
    return 0


def _cmd_plot(args) -> int:
    import re

    from ..results.plots import plot_run

    study, run_dir, info = _study_of(args)
    if info.get("scale") is None:  # a study no worker has described and with no trial yet
        raise SRNASError(f"--study {study.study_name}: no trial records its scale yet (nothing to plot)")
    if args.output:
        stem = Path(args.output)
    elif run_dir is not None:
        stem = run_dir / "pareto"
    else:  # the study's name as a file name: path separators and dots (read as a suffix) become "-"
        stem = Path(re.sub(r"[^A-Za-z0-9_-]+", "-", study.study_name).strip("-") or "study")
    png, html = plot_run(study, stem, scale=int(info["scale"]), title=info["study_name"])
    print(f"wrote {png} and {html}")
    return 0
