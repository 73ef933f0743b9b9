"""The adapter between srnas-nni and NNI 3.0: every use of NNI's private packages and every patch of NNI.

NNI 3.0 has had no release since 2023. When it breaks on a new torch, Lightning or Python, this
package is the one to change: the rest of srnas-nni imports NNI's public model-space types only
(``nni.mutable``, ``nni.nas.nn.pytorch``) and everything else through the modules below.
``tests/unit/nni_adapter/test_nni_behaviour.py`` and ``test_nni_oneshot_behaviour.py`` hold one test per
workaround that fails when the NNI behaviour it absorbs changes.

The adapter imports only srnas-nni's basics (``errors``, ``registry``, ``runtime``, ``presets``) and
``study``; what it needs from the layers above is handed to it (the runner's experiment class says
which spaces to freeze and what NNI's web UI shows, :class:`.engine.NniManagerMixin`). This module
imports nothing: NNI's manager gives the tuner process (:mod:`.tuner`) 10 seconds to connect.

Modules
-------
:mod:`.import_filter`   the warnings NNI's import gives about newer torch and setuptools, silenced for it
:mod:`.loader`          ``nni`` imported once with the patches in place; NNI's index of experiments; console
:mod:`.strategy`        NNI's strategy interface, engine events and model statuses
:mod:`.multi_trial`     NNI's ``Random``/``GridSearch``/``RegularizedEvolution``/``TPE``, fixed for our spaces
:mod:`.oneshot`         NNI's one-shot strategies, supernet modules and mixed operations
:mod:`.evaluators`      NNI's ``FunctionalEvaluator`` and Lightning evaluator
:mod:`.failures`        why a model failed, noted on NNI's model object
:mod:`.experiment`      ``NasExperiment``: the ``engine: nni`` config, run/resume, checkpoint state
:mod:`.manager`         NNI's manager bound to one host (the Node preload in ``node/``), ports, web UI URL
:mod:`.engine`          ``engine: nni``: ``KeepAliveEngine``, ``FreezingModelSpace``, ``NniManagerMixin``
:mod:`.engine_trial`    the trial process of ``engine: nni``
:mod:`.trial_records`   the trials NNI's manager recorded (its ``db/nni.sqlite``)
:mod:`.nnictl`          ``python -m srnas_nni.nni_engine``: nnictl with the manager on loopback
:mod:`.tuner`           Optuna's samplers as NNI HPO tuners (light: no torch, no ``nni.nas``)

Workarounds (NNI 3.0 behaviour absorbed -> where)
-------------------------------------------------
* NNI's import warns about torch classes that are not modules, and about ``pkg_resources``
  -> :func:`.import_filter.filtered_import_warnings`
* importing ``nni.nas.oneshot`` before ``nni.nas.strategy`` replaces the one-shot strategies by
  placeholders -> :mod:`.loader` (import order)
* checkpoints are read back with ``torch.load(weights_only=True)``, which refuses NNI's own state, and
  written in place -> :class:`.loader.ExperimentStateSerializer`
* DARTS architecture parameters come in ``set`` order -> :func:`.loader._stable_arch_parameters`
* mutables draw from an OS-seeded ``RandomState`` when given none -> :func:`.loader._route_unseeded_mutable_draws`
* nnictl's index of experiments is bound to ``~/nni-experiments`` (a default argument of
  ``Experiments.__init__``) -> :func:`.loader.experiment_directory`, :func:`.loader.experiment_index_home`
* NNI logs every step to stdout and reports input errors with tracebacks -> :func:`.loader.quiet_console`
* strategies' checkpoint state holds numpy and NNI objects -> :class:`.multi_trial.PlainNNIState`
* ``GridSearch`` mutates one sample in place from point to point -> :class:`.multi_trial.FreshSampleGridSearch`
* ``TPE._run`` needs a legacy form that ``CategoricalMultiple`` lacks -> :class:`.multi_trial.EncodedSpaceTPE`
* a mixed operation freezes to NNI's own ``MutableConv2d`` (and loads ``"bias": None`` into a bias-free
  conv, which fails) -> :func:`.oneshot.freeze_mixed_operation` (used by ``spaces.base.frozen_copy``)
* a failed model carries a status, no reason -> :mod:`.failures`
* ``run``/``resume`` swallow Ctrl-C and return None -> :func:`.experiment.run_experiment`
* the manager listens on every interface, with no option -> :mod:`.manager` (``node/listen_host.js``)
* the ``simplified`` model format re-creates the space inside ``model_context`` -> :class:`.engine.FreezingModelSpace`
* the training-service engine keeps weak references (an unheld model loses its metric), its parameters
  go to whichever trial asks first, ``wait_models`` returns before the last trial ended, and a
  parameter past ``max_trial_number`` is queued and never run -> :class:`.engine.KeepAliveEngine`
* the NAS command channel dies on ``ImportData`` (a resumed experiment) -> :func:`.engine.skip_unknown_commands`
* nnictl's local trials run the ``python`` on ``PATH``, its experiments go to ``~/nni-experiments``
  -> :func:`.nnictl.nnictl_experiment_config`
* the HPO dispatcher's ``trial_end`` omits the trial, its ``run`` never tells the tuner it stopped, and
  it drops queued results on stop -> :mod:`.tuner` (``MsgDispatcher`` patches)
"""
