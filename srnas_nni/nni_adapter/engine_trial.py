"""The trial process of ``engine: nni`` (started by NNI's manager; see :mod:`srnas_nni.nni_adapter.engine`).

Its parameters are the architecture's sample ``{label: value}``; the space and evaluator come from
``SRNAS_NNI_MODEL_SPACE`` in its environment (:func:`~srnas_nni.nni_adapter.engine.trial_command_params`). The model
is rebuilt with the space's own ``freeze`` and trained by the evaluator, which reports the metric dict.
A trial of an experiment started before this format (its parameters a whole serialised model) runs as NNI's
own trial entry would. Arguments are ignored (NNI appends its trial entry to the command).
"""

from __future__ import annotations

import os


def main() -> None:
    from .loader import nni
    from .engine import MODEL_SPACE_VARIABLE, run_trial

    from nni.nas.space import ExecutableModelSpace

    parameters = nni.get_next_parameter()
    if isinstance(parameters, ExecutableModelSpace):
        parameters.execute()
        return
    template = os.environ.get(MODEL_SPACE_VARIABLE)
    if not template:
        raise SystemExit(f"srnas: error: {MODEL_SPACE_VARIABLE} is not set: this trial was not started by srnas")
    if not isinstance(parameters, dict):
        raise SystemExit("srnas: error: trial parameters must be a {label: value} dict, "
                         f"got {type(parameters).__name__}")
    run_trial(parameters, template)


if __name__ == "__main__":
    main()
