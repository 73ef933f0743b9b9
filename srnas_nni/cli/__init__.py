"""The ``srnas`` command: one module per group of subcommands.

* :mod:`.search`: ``validate`` (check an experiment file), ``search`` (run one, or ``--resume``
  a run directory), ``dashboard``, ``pareto`` and ``plot`` (a run's study and Pareto front);
* :mod:`.models`: ``evaluate`` (PSNR/SSIM of a model on a data set), ``cost`` (parameters and
  Mult-Adds at the 1280x720 convention), ``train`` (a step budget, checkpoints, resume) and
  ``compare`` (several models, one budget, quality against cost);
* :mod:`.spaces`: ``space list`` and ``space info``;
* :mod:`.artifacts`: after the search, ``export`` (a Pareto-front pick as JSON, TorchScript and
  ONNX), ``retrain`` (full training of an exported architecture) and ``upscale`` (tiled
  super-resolution of any image).

Each module has ``register(subparsers)``, which adds its subcommands with a ``handler``; a new
group is one more module in :data:`COMMAND_MODULES`; a module imports what its commands need when
they run, so ``--help``, ``--version`` and ``space list`` start in well under a second. Errors in the
input print one line, ``srnas: error: ...``, and exit with status 2. SIGTERM (a scheduler's
preemption, ``kill``) is taken like Ctrl-C: the command stops cleanly (finished trials recorded,
NNI's manager stopped, the run marked interrupted) and exits with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
import warnings
from typing import Sequence

from .. import __version__
from ..errors import SRNASError

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

#: Modules of this package that register subcommands, in the order ``srnas --help`` lists them.
COMMAND_MODULES = ("search", "models", "spaces", "artifacts")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srnas", description="Neural architecture search for single-image super-resolution (NNI + Optuna).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--version", action="version", version=f"srnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


@contextlib.contextmanager
def _one_line_warnings():
    """While a command runs, our own warnings (a skipped image, ...) print as one ``srnas: warning: ...``
    line; other warnings print as Python formats them. (Only the text changes: whoever records or
    filters warnings still sees them all.)"""
    original = warnings.formatwarning

    def format_warning(message, category, filename, lineno, line=None):
        if category.__module__.startswith("srnas_nni"):
            return f"srnas: warning: {message}\n"
        return original(message, category, filename, lineno, line)

    warnings.formatwarning = format_warning
    try:
        yield
    finally:
        warnings.formatwarning = original


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Inside: SIGTERM raises ``KeyboardInterrupt`` (main thread only; the previous handler is restored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # NNI logs every experiment step at INFO, to stdout and to our handler. A command that imports
    # neither NNI nor Optuna (``uses_nni=False``: listing names) skips this, and their seconds of imports.
    if not args.verbose and getattr(args, "uses_nni", True):
        from ..nni_adapter.loader import quiet_console

        quiet_console()
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with _one_line_warnings(), _sigterm_as_interrupt():
            return int(args.handler(args) or 0)
    except SRNASError as exc:
        print(f"srnas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("srnas: interrupted (checkpoints written so far are kept; run again to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
