"""NNI, imported once with the adapter's patches in place (``from srnas_nni.nni_adapter.loader import nni``).

Importing this module imports NNI under :func:`~.import_filter.filtered_import_warnings` and applies
the patches every caller needs, once. Each absorbs one behaviour of NNI 3.0 and is checked by
``tests/unit/nni_adapter/test_nni_behaviour.py``:

* Import order. ``nni.nas.strategy`` is imported before anything imports ``nni.nas.oneshot``: the
  other order is a circular import that NNI answers by replacing every one-shot strategy in
  ``nni.nas.strategy`` with a placeholder.
* Checkpoints. NNI saves a NAS experiment's checkpoint (strategy and engine state) with ``torch.save``
  and reads it back with ``torch.load`` under torch's default ``weights_only=True``, which refuses the
  numpy random states and Python objects NNI's own strategies keep: resuming any experiment fails. The
  checkpoint is a file the experiment wrote itself, so :class:`ExperimentStateSerializer` (NNI's
  default serializer from here on) reads it in full, and writes it atomically (write, then rename) so
  a crash mid-save keeps the last one.
* DARTS architecture parameters. NNI's ``DartsLightningModule.arch_parameters`` collects them through
  a ``set``, so their order -- and with it the mapping of a restored architecture optimiser's state
  onto them -- changes from one process to the next; resuming a DARTS search from a checkpoint then
  fails (or silently mixes the Adam moments of different labels). :func:`_stable_arch_parameters`
  keeps the module order.
* Unseeded draws. NNI's mutables (``Categorical.random()`` and kin) draw from a fresh, OS-seeded
  ``RandomState`` when their caller passes none, as NNI's path-sampling supernet layers
  (``RandomOneShot``) and export do: a ``random_one_shot`` search sampled different paths, trained
  different weights and derived a different architecture on every run. ``nni.mutable.mutable`` and
  ``nni.nas.space.mutator`` now draw from :func:`srnas_nni.runtime.mutable_random_state`, which
  ``seed_everything`` seeds.
* NNI's index of experiments. nnictl's ``Experiments`` binds the index folder
  (``~/nni-experiments``) as a default argument at import time, and every ``NasExperiment`` writes
  there whatever its working directory. :func:`experiment_directory` moves it under the run (this is
  the one place that writes that default) and :func:`experiment_index_home` reads it back for NNI's
  manager (the one place that reads it).
* NNI's console output. :func:`quiet_console` keeps NNI's INFO lines and its reports of input errors
  in the experiment log, off the console.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .import_filter import filtered_import_warnings

with filtered_import_warnings():
    import nni  # noqa: E402
    import nni.nas.nn.pytorch  # noqa: E402,F401  (generates NNI's layer classes under the filter)
    import nni.nas.strategy  # noqa: E402,F401  (before nni.nas.oneshot: see the module docstring)

__all__ = ["nni", "experiment_directory", "experiment_index_home", "ExperimentStateSerializer", "quiet_console"]

from nni.nas.oneshot.pytorch.differentiable import DartsLightningModule  # noqa: E402
from nni.nas.utils.serializer import TorchSerializer, set_default_serializer  # noqa: E402


# -- checkpoints ----------------------------------------------------------------------------------


class ExperimentStateSerializer(TorchSerializer):
    """NNI's checkpoint serializer, reading back what it wrote and never leaving a half-written file."""

    def save(self, checkpoint, path):
        from ..runtime import atomic_torch_save

        atomic_torch_save(checkpoint, str(path) + self.suffix)

    def load(self, path):
        import torch
        from nni.nas.utils.serializer import _find_path_with_prefix

        # Trusted: the experiment's own checkpoint, under its own working directory.
        return torch.load(str(_find_path_with_prefix(Path(path), self.suffix)), map_location=self._map_location,
                          weights_only=False)


set_default_serializer(ExperimentStateSerializer())


# -- DARTS architecture parameters ----------------------------------------------------------------


def _stable_arch_parameters(self) -> list:
    """``DartsLightningModule.arch_parameters`` in module order, each parameter once."""
    seen: dict[int, Any] = {}
    for module in self.supernet_modules():
        if hasattr(module, "arch_parameters"):
            for parameter in module.arch_parameters():
                seen.setdefault(id(parameter), parameter)
    return list(seen.values())


#: NNI's own ``arch_parameters`` (order from a ``set``), kept for the behaviour tests.
nni_arch_parameters = DartsLightningModule.arch_parameters
DartsLightningModule.arch_parameters = _stable_arch_parameters


# -- unseeded draws of NNI's mutables -------------------------------------------------------------


#: The modules whose ``RandomState`` (numpy's class, imported by name) NNI's unseeded draws call.
UNSEEDED_DRAW_MODULES = ("nni.mutable.mutable", "nni.nas.space.mutator")


def _seeded_when_unseeded(seed=None):
    """``numpy.random.RandomState`` as NNI's mutables call it: without a seed, the run's seeded generator."""
    import numpy as np

    from ..runtime import mutable_random_state

    return mutable_random_state() if seed is None else np.random.RandomState(seed)


def _route_unseeded_mutable_draws() -> None:
    import importlib

    for name in UNSEEDED_DRAW_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "RandomState", None) is None:
            raise RuntimeError(f"{name} no longer imports RandomState: srnas_nni.nni_adapter.loader needs "
                               "updating for this NNI")
        module.RandomState = _seeded_when_unseeded


_route_unseeded_mutable_draws()


# -- NNI's index of experiments -------------------------------------------------------------------


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


def _index_defaults() -> Any:
    """The object whose ``__defaults__`` hold the folder of NNI's index (nnictl's ``Experiments.__init__``)."""
    from nni.tools.nnictl import config_utils

    return config_utils.Experiments.__init__


def _point_experiment_index(home: Path) -> None:
    init = _index_defaults()
    if not init.__defaults__ or len(init.__defaults__) != 1:
        raise RuntimeError("NNI's experiment index moved: srnas_nni.nni_adapter.loader needs updating for this NNI")
    init.__defaults__ = (str(home),)


def experiment_index_home() -> Path | None:
    """The folder holding ``nni-experiments/.experiment``, NNI's index as this process writes it.

    :func:`experiment_directory` moves the index under a run; NNI's manager must read the same file
    (it is told through ``SRNAS_NNI_HOME``, :func:`~.manager.manager_environment`). None when the index
    is not in a folder named ``nni-experiments`` (the manager could not be pointed at it).
    """
    defaults = _index_defaults().__defaults__ or ()
    if len(defaults) != 1:
        return None
    index_dir = Path(defaults[0])
    return index_dir.parent if index_dir.name == "nni-experiments" else None


# -- the console ----------------------------------------------------------------------------------


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


#: The logger NNI's sequential engine reports a failed trial on (with its traceback).
SEQUENTIAL_ENGINE_LOGGER = "nni.nas.execution.sequential"


def _without_reports_of_input_failures(record) -> bool:
    """False for what NNI's sequential engine logs about a trial failing with an ``SRNASError``.

    The engine logs those records from inside its ``except`` block, so the exception it is handling
    is this thread's current one.
    """
    if record.name != SEQUENTIAL_ENGINE_LOGGER:
        return True
    import sys

    from ..errors import SRNASError

    return not isinstance(sys.exc_info()[1], SRNASError)
