"""The one place where srnas-nni imports NNI.

NNI 3.0 predates the torch release we run on. While generating its ``Mutable*`` layer classes it
inspects every ``torch.nn`` attribute and warns about new non-module classes (``nn.Buffer``,
``LinearCrossEntropyOptions``). Those warnings say nothing about our code, so they are silenced
here, deliberately and narrowly; every other warning stays visible.

Import NNI through this module (``from srnas_nni.nni_compat import nni``) so the filter is in place
before NNI's first import.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r".* is found to be not a nn\.Module", category=RuntimeWarning
    )
    warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning)
    import nni  # noqa: E402
    import nni.nas.nn.pytorch  # noqa: E402,F401  (triggers the layer generation under the filter)

__all__ = ["nni", "experiment_directory"]


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
