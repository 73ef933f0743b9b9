"""The one place where srnas-nni imports NNI.

NNI 3.0 predates the torch release we run on. While generating its ``Mutable*`` layer classes it
inspects every ``torch.nn`` attribute and warns about new non-module classes (``nn.Buffer``,
``LinearCrossEntropyOptions``). Those warnings say nothing about our code, so they are silenced
here, deliberately and narrowly; every other warning stays visible.

Import NNI through this module (``from srnas_nni.nni_compat import nni``) so the filter is in place
before NNI's first import.

Two more adaptations live here because every caller needs them, once:

* NNI saves a NAS experiment's checkpoint (strategy and engine state) with ``torch.save`` and reads it
  back with ``torch.load`` under torch's default ``weights_only=True``, which refuses the numpy
  random states and Python objects NNI's own strategies keep: resuming any experiment fails. The
  checkpoint is a file the experiment wrote itself, so :class:`ExperimentStateSerializer` reads it
  in full, and writes it atomically (write, then rename) so a crash mid-save keeps the last one.
* NNI's DARTS family collects its architecture parameters through a ``set``, so their order -- and
  with it the mapping of a restored architecture optimiser's state onto them -- changes from one
  process to the next; resuming a DARTS search from a checkpoint then fails (or silently mixes the
  Adam moments of different labels). :func:`_stable_arch_parameters` keeps the module order.
* NNI's mutables (``Categorical.random()`` and kin) draw from a fresh, OS-seeded ``RandomState`` when
  their caller passes none, as NNI's path-sampling supernet layers (``RandomOneShot``) and export do:
  no seed reached those draws, so a ``random_one_shot`` search sampled different paths, trained
  different weights and derived a different architecture on every run. They now draw from
  :func:`srnas_nni.runtime.mutable_random_state`, which ``seed_everything`` seeds.
* :func:`experiment_directory` keeps NNI's experiment index under the run (below).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r".* is found to be not a nn\.Module", category=RuntimeWarning
    )
    warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning)
    import nni  # noqa: E402
    import nni.nas.nn.pytorch  # noqa: E402,F401  (triggers the layer generation under the filter)
    # Before anything imports nni.nas.oneshot: the other order is a circular import that NNI
    # answers by replacing every one-shot strategy in nni.nas.strategy with a placeholder.
    import nni.nas.strategy  # noqa: E402,F401

__all__ = ["nni", "experiment_directory", "ExperimentStateSerializer", "quiet_console"]

from nni.nas.utils.serializer import TorchSerializer, set_default_serializer  # noqa: E402


class ExperimentStateSerializer(TorchSerializer):
    """NNI's checkpoint serializer, reading back what it wrote and never leaving a half-written file."""

    def save(self, checkpoint, path):
        from .runtime import atomic_torch_save

        atomic_torch_save(checkpoint, str(path) + self.suffix)

    def load(self, path):
        import torch
        from nni.nas.utils.serializer import _find_path_with_prefix

        # Trusted: the experiment's own checkpoint, under its own working directory.
        return torch.load(str(_find_path_with_prefix(Path(path), self.suffix)), map_location=self._map_location,
                          weights_only=False)


set_default_serializer(ExperimentStateSerializer())


def _stable_arch_parameters(self) -> list:
    """``DartsLightningModule.arch_parameters`` in module order, each parameter once."""
    seen: dict[int, Any] = {}
    for module in self.supernet_modules():
        if hasattr(module, "arch_parameters"):
            for parameter in module.arch_parameters():
                seen.setdefault(id(parameter), parameter)
    return list(seen.values())


from nni.nas.oneshot.pytorch.differentiable import DartsLightningModule  # noqa: E402

DartsLightningModule.arch_parameters = _stable_arch_parameters


def _seeded_when_unseeded(seed=None):
    """``numpy.random.RandomState`` as NNI's mutables call it: without a seed, the run's seeded generator."""
    import numpy as np

    from .runtime import mutable_random_state

    return mutable_random_state() if seed is None else np.random.RandomState(seed)


def _route_unseeded_mutable_draws() -> None:
    import nni.mutable.mutable
    import nni.nas.space.mutator

    for module in (nni.mutable.mutable, nni.nas.space.mutator):
        if getattr(module, "RandomState", None) is None:
            raise RuntimeError(f"{module.__name__} no longer imports RandomState: srnas_nni.nni_compat needs "
                               "updating for this NNI")
        module.RandomState = _seeded_when_unseeded


_route_unseeded_mutable_draws()


def experiment_directory(output_dir: str | os.PathLike) -> Path:
    """Folder for NNI's experiment files under a run's output directory; NNI's index goes there too.

    NNI defaults to ``~/nni-experiments`` for the experiment folders *and* for the index of all
    experiments it keeps for ``nnictl`` (``<home>/.experiment``, written by every ``NasExperiment``
    whatever its working directory). srnas-nni keeps everything a run writes under the run: pass
    the returned path as ``experiment_working_directory``; the index follows it.
    """
    path = Path(output_dir) / "nni-experiments"
    path.mkdir(parents=True, exist_ok=True)
    _point_experiment_index(path)
    return path


def _point_experiment_index(home: Path) -> None:
    # NNI binds the index folder as a default argument at import time; this is the one place we move it.
    from nni.tools.nnictl import config_utils

    defaults = config_utils.Experiments.__init__.__defaults__
    if not defaults or len(defaults) != 1:
        raise RuntimeError("NNI's experiment index moved: srnas_nni.nni_compat needs updating for this NNI")
    config_utils.Experiments.__init__.__defaults__ = (str(home),)


def quiet_console() -> None:
    """Only NNI's warnings and errors on the console (stderr); its experiment log files keep everything.

    NNI prints every experiment step at INFO to stdout and, through the root logger, again to any
    handler an application installed; a command-line run wants a table on stdout, not that. A trial
    that fails for an :class:`~srnas_nni.errors.SRNASError` (bad input, a diverged candidate) is one
    ``candidate failed: <reason>`` line from the evaluator: NNI's report of it (the model number, the
    full traceback, "continue on failure") stays in the experiment log, off the console. Other
    failures, which may be bugs, keep their traceback on the console.
    """
    import logging
    import sys

    from nni.runtime import log as nni_log

    nni_log.silence_stdout()
    logger = logging.getLogger("nni")
    logger.propagate = False
    if not any(getattr(h, "_srnas_console", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_without_reports_of_input_failures)
        handler._srnas_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def _without_reports_of_input_failures(record) -> bool:
    """False for what NNI's sequential engine logs about a trial failing with an ``SRNASError``.

    The engine logs those records from inside its ``except`` block, so the exception it is handling
    is this thread's current one.
    """
    if record.name != "nni.nas.execution.sequential":
        return True
    import sys

    from .errors import SRNASError

    return not isinstance(sys.exc_info()[1], SRNASError)
